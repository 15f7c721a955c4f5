"""The ``Authorization`` header a client sends with a PluginLab token, as
Django test client keyword arguments."""

from __future__ import annotations


def bearer(token: str) -> dict[str, str]:
    """``{"HTTP_AUTHORIZATION": "Bearer <token>"}`` for ``Client.get(..., **bearer(t))``."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
