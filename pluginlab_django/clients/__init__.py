"""HTTP clients for PluginLab and Plugipay. HTTP only: nothing here touches the ORM.

``get_pluginlab_client()`` and ``get_plugipay_client()`` return clients built
from ``settings.PLUGINLAB``, shared by the process (their pooled connections
are reused) and rebuilt when a test changes the settings.
"""

from __future__ import annotations

import threading
from typing import Any

from ..conf import on_settings_change, pluginlab_settings
from .exceptions import (
    PluginLabError,
    PluginLabUnavailable,
    PlugipayError,
    PlugipayUnavailable,
    RefreshNotSupported,
    RefreshTokenFailed,
    RemoteError,
    RemoteUnavailable,
)
from .pluginlab import UNSET, PluginLabClient
from .plugipay import PlugipayClient

__all__ = [
    "UNSET",
    "PluginLabClient",
    "PluginLabError",
    "PluginLabUnavailable",
    "PlugipayClient",
    "PlugipayError",
    "PlugipayUnavailable",
    "RefreshNotSupported",
    "RefreshTokenFailed",
    "RemoteError",
    "RemoteUnavailable",
    "get_pluginlab_client",
    "get_plugipay_client",
]

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def get_pluginlab_client() -> PluginLabClient:
    """The process's PluginLab client, built from settings on first use."""
    pluginlab_settings.require_pluginlab()
    return _shared("pluginlab", PluginLabClient.from_settings)


def get_plugipay_client() -> PlugipayClient:
    """The process's Plugipay client, built from settings on first use."""
    pluginlab_settings.require_plugipay()
    return _shared("plugipay", PlugipayClient.from_settings)


def _shared(name: str, build: Any) -> Any:
    client = _clients.get(name)
    if client is None:
        with _lock:
            client = _clients.get(name)
            if client is None:
                client = _clients[name] = build()
    return client


@on_settings_change
def reset_clients() -> None:
    """Forget the shared clients (they are rebuilt from settings on next use)."""
    with _lock:
        for client in _clients.values():
            client.transport.close()
        _clients.clear()
