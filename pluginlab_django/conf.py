"""The one place where ``settings.PLUGINLAB`` is read.

Like DRF's ``api_settings`` and simplejwt's ``api_settings``: every key has a
documented default below, user values override them, and the object reloads
itself when a test changes ``settings.PLUGINLAB`` (``setting_changed``).
Nothing else in the app reads ``django.conf.settings`` for our keys::

    from pluginlab_django.conf import pluginlab_settings

    pluginlab_settings.PLUGIN_ID
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

SETTINGS_NAME = "PLUGINLAB"

DEFAULTS: dict[str, Any] = {
    # --- PluginLab credentials -------------------------------------------
    # The plugin id shown in the PluginLab dashboard.
    "PLUGIN_ID": None,
    # The admin SDK secret (sent as X-PluginLab-Admin-Sdk-Secret).
    "ADMIN_SECRET": None,
    # The secret PluginLab signs webhook bodies with (HMAC-SHA256).
    "WEBHOOK_SECRET": None,
    # --- PluginLab hosts (the vendor's defaults) --------------------------
    "AUTH_URL": "https://auth.pluginlab.ai",
    "CERT_URL": "https://auth.pluginlab.ai/admin/v1/cert",
    "MONETIZATION_URL": "https://monetization.pluginlab.ai/v1",
    "EVENT_URL": "https://event.pluginlab.ai",
    # --- Plugipay ---------------------------------------------------------
    "PLUGIPAY_BASE_URL": "https://plugipay.com",
    # A key with the plugipay:apikey:write scope (or "*") to manage API keys.
    "PLUGIPAY_KEY_ID": None,
    "PLUGIPAY_SECRET": None,
    # --- HTTP transport ---------------------------------------------------
    # Seconds to wait for a connection, and for each read, on every call.
    "CONNECT_TIMEOUT": 3.05,
    "READ_TIMEOUT": 10.0,
    # Retries on connection errors, 429 and 502/503/504. Safe methods always;
    # POSTs only when an idempotency key makes a repeat harmless.
    "RETRY_TOTAL": 3,
    # Exponential backoff: factor * 2 ** (attempt - 1) seconds, with jitter,
    # capped at RETRY_BACKOFF_MAX. A Retry-After header wins when present.
    "RETRY_BACKOFF_FACTOR": 0.5,
    "RETRY_BACKOFF_MAX": 30.0,
    "RETRY_BACKOFF_JITTER": 0.25,
    "RETRY_STATUS_FORCELIST": (429, 502, 503, 504),
    # Connections kept per host in the pooled requests.Session.
    "POOL_MAXSIZE": 10,
    # --- Token verification -----------------------------------------------
    # Seconds of clock skew tolerated on exp/iat.
    "TOKEN_LEEWAY": 30,
    # Expected "aud"; None means "plugin:<PLUGIN_ID>:admin".
    "TOKEN_AUDIENCE": None,
    # Expected "iss".
    "TOKEN_ISSUER": "https://auth.pluginlab.ai",
    # The JWKS is kept for the cert response's Cache-Control max-age, clamped
    # to [MIN, MAX]; DEFAULT when the response gives no max-age.
    "JWKS_CACHE_MIN_SECONDS": 60,
    "JWKS_CACHE_MAX_SECONDS": 86400,
    "JWKS_CACHE_DEFAULT_SECONDS": 3600,
    # At most one refetch for an unknown "kid" per this many seconds.
    "JWKS_REFETCH_COOLDOWN_SECONDS": 60,
    # Verified tokens kept in process (keyed by the token's hash, never past
    # "exp"); 0 turns the cache off.
    "TOKEN_CACHE_SIZE": 10000,
    # Dotted path to a callable(payload) -> user. None: a light PluginLabUser.
    # "pluginlab_django.authentication.get_or_create_user_by_email" maps
    # tokens to the site's own user model.
    "USER_RESOLVER": None,
    # What IsWithinQuota does for a member with no QuotaSnapshot yet:
    # "allow" or "deny".
    "QUOTA_WHEN_NO_SNAPSHOT": "allow",
    # --- Storage ----------------------------------------------------------
    # Django cache alias for the shared JWKS, locks and the dashboard.
    "CACHE_ALIAS": "default",
    # Fernet keys (urlsafe base64, 32 bytes) for identity tokens at rest.
    # The first encrypts; all decrypt (rotation). Empty: a key derived from
    # SECRET_KEY is used and check pluginlab.W001 warns.
    "FIELD_ENCRYPTION_KEYS": (),
    # --- Webhooks ---------------------------------------------------------
    # A delivery whose X-PluginLab-Timestamp is further off is refused.
    "WEBHOOK_TOLERANCE_SECONDS": 300,
    # Bodies larger than this are refused with 413 before being read whole.
    "WEBHOOK_MAX_BODY_BYTES": 1024 * 1024,
    # Processed deliveries older than this are pruned by a periodic task.
    "WEBHOOK_RETENTION_DAYS": 30,
    # A delivery claimed for processing longer ago than this is presumed
    # abandoned (a worker died) and may be claimed again.
    "WEBHOOK_CLAIM_TIMEOUT_SECONDS": 600,
    # --- Sync -------------------------------------------------------------
    # Members per page requested from PluginLab (1..100).
    "SYNC_PAGE_SIZE": 100,
    # Members per Celery task when identity/quota syncs are fanned out.
    "SYNC_CHUNK_SIZE": 100,
    # Seconds after which a held full-sync lock is considered abandoned.
    "SYNC_LOCK_TIMEOUT": 3600,
    # --- Admin ------------------------------------------------------------
    # Seconds the dashboard's aggregates are cached.
    "DASHBOARD_CACHE_SECONDS": 60,
    # --- Usage metering (the CustomEvent outbox) ----------------------------
    # An event claimed ("sending") longer ago than this was left by a sender
    # that died mid-POST: it is reported (admin, dashboard, doctor), never
    # resent automatically.
    "EVENT_SENDING_STALE_SECONDS": 300,
    # After a commit that recorded uses, the send task is enqueued with this
    # delay (seconds); uses recorded meanwhile by the same process ride along
    # with it instead of enqueuing one task each. Eager Celery: sent at once.
    "EVENT_KICK_DELAY_SECONDS": 0.5,
    # Threads one sender uses to POST events (each member's events stay in
    # order on one thread). SQLite always uses 1.
    "EVENT_SEND_CONCURRENCY": 4,
}

# Settings given as dotted paths and imported on access.
IMPORT_STRINGS: frozenset[str] = frozenset({"USER_RESOLVER"})


class PluginLabSettings:
    """Attribute access to ``settings.PLUGINLAB`` merged over ``DEFAULTS``.

    An unknown key in the user's dict is kept (so checks can report it) but
    reading an attribute that has no default raises ``AttributeError``.
    """

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = defaults or DEFAULTS
        self._cached: set[str] = set()

    @property
    def user_settings(self) -> dict[str, Any]:
        if not hasattr(self, "_user_settings"):
            self._user_settings = dict(getattr(settings, SETTINGS_NAME, None) or {})
        return self._user_settings

    def __getattr__(self, attr: str) -> Any:
        if attr not in self.defaults:
            raise AttributeError(f"Invalid PluginLab setting: {attr!r}")
        value = self.user_settings.get(attr, self.defaults[attr])
        if attr in IMPORT_STRINGS and isinstance(value, str):
            value = import_string(value)
        self._cached.add(attr)
        setattr(self, attr, value)
        return value

    # Derived values -----------------------------------------------------

    @property
    def token_audience(self) -> str:
        """The ``aud`` a token must carry."""
        return self.TOKEN_AUDIENCE or f"plugin:{self.PLUGIN_ID}:admin"

    @property
    def pluginlab_configured(self) -> bool:
        return bool(self.PLUGIN_ID and self.ADMIN_SECRET)

    @property
    def plugipay_configured(self) -> bool:
        return bool(self.PLUGIPAY_KEY_ID and self.PLUGIPAY_SECRET)

    def reload(self) -> None:
        for attr in self._cached:
            self.__dict__.pop(attr, None)
        self._cached.clear()
        self.__dict__.pop("_user_settings", None)


pluginlab_settings = PluginLabSettings(DEFAULTS)


@receiver(setting_changed)
def _reload_pluginlab_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        pluginlab_settings.reload()
