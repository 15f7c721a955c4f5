"""HTTP clients for PluginLab and Plugipay. HTTP only: nothing here touches the ORM.

``get_pluginlab_client()`` and ``get_plugipay_client()`` return clients built
from ``settings.PLUGINLAB``, shared by the process (their pooled connections
are reused) and rebuilt when a test changes the settings.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

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
    from ..conf import pluginlab_settings

    if not pluginlab_settings.pluginlab_configured:
        raise ImproperlyConfigured(
            "PLUGINLAB['PLUGIN_ID'] and PLUGINLAB['ADMIN_SECRET'] must be set to call PluginLab."
        )
    return _shared("pluginlab", PluginLabClient.from_settings)


def get_plugipay_client() -> PlugipayClient:
    """The process's Plugipay client, built from settings on first use."""
    from ..conf import pluginlab_settings

    if not pluginlab_settings.plugipay_configured:
        raise ImproperlyConfigured(
            "PLUGINLAB['PLUGIPAY_KEY_ID'] and PLUGINLAB['PLUGIPAY_SECRET'] must be set "
            "to manage Plugipay API keys."
        )
    return _shared("plugipay", PlugipayClient.from_settings)


def _shared(name: str, build: Any) -> Any:
    client = _clients.get(name)
    if client is None:
        with _lock:
            client = _clients.get(name)
            if client is None:
                client = _clients[name] = build()
    return client


def reset_clients() -> None:
    """Forget the shared clients (they are rebuilt from settings on next use)."""
    with _lock:
        for client in _clients.values():
            client.transport.close()
        _clients.clear()


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "PLUGINLAB":
        reset_clients()
