"""Plugipay API keys: create, revoke, rotate. Plugipay first, then the mirror.

A new key's secret is handed back once, in ``CreatedApiKey.secret``, and is
never stored, logged or put in an exception message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from .. import sync
from ..clients import PlugipayError, RemoteError, get_plugipay_client
from ..models import ApiKey


@dataclass(frozen=True)
class CreatedApiKey:
    record: ApiKey
    secret: str = field(repr=False)


@dataclass(frozen=True)
class RevokeResult:
    record: ApiKey
    already_revoked: bool


class RotationIncomplete(RemoteError):
    """The new key was created but the old one could not be revoked.

    ``created`` holds the new key (show its secret: it exists only here).
    """

    def __init__(self, message: str, *, created: CreatedApiKey, cause: RemoteError):
        super().__init__(message, status=cause.status, code=cause.code)
        self.created = created


def create_api_key(*, description: str = "", scope: str = "*") -> CreatedApiKey:
    key = get_plugipay_client().create_api_key(description or None, scope or None)
    return CreatedApiKey(record=sync.store_api_key(key), secret=key.secret or "")


def revoke_api_key(api_key: ApiKey) -> RevokeResult:
    """Revoke on Plugipay, then mark the row. An already revoked key
    (409 ``conflict``) is reported as such, not as an error."""
    already = False
    try:
        get_plugipay_client().revoke_api_key(api_key.record_id)
    except PlugipayError as exc:
        if exc.code != "conflict":
            raise
        already = True
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return RevokeResult(record=api_key, already_revoked=already)


def rotate_api_key(api_key: ApiKey) -> CreatedApiKey:
    """Mint a key with the same description and scope, then revoke the old one
    (mint first, so there is never a moment without a working key)."""
    created = create_api_key(description=api_key.description, scope=api_key.scope or "*")
    try:
        revoke_api_key(api_key)
    except RemoteError as exc:
        raise RotationIncomplete(
            f"The new key {created.record.key_id} was created, but revoking "
            f"{api_key.key_id} failed: {exc}",
            created=created,
            cause=exc,
        ) from None
    return created
