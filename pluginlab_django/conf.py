"""The one place where ``settings.PLUGINLAB`` is read, and validated.

Like DRF's ``api_settings`` and simplejwt's ``api_settings``: every key has a
documented default below, user values override them, and the object reloads
itself when a test changes ``settings.PLUGINLAB`` (``setting_changed``).
Nothing else in the app reads ``django.conf.settings`` for our keys::

    from pluginlab_django.conf import pluginlab_settings

    pluginlab_settings.PLUGIN_ID

Every key has a validator in ``VALIDATORS`` (see ``conf_rules``): ``manage.py
check`` reports each bad value (``pluginlab.E…``), and reading a bad value
raises :class:`PluginLabImproperlyConfigured` (logged once), so a site served
without ``check`` fails clearly instead of with a 500 somewhere deeper.

Caches built from these settings subscribe with :func:`on_settings_change`
instead of each listening to ``setting_changed`` themselves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string
from rest_framework.exceptions import APIException

from .setting_validators import (
    SettingProblem,
    Validator,
    boolean,
    cache_alias,
    choice,
    dotted_callable,
    fernet_keys,
    http_url,
    integer,
    number,
    status_codes,
    text,
)

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
    # The mode the Plugipay key must be in: "test", "live" or None (not
    # asserted). Checks refuse a key id (or secret) of the other mode.
    "PLUGIPAY_MODE": None,
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
    # get_or_create_user_by_email links a token to a staff or superuser
    # account with the member's verified email only when this is True.
    "LINK_STAFF_USERS_BY_EMAIL": False,
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
    # How a stored delivery is processed: "celery" (a task), "inline" (in the
    # request, once its transaction has committed) or "auto": celery when a
    # Celery app with a broker (or eager tasks) is configured, else inline.
    "WEBHOOK_PROCESSING": "auto",
    # --- Sync -------------------------------------------------------------
    # Members per page requested from PluginLab (1..100).
    "SYNC_PAGE_SIZE": 100,
    # Members per Celery task when identity/quota syncs are fanned out.
    "SYNC_CHUNK_SIZE": 100,
    # Seconds after which a held full-sync lock is considered abandoned.
    "SYNC_LOCK_TIMEOUT": 3600,
    # --- Identities -------------------------------------------------------
    # The opt-in token refresh task refreshes access tokens expiring within
    # this many seconds (schedules.IDENTITY_TOKEN_REFRESH_SCHEDULE).
    "IDENTITY_REFRESH_WINDOW_SECONDS": 600,
    # get_access_token's single-flight claim on a refresh: other callers wait
    # up to this long, and a claim older than this (its process died) is void.
    "IDENTITY_REFRESH_LEASE_SECONDS": 30,
    # Seconds without a heartbeat (one per stored page) after which a running
    # members sync is presumed killed (SIGKILL, dead machine); its lock is
    # then taken over by the next sync.
    "SYNC_HEARTBEAT_TIMEOUT": 120,
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


#: One validator per key (``setting_validators``): ``manage.py check`` reports
#: every refused value and reading one raises PluginLabImproperlyConfigured.
#: A key without an entry is not validated. New key, new line.
VALIDATORS: dict[str, Validator] = {
    "PLUGIN_ID": text(optional=True),
    "ADMIN_SECRET": text(optional=True, secret=True),
    "WEBHOOK_SECRET": text(optional=True, secret=True),
    "AUTH_URL": http_url(
        not_in_path=("/admin/",),
        hint="the base, without /admin/… (e.g. 'https://auth.pluginlab.ai')",
    ),
    "CERT_URL": http_url(
        needs_path=True, hint="the JWKS itself (e.g. 'https://auth.pluginlab.ai/admin/v1/cert')"
    ),
    "MONETIZATION_URL": http_url(
        not_in_path=("/admin/",),
        hint="the base, without /admin/… (e.g. 'https://monetization.pluginlab.ai/v1')",
    ),
    "EVENT_URL": http_url(
        not_in_path=("/events/",),
        hint="the base, without /events/… (e.g. 'https://event.pluginlab.ai')",
    ),
    "PLUGIPAY_BASE_URL": http_url(
        not_in_path=("/api/v1/",), hint="the base, without /api/v1 (e.g. 'https://plugipay.com')"
    ),
    "PLUGIPAY_KEY_ID": text(optional=True),
    "PLUGIPAY_SECRET": text(optional=True, secret=True),
    "CONNECT_TIMEOUT": number(minimum=0, exclusive_minimum=True, unit="seconds"),
    "READ_TIMEOUT": number(minimum=0, exclusive_minimum=True, unit="seconds"),
    "RETRY_TOTAL": integer(minimum=0, maximum=20),
    "RETRY_BACKOFF_FACTOR": number(minimum=0, unit="seconds"),
    "RETRY_BACKOFF_MAX": number(minimum=0, unit="seconds"),
    "RETRY_BACKOFF_JITTER": number(minimum=0, unit="seconds"),
    "RETRY_STATUS_FORCELIST": status_codes(),
    "POOL_MAXSIZE": integer(minimum=1),
    "TOKEN_LEEWAY": integer(minimum=0, maximum=3600, unit="seconds"),
    "TOKEN_AUDIENCE": text(optional=True),
    "TOKEN_ISSUER": text(),
    "JWKS_CACHE_MIN_SECONDS": integer(minimum=0, unit="seconds"),
    "JWKS_CACHE_MAX_SECONDS": integer(minimum=1, unit="seconds"),
    "JWKS_CACHE_DEFAULT_SECONDS": integer(minimum=0, unit="seconds"),
    "JWKS_REFETCH_COOLDOWN_SECONDS": integer(minimum=0, unit="seconds"),
    "TOKEN_CACHE_SIZE": integer(minimum=0),
    "USER_RESOLVER": dotted_callable(),
    "QUOTA_WHEN_NO_SNAPSHOT": choice("allow", "deny"),
    "CACHE_ALIAS": cache_alias(),
    "FIELD_ENCRYPTION_KEYS": fernet_keys(),
    "WEBHOOK_TOLERANCE_SECONDS": integer(minimum=1, unit="seconds"),
    "WEBHOOK_MAX_BODY_BYTES": integer(minimum=1, unit="bytes"),
    "WEBHOOK_RETENTION_DAYS": integer(minimum=1, unit="days"),
    "WEBHOOK_CLAIM_TIMEOUT_SECONDS": integer(minimum=1, unit="seconds"),
    "SYNC_PAGE_SIZE": integer(minimum=1, maximum=100),
    "SYNC_CHUNK_SIZE": integer(minimum=1),
    "SYNC_LOCK_TIMEOUT": integer(minimum=1, unit="seconds"),
    "DASHBOARD_CACHE_SECONDS": integer(minimum=0, unit="seconds"),
    "PLUGIPAY_MODE": choice("test", "live", optional=True),
    "LINK_STAFF_USERS_BY_EMAIL": boolean(),
    "IDENTITY_REFRESH_WINDOW_SECONDS": integer(minimum=0, unit="seconds"),
    "IDENTITY_REFRESH_LEASE_SECONDS": integer(minimum=1, maximum=3600, unit="seconds"),
    "WEBHOOK_PROCESSING": choice("auto", "celery", "inline"),
    "SYNC_HEARTBEAT_TIMEOUT": integer(minimum=1, unit="seconds"),
    "EVENT_SENDING_STALE_SECONDS": integer(minimum=1, unit="seconds"),
    "EVENT_KICK_DELAY_SECONDS": number(minimum=0, unit="seconds"),
    "EVENT_SEND_CONCURRENCY": integer(minimum=1, maximum=64),
}


def check_value(key: str, value: Any) -> SettingProblem | None:
    """The problem with ``value`` for ``key``, or None (also for keys with no validator)."""
    validator = VALIDATORS.get(key)
    if validator is None:
        return None
    try:
        expected = validator(value)
    except Exception as exc:  # a validator must never take the site down
        expected = f"a value its validator accepts ({type(exc).__name__}: {exc})"
    if expected is None:
        return None
    return SettingProblem(key, value, expected, validator.check_id, validator.secret)


logger = logging.getLogger("pluginlab_django.conf")


class PluginLabImproperlyConfigured(ImproperlyConfigured, APIException):
    """A PLUGINLAB setting is missing or invalid at run time.

    An :class:`~django.core.exceptions.ImproperlyConfigured` (its text names
    the key, the value and what is expected) and, for DRF views, an
    ``APIException`` answered 503 with a generic detail: API clients learn
    that the site is misconfigured, never how.
    """

    status_code = 503
    default_detail = "The service is misconfigured; the server log says which setting is wrong."
    default_code = "pluginlab_misconfigured"

    def __init__(self, message: str) -> None:
        APIException.__init__(self)
        self.message = message
        self.args = (message,)

    def __str__(self) -> str:
        return self.message


class PluginLabSettings:
    """Attribute access to ``settings.PLUGINLAB`` merged over ``DEFAULTS``.

    An unknown key in the user's dict is kept (so checks can report it) but
    reading an attribute that has no default raises ``AttributeError``.
    Reading a value its validator refuses raises
    :class:`PluginLabImproperlyConfigured` (and logs it once per key).
    """

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = defaults or DEFAULTS
        self._cached: set[str] = set()
        self._logged: set[str] = set()

    @property
    def user_settings(self) -> dict[str, Any]:
        if not hasattr(self, "_user_settings"):
            value = getattr(settings, SETTINGS_NAME, None) or {}
            self._user_settings = value if isinstance(value, dict) else {}
            self._user_settings_valid = isinstance(value, dict)
        return self._user_settings

    def raw(self, attr: str) -> Any:
        """The configured (or default) value, neither validated nor imported."""
        return self.user_settings.get(attr, self.defaults.get(attr))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr not in self.defaults:
            raise AttributeError(f"Invalid PluginLab setting: {attr!r}")
        user = self.user_settings
        if not self._user_settings_valid:
            self._fail(SETTINGS_NAME, f"settings.{SETTINGS_NAME} must be a dict.")
        value = user.get(attr, self.defaults[attr])
        problem = check_value(attr, value)
        if problem is not None:
            self._fail(attr, problem.message)
        if attr in IMPORT_STRINGS and isinstance(value, str):
            value = import_string(value)
        self._cached.add(attr)
        setattr(self, attr, value)
        return value

    def _fail(self, key: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.error("ImproperlyConfigured: %s", message)
        raise PluginLabImproperlyConfigured(message)

    def problems(self) -> list[SettingProblem]:
        """Every invalid value, in DEFAULTS order (checks and the doctor)."""
        found = []
        for key in self.defaults:
            problem = check_value(key, self.raw(key))
            if problem is not None:
                found.append(problem)
        return found

    # Derived values -----------------------------------------------------

    @property
    def token_audience(self) -> str:
        """The ``aud`` a token must carry."""
        return self.TOKEN_AUDIENCE or f"plugin:{self.PLUGIN_ID}:admin"

    @property
    def pluginlab_configured(self) -> bool:
        """PluginLab credentials are set and valid (never raises)."""
        try:
            return bool(self.PLUGIN_ID and self.ADMIN_SECRET)
        except PluginLabImproperlyConfigured:
            return False

    @property
    def plugipay_configured(self) -> bool:
        """Plugipay credentials are set and valid (never raises)."""
        try:
            return bool(self.PLUGIPAY_KEY_ID and self.PLUGIPAY_SECRET)
        except PluginLabImproperlyConfigured:
            return False

    def require_pluginlab(self) -> None:
        """Raise a clear error unless PluginLab credentials are set and valid."""
        for key in ("PLUGIN_ID", "ADMIN_SECRET"):
            if not getattr(self, key):
                raise PluginLabImproperlyConfigured(
                    f"PLUGINLAB[{key!r}] is not set: it is needed to call PluginLab "
                    "(`manage.py check` lists every missing setting)."
                )

    def require_plugipay(self) -> None:
        """Raise a clear error unless Plugipay credentials are set and valid."""
        if not (self.PLUGIPAY_KEY_ID and self.PLUGIPAY_SECRET):
            raise PluginLabImproperlyConfigured(
                "PLUGINLAB['PLUGIPAY_KEY_ID'] and PLUGINLAB['PLUGIPAY_SECRET'] must be set "
                "to manage Plugipay API keys."
            )

    def reload(self) -> None:
        for attr in self._cached:
            self.__dict__.pop(attr, None)
        self._cached.clear()
        self._logged.clear()
        self.__dict__.pop("_user_settings", None)


pluginlab_settings = PluginLabSettings(DEFAULTS)


# --- One settings-change receiver ------------------------------------------

_subscribers: list[tuple[Callable[[], None], frozenset[str]]] = []
_subscribers_lock = threading.Lock()


def on_settings_change(
    callback: Callable[[], None], *, also: Iterable[str] = ()
) -> Callable[[], None]:
    """Call ``callback()`` after ``settings.PLUGINLAB`` (or a setting in
    ``also``, e.g. ``"CACHES"``) changes, once ``pluginlab_settings`` has
    reloaded. Usable as a decorator; returns ``callback``."""
    names = frozenset({SETTINGS_NAME, *also})
    with _subscribers_lock:
        _subscribers.append((callback, names))
    return callback


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        pluginlab_settings.reload()
    for callback, names in list(_subscribers):
        if setting in names:
            try:
                callback()
            except ImproperlyConfigured:
                # The new settings are invalid: the next use reports it.
                logger.debug("Settings-change callback %r skipped", callback, exc_info=True)


__all__ = [
    "DEFAULTS",
    "IMPORT_STRINGS",
    "SETTINGS_NAME",
    "VALIDATORS",
    "PluginLabImproperlyConfigured",
    "PluginLabSettings",
    "SettingProblem",
    "on_settings_change",
    "pluginlab_settings",
]
