"""System checks (``manage.py check``) for the PLUGINLAB settings.

Errors (``pluginlab.E…``) stop a deploy that could not work; warnings
(``pluginlab.W…``) flag settings that work but are unsafe or surprising.
Values are checked by the validators of ``conf.VALIDATORS`` (the same ones
that run on first use at run time), so this module only turns their
verdicts into messages. One function per concern; add yours at the end.

=========  ============================================================
E000       ``settings.PLUGINLAB`` is not a dict
E001/E002  ``PLUGIN_ID`` / ``ADMIN_SECRET`` missing
E003       a URL whose scheme or shape is wrong
E004       only one of ``PLUGIPAY_KEY_ID`` / ``PLUGIPAY_SECRET``
E005       a value of the wrong type or out of range
E006       ``CACHE_ALIAS`` not in ``settings.CACHES``
E007       ``USER_RESOLVER`` cannot be imported
E008       ``FIELD_ENCRYPTION_KEYS`` holds something that is not a Fernet key
W001-W005  derived encryption key, live key in DEBUG, no Plugipay, no
           webhook secret, unknown key
=========  ============================================================
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import DEFAULTS, SETTINGS_NAME, pluginlab_settings

#: (smaller, larger) pairs that must be ordered.
ORDERED_PAIRS = (
    ("JWKS_CACHE_MIN_SECONDS", "JWKS_CACHE_MAX_SECONDS"),
    ("JWKS_CACHE_MIN_SECONDS", "JWKS_CACHE_DEFAULT_SECONDS"),
    ("JWKS_CACHE_DEFAULT_SECONDS", "JWKS_CACHE_MAX_SECONDS"),
)


def _user_settings() -> Any:
    return getattr(settings, SETTINGS_NAME, None)


@register(Tags.security, "pluginlab")
def check_pluginlab_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every value against its validator; unknown keys; ordered pairs."""
    user = _user_settings()
    if user is not None and not isinstance(user, dict):
        return [
            Error(
                f"settings.{SETTINGS_NAME} must be a dict.",
                hint=f"It is {type(user).__name__}: write PLUGINLAB = {{'PLUGIN_ID': ..., ...}}.",
                id="pluginlab.E000",
            )
        ]
    errors: list[CheckMessage] = []
    for key in sorted(set(user or {}) - set(DEFAULTS)):
        errors.append(
            Warning(
                f"Unknown key {key!r} in settings.{SETTINGS_NAME}.",
                hint="See the settings reference in the README; it may be misspelt.",
                id="pluginlab.W005",
            )
        )
    problems = pluginlab_settings.problems()
    for problem in problems:
        default = DEFAULTS.get(problem.key)
        errors.append(
            Error(
                f"PLUGINLAB[{problem.key!r}] is invalid.",
                hint=f"{problem.message} The default is {default!r}.",
                id=problem.check_id,
            )
        )
    bad = {problem.key for problem in problems}
    for low, high in ORDERED_PAIRS:
        if low in bad or high in bad:
            continue
        low_value, high_value = pluginlab_settings.raw(low), pluginlab_settings.raw(high)
        if low_value > high_value:
            errors.append(
                Error(
                    f"PLUGINLAB[{low!r}] is larger than PLUGINLAB[{high!r}].",
                    hint=f"{low} is {low_value!r} and {high} is {high_value!r}: "
                    f"expected {low} ≤ {high}.",
                    id="pluginlab.E005",
                )
            )
    return errors


@register(Tags.security, "pluginlab")
def check_pluginlab_credentials(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Credentials that are missing, half set, or unsafe."""
    if not isinstance(_user_settings() or {}, dict):
        return []  # E000 says it all
    raw = pluginlab_settings.raw
    errors: list[CheckMessage] = []
    if not raw("PLUGIN_ID"):
        errors.append(
            Error(
                "PLUGINLAB['PLUGIN_ID'] is not set.",
                hint="Copy the plugin id from the PluginLab dashboard "
                "(or from the sandbox's PLUGINLAB_PLUGIN_ID= line).",
                id="pluginlab.E001",
            )
        )
    if not raw("ADMIN_SECRET"):
        errors.append(
            Error(
                "PLUGINLAB['ADMIN_SECRET'] is not set.",
                hint="Generate an admin SDK secret in the PluginLab dashboard "
                "(or use the sandbox's PLUGINLAB_SECRET= line).",
                id="pluginlab.E002",
            )
        )
    key_id = raw("PLUGIPAY_KEY_ID")
    if isinstance(key_id, str) and key_id.startswith("pk_live_") and settings.DEBUG:
        errors.append(
            Warning(
                "A live Plugipay key (pk_live_…) is configured while DEBUG is on.",
                hint="Use a pk_test_ key in development; live keys reach production.",
                id="pluginlab.W002",
            )
        )
    if bool(raw("PLUGIPAY_KEY_ID")) != bool(raw("PLUGIPAY_SECRET")):
        errors.append(
            Error(
                "Only one of PLUGINLAB['PLUGIPAY_KEY_ID'] and ['PLUGIPAY_SECRET'] is set.",
                hint="Plugipay requests are signed with both; set both or neither.",
                id="pluginlab.E004",
            )
        )
    elif not raw("PLUGIPAY_KEY_ID"):
        errors.append(
            Warning(
                "Plugipay is not configured: API key management is disabled.",
                hint="Set PLUGINLAB['PLUGIPAY_KEY_ID'] and ['PLUGIPAY_SECRET'] to manage "
                "API keys from the admin and sync them.",
                id="pluginlab.W003",
            )
        )
    if not raw("WEBHOOK_SECRET"):
        errors.append(
            Warning(
                "PLUGINLAB['WEBHOOK_SECRET'] is not set: every webhook will be refused.",
                hint="Copy it from the PluginLab dashboard's webhook settings.",
                id="pluginlab.W004",
            )
        )
    if not raw("FIELD_ENCRYPTION_KEYS"):
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
