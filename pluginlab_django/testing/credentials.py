"""Sandbox ids and secrets derived from the seed.

``pluginlab_sandbox`` restarted with the same ``--seed`` prints the same
plugin id, secrets, Plugipay key and development Fernet key, so a ``.env``
written once (``--env-file``) keeps working. They are test values for a
loopback emulator, derived with SHA-256 from a public string: never use them
against the real PluginLab.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["derived_credentials", "development_fernet_key"]


def _digest(seed: int, name: str) -> bytes:
    return hashlib.sha256(f"pluginlab-sandbox:{seed}:{name}".encode()).digest()


def _hex(seed: int, name: str, nbytes: int) -> str:
    return _digest(seed, name).hex()[: nbytes * 2]


def development_fernet_key(seed: int) -> str:
    """A valid Fernet key (32 bytes, urlsafe base64) for development only."""
    return base64.urlsafe_b64encode(_digest(seed, "field-encryption-key")).decode()


def derived_credentials(seed: int) -> dict[str, str]:
    """The Sandbox constructor's id/secret arguments, stable for a seed."""
    return {
        "plugin_id": f"plg_{_hex(seed, 'plugin-id', 8)}",
        "admin_secret": f"sk_admin_{_hex(seed, 'admin-secret', 16)}",
        "webhook_secret": f"whsec_{_hex(seed, 'webhook-secret', 16)}",
        "plugipay_key_id": f"pk_test_{_hex(seed, 'plugipay-key-id', 12)}",
        "plugipay_secret": f"sk_test_{_hex(seed, 'plugipay-secret', 24)}",
    }
