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

from .conf import DEFAULTS, SETTINGS_NAME, PluginLabImproperlyConfigured, pluginlab_settings

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


@register(Tags.security, "pluginlab")
def check_plugipay_mode(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The guide's "always assert the prefix in your config loader".

    Only ``pk_live_``/``sk_live_`` count as live and ``pk_test_``/``sk_test_``
    as test; any other prefix has no mode (and matches no expected mode).
    Messages show a key id's first characters, never any of the secret.
    """
    from .models.apikeys import SECRET_PREFIXES, mode_of

    errors: list[CheckMessage] = []
    try:
        expected = pluginlab_settings.PLUGIPAY_MODE
        key_id = pluginlab_settings.PLUGIPAY_KEY_ID or ""
        secret = pluginlab_settings.PLUGIPAY_SECRET or ""
    except PluginLabImproperlyConfigured:
        return []  # a value of the wrong type or choice: reported by pluginlab.E005
    key_mode, secret_mode = mode_of(key_id), mode_of(secret, SECRET_PREFIXES)
    if expected and key_id and key_mode != expected:
        errors.append(
            Error(
                f"PLUGINLAB['PLUGIPAY_MODE'] is {expected!r} but PLUGIPAY_KEY_ID "
                f"({key_id[:12]}…) is not a pk_{expected}_ key.",
                hint=f"Configure a pk_{expected}_ key, or change PLUGIPAY_MODE.",
                id="pluginlab.E112",
            )
        )
    if key_mode and secret_mode and key_mode != secret_mode:
        errors.append(
            Error(
                f"PLUGIPAY_KEY_ID is a {key_mode} key ({key_id[:12]}…) but "
                f"PLUGIPAY_SECRET is a {secret_mode} secret (sk_{secret_mode}_…).",
                hint="The key id and the secret come from the same key: copy both again.",
                id="pluginlab.E113",
            )
        )
    return errors


@register("pluginlab")
def check_webhook_processing(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Webhook processing that cannot silently stop (``WEBHOOK_PROCESSING``).

    ``"celery"`` with no broker would store every delivery and process none:
    ``.delay()`` fails against Celery's default AMQP broker on localhost.
    """
    from .services.webhook_dispatch import (
        CELERY,
        celery_broker_configured,
    )

    try:
        value = pluginlab_settings.WEBHOOK_PROCESSING
    except PluginLabImproperlyConfigured:
        return []  # not one of PROCESSING_CHOICES: reported by pluginlab.E005
    if value == CELERY and not celery_broker_configured():
        return [
            Warning(
                "PLUGINLAB['WEBHOOK_PROCESSING'] is 'celery' but no Celery broker is "
                "configured: webhook deliveries would be stored and never processed.",
                hint="Configure your Celery app's broker (CELERY_BROKER_URL), or set "
                "WEBHOOK_PROCESSING to 'auto' (inline without a broker) or 'inline'.",
                id="pluginlab.W101",
            )
        ]
    return []


@register(Tags.database, "pluginlab")
def check_identity_encryption_keys(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn about identity tokens no configured key can decrypt (W012) and
    rows that predate key fingerprints (W013).

    Cheap: an indexed query on ``Identity.key_fingerprint``, no decryption.
    A database check, so it runs with ``migrate`` and ``check --database``.
    """
    from django.db import DatabaseError
    from django.db.models import Q

    from .fields import configured_fingerprints
    from .models import Identity

    found: list[CheckMessage] = []
    for alias in databases or ():
        rows = Identity.objects.using(alias)
        try:
            unknown = (
                rows.exclude(key_fingerprint="")
                .exclude(key_fingerprint__in=configured_fingerprints())
                .count()
            )
            legacy = (
                rows.filter(key_fingerprint="")
                .filter(Q(access_token__gt="") | Q(refresh_token__gt=""))
                .exists()
            )
        except DatabaseError:  # not migrated yet
            continue
        if unknown:
            found.append(
                Warning(
                    f"{unknown} identity row(s) in database {alias!r} hold tokens encrypted "
                    "with a key that is not in PLUGINLAB['FIELD_ENCRYPTION_KEYS'].",
                    hint="They read as missing until an identities sync replaces them "
                    "(manage.py pluginlab_sync identities) or the old key is put back "
                    "(after the new one) and manage.py pluginlab_reencrypt is run.",
                    id="pluginlab.W012",
                )
            )
        if legacy:
            found.append(
                Warning(
                    f"Some identity rows in database {alias!r} have no key fingerprint "
                    "(written before migration 0005).",
                    hint="Run manage.py pluginlab_reencrypt once to record them.",
                    id="pluginlab.W013",
                )
            )
    return found


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
