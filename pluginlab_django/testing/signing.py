"""RSA signing keys, the JWKS document and PS256 token minting.

RSA key generation takes tens of milliseconds to seconds, so generated keys
live in a small process-wide pool: every Sandbox (and every ``reset()``) of
the process reuses them instead of paying for keygen again. A sandbox keeps
its own ordered key ring on top of the pool so rotations stay per-instance.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://auth.pluginlab.ai"
ALGORITHM = "PS256"
# Keys other than the current one kept in the JWKS after rotations.
KEPT_PREVIOUS_KEYS = 2

_pool: list[tuple[str, rsa.RSAPrivateKey]] = []
_pool_lock = threading.Lock()


def _pooled_key(index: int) -> tuple[str, rsa.RSAPrivateKey]:
    """The ``index``-th key of the process pool, generated on first use."""
    with _pool_lock:
        while len(_pool) <= index:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _pool.append((f"sbx-key-{len(_pool) + 1}", key))
        return _pool[index]


def _b64uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": ALGORITHM,
        "n": _b64uint(numbers.n),
        "e": _b64uint(numbers.e),
    }


class KeyRing:
    """The sandbox's signing keys: current first, a few previous ones after."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_index = 0
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self.reset()

    def reset(self) -> None:
        """Back to the first pooled key (deterministic across resets)."""
        with self._lock:
            self._next_index = 1
            self._keys = [_pooled_key(0)]

    def rotate(self) -> str:
        """Make a new key current; the previous ones stay published."""
        new = _pooled_key(self._next_index)
        with self._lock:
            self._next_index += 1
            self._keys = [new, *self._keys][: 1 + KEPT_PREVIOUS_KEYS]
            return new[0]

    @property
    def current(self) -> tuple[str, rsa.RSAPrivateKey]:
        with self._lock:
            return self._keys[0]

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = list(self._keys)
        return {"keys": [public_jwk(kid, key) for kid, key in keys]}


def build_claims(
    *,
    plugin_id: str,
    member: dict[str, Any] | None,
    member_id: str,
    plan_id: str | None,
    price_id: str | None,
    expires_in: int,
    claim_style: str,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The claims PluginLab puts in a user token (spec §1.5)."""
    if claim_style not in ("camel", "snake"):
        raise ValueError("claim_style must be 'camel' or 'snake'")
    member = member or {}
    now = int(time.time())
    given, family = member.get("givenName"), member.get("familyName")
    if claim_style == "camel":
        user = {
            "id": member_id,
            "email": member.get("email"),
            "name": member.get("name"),
            "givenName": given,
            "familyName": family,
            "planId": plan_id,
            "priceId": price_id,
        }
    else:
        user = {
            "id": member_id,
            "email": member.get("email"),
            "name": member.get("name"),
            "given_name": given,
            "family_name": family,
            "plan_id": plan_id,
            "price_id": price_id,
        }
    claims: dict[str, Any] = {
        "uid": member_id,
        "aud": f"plugin:{plugin_id}:admin",
        "iss": ISSUER,
        "iat": now,
        "exp": now + int(expires_in),
        "user": user,
    }
    claims.update(overrides)
    return claims


def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str | None) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers=headers)
