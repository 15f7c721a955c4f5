"""System checks (``manage.py check``) for the PLUGINLAB settings.

Errors (``pluginlab.E…``) stop a deploy that could not work; warnings
(``pluginlab.W…``) flag settings that work but are unsafe or surprising.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import DEFAULTS, SETTINGS_NAME, pluginlab_settings

URL_SETTINGS = ("AUTH_URL", "CERT_URL", "MONETIZATION_URL", "EVENT_URL", "PLUGIPAY_BASE_URL")


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@register(Tags.security, "pluginlab")
def check_pluginlab_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    user = getattr(settings, SETTINGS_NAME, None)
    if user is not None and not isinstance(user, dict):
        return [Error(f"settings.{SETTINGS_NAME} must be a dict.", id="pluginlab.E000")]
    user = user or {}

    for key in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Warning(
                f"Unknown key {key!r} in settings.{SETTINGS_NAME}.",
                hint="See the settings reference in the README; it may be misspelt.",
                id="pluginlab.W005",
            )
        )
    if not pluginlab_settings.PLUGIN_ID:
        errors.append(
            Error(
                "PLUGINLAB['PLUGIN_ID'] is not set.",
                hint="Copy the plugin id from the PluginLab dashboard "
                "(or from the sandbox's PLUGINLAB_PLUGIN_ID= line).",
                id="pluginlab.E001",
            )
        )
    if not pluginlab_settings.ADMIN_SECRET:
        errors.append(
            Error(
                "PLUGINLAB['ADMIN_SECRET'] is not set.",
                hint="Generate an admin SDK secret in the PluginLab dashboard "
                "(or use the sandbox's PLUGINLAB_SECRET= line).",
                id="pluginlab.E002",
            )
        )
    for key in URL_SETTINGS:
        value = getattr(pluginlab_settings, key)
        if not _is_http_url(value):
            errors.append(
                Error(
                    f"PLUGINLAB[{key!r}] is not an http(s) URL: {value!r}.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id="pluginlab.E003",
                )
            )
    key_id = pluginlab_settings.PLUGIPAY_KEY_ID or ""
    if key_id.startswith("pk_live_") and settings.DEBUG:
        errors.append(
            Warning(
                "A live Plugipay key (pk_live_…) is configured while DEBUG is on.",
                hint="Use a pk_test_ key in development; live keys reach production.",
                id="pluginlab.W002",
            )
        )
    if bool(pluginlab_settings.PLUGIPAY_KEY_ID) != bool(pluginlab_settings.PLUGIPAY_SECRET):
        errors.append(
            Error(
                "Only one of PLUGINLAB['PLUGIPAY_KEY_ID'] and ['PLUGIPAY_SECRET'] is set.",
                hint="Plugipay requests are signed with both; set both or neither.",
                id="pluginlab.E004",
            )
        )
    elif not pluginlab_settings.plugipay_configured:
        errors.append(
            Warning(
                "Plugipay is not configured: API key management is disabled.",
                hint="Set PLUGINLAB['PLUGIPAY_KEY_ID'] and ['PLUGIPAY_SECRET'] to manage "
                "API keys from the admin and sync them.",
                id="pluginlab.W003",
            )
        )
    if not pluginlab_settings.WEBHOOK_SECRET:
        errors.append(
            Warning(
                "PLUGINLAB['WEBHOOK_SECRET'] is not set: every webhook will be refused.",
                hint="Copy it from the PluginLab dashboard's webhook settings.",
                id="pluginlab.W004",
            )
        )
    if not pluginlab_settings.FIELD_ENCRYPTION_KEYS:
        errors.append(
            Warning(
                "Identity tokens are encrypted with a key derived from SECRET_KEY.",
                hint="Set PLUGINLAB['FIELD_ENCRYPTION_KEYS'] to a list of Fernet keys "
                "(cryptography.fernet.Fernet.generate_key()); changing SECRET_KEY "
                "would otherwise make stored tokens unreadable.",
                id="pluginlab.W001",
            )
        )
    return errors


@register(Tags.urls, "pluginlab")
def check_webhook_url_mounted(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when ``pluginlab:webhook`` cannot be reversed: PluginLab's
    deliveries would get 404s and the mirror would silently go stale."""
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("pluginlab:webhook")
    except NoReverseMatch:
        return [
            Warning(
                "The webhook receiver 'pluginlab:webhook' is not mounted: "
                "webhook deliveries cannot arrive.",
                hint='Add path("pluginlab/", include("pluginlab_django.urls")) to your '
                "ROOT_URLCONF (any prefix works; point PluginLab's webhook at it).",
                id="pluginlab.W020",
            )
        ]
    except Exception:  # a broken URLconf is reported by Django's own URL checks
        return []
    return []
