"""``Sandbox``: the object tests, benchmarks and the command drive.

It owns the state (members, keys, Plugipay records), the HTTP server thread
and the webhook sender. Nothing here needs Django settings: the management
command runs it before any PluginLab setting exists.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from . import seeding, signing
from .credentials import development_fernet_key
from .faults import FaultPlan, Faults
from .plugipay_api import PlugipayState
from .server import SandboxHTTPServer
from .store import MemberStore
from .webhooks import WebhookSender

_CURRENT = object()  # mint_token(kid=...) default: the current key's kid
SNAKE_TO_CAMEL = {
    "given_name": "givenName",
    "family_name": "familyName",
    "picture_url": "pictureUrl",
    "is_verified": "isVerified",
}


#: The environment lines ``env()`` returns and ``pluginlab_sandbox`` prints, in order.
ENV_KEYS: tuple[str, ...] = (
    "PLUGINLAB_PLUGIN_ID",
    "PLUGINLAB_SECRET",
    "PLUGINLAB_AUTH_URL",
    "PLUGINLAB_CERT_URL",
    "PLUGINLAB_MONETIZATION_URL",
    "PLUGINLAB_EVENT_URL",
    "PLUGINLAB_WEBHOOK_SECRET",
    "PLUGIPAY_BASE_URL",
    "PLUGIPAY_KEY_ID",
    "PLUGIPAY_SECRET",
    "PLUGINLAB_DEMO_TOKEN",
    "PLUGINLAB_FIELD_ENCRYPTION_KEYS",
)


class Sandbox:
    """A running emulator of PluginLab and Plugipay on one loopback port."""

    def __init__(
        self,
        members: int = 50,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_url: str | None = None,
        plugin_id: str | None = None,
        admin_secret: str | None = None,
        webhook_secret: str | None = None,
        plugipay_key_id: str | None = None,
        plugipay_secret: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.members_count, self.seed = members, seed
        self.host, self.port, self.verbose = host, port, verbose
        self.plugin_id = plugin_id or f"plg_{secrets.token_hex(8)}"
        self.admin_secret = admin_secret or f"sk_admin_{secrets.token_hex(16)}"
        self.webhook_secret = webhook_secret or f"whsec_{secrets.token_hex(16)}"
        self.plugipay_key_id = plugipay_key_id or f"pk_test_{secrets.token_hex(12)}"
        self.plugipay_secret = plugipay_secret or f"sk_test_{secrets.token_hex(24)}"
        self.cert_down = False
        self.keyring = signing.KeyRing()
        self.faults = Faults(seed)
        self.webhooks = WebhookSender(
            plugin_id=self.plugin_id, secret=self.webhook_secret, url=webhook_url
        )
        self.store = MemberStore(notify=self.webhooks.enqueue)
        self.plugipay = PlugipayState(account_id=f"acct_{seed:08d}")
        self._now_ms = int(time.time() * 1000)
        self._seed_state()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------
    def start(self) -> Sandbox:
        if self._server is None:
            self._server = SandboxHTTPServer((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="pluginlab-sandbox",
                daemon=True,
            )
            self._thread.start()
            self.webhooks.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self._thread = None
        self.webhooks.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until stopped (the management command's main loop)."""
        self.start()
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    # --- addresses and settings ----------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def pluginlab_settings(self) -> dict[str, Any]:
        return {
            "PLUGIN_ID": self.plugin_id,
            "ADMIN_SECRET": self.admin_secret,
            "WEBHOOK_SECRET": self.webhook_secret,
            "AUTH_URL": f"{self.url}/auth",
            "CERT_URL": f"{self.url}/auth/admin/v1/cert",
            "MONETIZATION_URL": f"{self.url}/monetization/v1",
            "EVENT_URL": f"{self.url}/event",
            "PLUGIPAY_BASE_URL": f"{self.url}/plugipay",
            "PLUGIPAY_KEY_ID": self.plugipay_key_id,
            "PLUGIPAY_SECRET": self.plugipay_secret,
        }

    def env(self) -> dict[str, str]:
        """The 12 environment lines a site needs (the command prints these)."""
        s = self.pluginlab_settings()
        ids = self.store.seeded_ids
        demo = (
            self.mint_token(
                ids[0], plan_id="plan_pro", price_id="price_pro_monthly", expires_in=24 * 3600
            )
            if ids
            else ""
        )
        return {
            "PLUGINLAB_PLUGIN_ID": s["PLUGIN_ID"],
            "PLUGINLAB_SECRET": s["ADMIN_SECRET"],
            "PLUGINLAB_AUTH_URL": s["AUTH_URL"],
            "PLUGINLAB_CERT_URL": s["CERT_URL"],
            "PLUGINLAB_MONETIZATION_URL": s["MONETIZATION_URL"],
            "PLUGINLAB_EVENT_URL": s["EVENT_URL"],
            "PLUGINLAB_WEBHOOK_SECRET": s["WEBHOOK_SECRET"],
            "PLUGIPAY_BASE_URL": s["PLUGIPAY_BASE_URL"],
            "PLUGIPAY_KEY_ID": s["PLUGIPAY_KEY_ID"],
            "PLUGIPAY_SECRET": s["PLUGIPAY_SECRET"],
            "PLUGINLAB_DEMO_TOKEN": demo,
            # A development key (derived from the seed) for identity tokens at rest.
            "PLUGINLAB_FIELD_ENCRYPTION_KEYS": development_fernet_key(self.seed),
        }

    # --- tokens and keys -----------------------------------------------
    @property
    def signing_private_key(self) -> tuple[str, rsa.RSAPrivateKey]:
        """``(kid, key)`` of the current signing key, for tests that forge tokens."""
        return self.keyring.current

    def mint_token(
        self,
        member_id: str,
        plan_id: str | None = None,
        price_id: str | None = None,
        expires_in: int = 3600,
        claim_style: str = "camel",
        kid: Any = _CURRENT,
        **overrides: Any,
    ) -> str:
        """A PS256 user token like PluginLab's; ``kid=None`` omits the header."""
        current_kid, key = self.keyring.current
        claims = signing.build_claims(
            plugin_id=self.plugin_id,
            member=self.store.get(member_id),
            member_id=member_id,
            plan_id=plan_id,
            price_id=price_id,
            expires_in=expires_in,
            claim_style=claim_style,
            overrides=overrides,
        )
        return signing.sign(claims, key, current_kid if kid is _CURRENT else kid)

    def rotate_signing_key(self) -> str:
        return self.keyring.rotate()

    def set_cert_down(self, down: bool = True) -> None:
        self.cert_down = bool(down)

    # --- faults, webhooks, counters --------------------------------------
    def set_faults(
        self,
        latency_ms: int = 0,
        error_rate: float = 0.0,
        error_status: int = 503,
        drop_rate: float = 0.0,
        path_prefix: str | None = None,
        count: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.faults.set(
            FaultPlan(
                int(latency_ms),
                float(error_rate),
                int(error_status),
                float(drop_rate),
                path_prefix or None,
                None if count is None else int(count),
                None if retry_after is None else int(retry_after),
            )
        )

    def clear_faults(self) -> None:
        self.faults.clear()

    def request_count(self, path_prefix: str = "") -> int:
        return self.faults.request_count(path_prefix)

    def set_webhook_url(self, url: str | None) -> None:
        self.webhooks.set_url(url)

    def deliveries(self) -> list[dict[str, Any]]:
        return self.webhooks.deliveries()

    def wait_for_deliveries(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        return self.webhooks.wait_for(n, timeout)

    def reset(self) -> None:
        """Reseed (same seed) and clear faults, counters, deliveries, rotations."""
        self.faults.reset()
        self.keyring.reset()
        self.cert_down = False
        self.webhooks.clear()
        self._seed_state()

    def _seed_state(self) -> None:
        self.store.load(seeding.seed_members(self.members_count, self.seed, self._now_ms))
        self.plugipay.load(
            seeding.seed_api_keys(
                random.Random(self.seed),
                self.plugipay_key_id,
                self.plugipay_secret,
                self.plugipay.account_id,
            )
        )

    # --- members from Python -------------------------------------------
    def member_ids(self) -> list[str]:
        return self.store.member_ids()

    def revoked_refresh_member_ids(self) -> list[str]:
        return self.store.revoked_refresh_ids()

    def get_member(self, member_id: str) -> dict[str, Any] | None:
        return self.store.get(member_id)

    def update_member(self, member_id: str, **fields: Any) -> dict[str, Any] | None:
        """Change a member remotely (snake_case or camelCase field names)."""
        return self.store.update(
            member_id, {SNAKE_TO_CAMEL.get(k, k): v for k, v in fields.items()}
        )

    def delete_member(self, member_id: str) -> bool:
        return self.store.delete(member_id)

    def create_member(
        self, email: str, *, is_verified: bool = False, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        return self.store.create(email, is_verified=is_verified, metadata=metadata)
