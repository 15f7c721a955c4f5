"""Plugipay API keys: list, create, revoke, rotate with overlap, revoke when due.

Plugipay first, then the mirror (through ``sync``). The command line and the
admin are thin adapters over these functions.

A new key's secret is handed back once, in ``CreatedApiKey.secret``, and is
never stored, logged or put in an exception message. The site's own key
(``PLUGIPAY_KEY_ID``) is never revoked or scheduled for revocation here:
revoking it would make every later Plugipay call fail (``OwnKeyProtected``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from .. import sync
from ..clients import PlugipayError, RemoteError, get_plugipay_client
from ..conf import pluginlab_settings
from ..models import ApiKey, SyncRun

logger = logging.getLogger("pluginlab_django.apikeys")

DURATION = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>[smhd]?)\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
ROTATION_SUFFIX = re.compile(r"\s*\(rotation \d{4}-\d{2}-\d{2}\)$")
DESCRIPTION_MAX = 255


class ApiKeyError(Exception):
    """A request about a key that cannot be carried out (the message says why)."""


class UnknownApiKey(ApiKeyError):
    pass


class OwnKeyProtected(ApiKeyError):
    """The key is the one this site signs its Plugipay calls with."""

    def __init__(self, key_id: str, action: str) -> None:
        super().__init__(
            f"Refusing to {action} {key_id}: it is this site's own key "
            "(PLUGINLAB['PLUGIPAY_KEY_ID']) and every later Plugipay call would fail. "
            "To rotate it safely: mint a successor (pluginlab_apikeys create "
            "--env-file PATH), deploy it as PLUGIPAY_KEY_ID/PLUGIPAY_SECRET, then "
            f"revoke {key_id} from the new configuration."
        )
        self.key_id = key_id


@dataclass(frozen=True)
class CreatedApiKey:
    record: ApiKey
    secret: str = field(repr=False)

    def as_json(self) -> dict[str, str]:
        """The one JSON object that ever carries the secret."""
        return {
            "id": self.record.record_id,
            "keyId": self.record.key_id,
            "secret": self.secret,
            "scope": self.record.scope,
            "description": self.record.description,
        }


@dataclass(frozen=True)
class RevokeResult:
    record: ApiKey
    already_revoked: bool


@dataclass(frozen=True)
class Rotation:
    created: CreatedApiKey
    old: ApiKey
    revoke_at: datetime  # now for --overlap 0 (then the old key is revoked already)


class RotationIncomplete(RemoteError):
    """The new key was created but the old one could not be revoked.

    ``created`` holds the new key (show its secret: it exists only here).
    """

    def __init__(self, message: str, *, created: CreatedApiKey, cause: RemoteError):
        super().__init__(message, status=cause.status, code=cause.code)
        self.created = created
        self.request_id = getattr(cause, "request_id", None)


def parse_duration(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``45s``, ``0`` (a bare number is seconds)."""
    match = DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30m, 24h, 7d or 0.")
    return timedelta(**{UNITS[match["unit"] or "s"]: int(match["n"])})


def is_own_key(api_key: ApiKey) -> bool:
    own = pluginlab_settings.PLUGIPAY_KEY_ID
    return bool(own) and api_key.key_id == own


def _refuse_own_key(api_key: ApiKey, action: str) -> None:
    if is_own_key(api_key):
        raise OwnKeyProtected(api_key.key_id, action)


# Reading ------------------------------------------------------------------------


def refresh_api_keys() -> SyncRun:
    """Mirror Plugipay's list now; raise its error rather than record it."""
    run = sync.sync_api_keys()
    if run.status != SyncRun.Status.SUCCEEDED:
        raise run.exception or RemoteError(run.error or "The API key sync failed.")
    return run


def find_api_key(key: str, *, refresh: bool = True) -> ApiKey:
    """The record for an ``apk_…`` record id or a ``pk_…`` key id.

    With ``refresh`` the mirror is updated from Plugipay's list first, so a
    ``pk_…`` id is translated through that list (as the guide shows).
    """
    key = (key or "").strip()
    if key.startswith("apk_"):
        lookup = {"record_id": key}
    elif key.startswith("pk_"):
        lookup = {"key_id": key}
    else:
        raise ValueError(f"{key!r} is neither a record id (apk_…) nor a key id (pk_…).")
    if refresh:
        refresh_api_keys()
    row = ApiKey.objects.filter(**lookup).first()
    if row is None or row.gone_at is not None:
        raise UnknownApiKey(f"Plugipay has no API key {key}.")
    return row


# Changing -----------------------------------------------------------------------


def create_api_key(*, description: str = "", scope: str = "*") -> CreatedApiKey:
    key = get_plugipay_client().create_api_key(description or None, scope or None)
    record = sync.store_api_key(key)
    logger.info("Created Plugipay API key %s (%s)", record.key_id, record.record_id)
    return CreatedApiKey(record=record, secret=key.secret or "")


def revoke_api_key(api_key: ApiKey) -> RevokeResult:
    """Revoke on Plugipay, then mark the row. An already revoked key
    (409 ``conflict``) is reported as such, not as an error."""
    _refuse_own_key(api_key, "revoke")
    already = False
    try:
        get_plugipay_client().revoke_api_key(api_key.record_id)
    except PlugipayError as exc:
        if exc.code != "conflict":
            raise
        already = True
    now = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    ApiKey.objects.filter(pk=api_key.pk).update(revoke_scheduled_at=None)
    api_key.refresh_from_db(fields=["revoked_at", "revoke_scheduled_at"])
    logger.info("Revoked Plugipay API key %s (already: %s)", api_key.key_id, already)
    return RevokeResult(record=api_key, already_revoked=already)


def schedule_revocation(api_key: ApiKey, when: datetime) -> ApiKey:
    """Have the periodic task (or ``revoke-due``) revoke the key at ``when``."""
    _refuse_own_key(api_key, "schedule the revocation of")
    if not api_key.is_active:
        raise ApiKeyError(f"{api_key.key_id} is {api_key.state}: nothing to schedule.")
    ApiKey.objects.filter(pk=api_key.pk).update(revoke_scheduled_at=when)
    api_key.refresh_from_db(fields=["revoke_scheduled_at"])
    return api_key


def cancel_revocation(api_key: ApiKey) -> bool:
    """Take a scheduled revocation back; False when none was scheduled."""
    cancelled = ApiKey.objects.filter(
        pk=api_key.pk, revoked_at__isnull=True, revoke_scheduled_at__isnull=False
    ).update(revoke_scheduled_at=None)
    api_key.refresh_from_db(fields=["revoke_scheduled_at"])
    return bool(cancelled)


def rotation_description(description: str, today: datetime | None = None) -> str:
    """``<description> (rotation YYYY-MM-DD)``; an earlier suffix is replaced."""
    base = ROTATION_SUFFIX.sub("", description or "").strip()
    suffix = f"(rotation {(today or timezone.now()):%Y-%m-%d})"
    return f"{base[: DESCRIPTION_MAX - len(suffix) - 1]} {suffix}".strip()


def rotate_api_key(api_key: ApiKey, overlap: timedelta = timedelta(0)) -> Rotation:
    """Mint a successor (same scope), then revoke the old key now (no overlap)
    or schedule its revocation at now + ``overlap``.

    Mint first, so there is never a moment without a working key; the overlap
    is the window in which to deploy the new secret.
    """
    _refuse_own_key(api_key, "rotate")
    if not api_key.is_active:
        raise ApiKeyError(f"{api_key.key_id} is {api_key.state}: only active keys rotate.")
    if overlap < timedelta(0):
        raise ValueError("The overlap cannot be negative.")
    created = create_api_key(
        description=rotation_description(api_key.description), scope=api_key.scope or "*"
    )
    revoke_at = timezone.now() + overlap
    if overlap:
        schedule_revocation(api_key, revoke_at)
        return Rotation(created=created, old=api_key, revoke_at=revoke_at)
    try:
        revoke_api_key(api_key)
    except RemoteError as exc:
        raise RotationIncomplete(
            f"The new key {created.record.key_id} was created, but revoking "
            f"{api_key.key_id} failed: {exc}",
            created=created,
            cause=exc,
        ) from None
    return Rotation(created=created, old=api_key, revoke_at=revoke_at)


@dataclass
class DueOutcome:
    record: ApiKey
    revoked: bool
    error: str = ""


def revoke_due(now: datetime | None = None) -> list[DueOutcome]:
    """Revoke every key whose scheduled revocation time has come.

    One failure does not stop the others; the key stays scheduled and is
    tried again on the next run. Two runs at once are harmless: the second
    revoke of a key is Plugipay's ``conflict``, reported as already revoked.
    """
    outcomes = []
    for api_key in ApiKey.objects.revocation_due(now).order_by("revoke_scheduled_at", "pk"):
        try:
            revoke_api_key(api_key)
        except (RemoteError, ApiKeyError) as exc:
            logger.warning("Scheduled revocation of %s failed: %s", api_key.key_id, exc)
            outcomes.append(DueOutcome(api_key, revoked=False, error=str(exc)))
        else:
            outcomes.append(DueOutcome(api_key, revoked=True))
    return outcomes
