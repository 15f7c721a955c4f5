"""OAuth identity tokens a site can use: a fresh access token on demand.

``get_access_token(member, provider)`` is what a site calls before it calls
Google or GitLab on the member's behalf. A stored token still valid long
enough is returned straight from the row (one indexed read, one decryption);
otherwise PluginLab refreshes it and the answer is stored through ``sync``.

Single flight, across processes. Providers may rotate refresh tokens, so two
workers refreshing at once can leave the loser holding a dead one. A refresh
is therefore claimed in the database: one conditional ``UPDATE`` sets the
row's ``refresh_lease_expires_at`` only if no unexpired claim exists, and
only the process whose UPDATE matched calls PluginLab. The others poll the
row briefly and take its result. The same statement works on PostgreSQL
(where it takes the row lock for its duration) and SQLite (where it takes the
database write lock), and no transaction is held open across the HTTP call.
A claimer that dies leaves a lease that simply expires
(``IDENTITY_REFRESH_LEASE_SECONDS``). Callers inside a long transaction
(``ATOMIC_REQUESTS``) still get one refresh, but others wait for that
transaction to commit.

The admin's "Refresh identity tokens" action and the refresh Celery task go
through the same claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import OperationalError, connection, connections, router
from django.db.models import Q
from django.utils import timezone

from .. import sync
from ..clients import (
    PluginLabUnavailable,
    RefreshNotSupported,
    RefreshTokenFailed,
    get_pluginlab_client,
)
from ..conf import pluginlab_settings
from ..direct_reads import fetch_one
from ..models import Identity, Member
from ..models.identities import Provider

__all__ = [
    "REFRESHABLE_PROVIDERS",
    "IdentityNotFound",
    "ReauthenticationRequired",
    "expiring_identity_ids",
    "get_access_token",
    "refresh_identity",
    "refresh_if_expiring",
]

REFRESHABLE_PROVIDERS = (Provider.GOOGLE.value, Provider.GITLAB.value)

REAUTH_MESSAGE = (
    "The {provider} sign-in of this member can no longer be refreshed: they must "
    "sign in again through the plugin's auth portal."
)


class IdentityNotFound(LookupError):
    """The member has no mirrored identity for this provider (or is not mirrored)."""

    def __init__(self, member_id: str, provider: str, message: str = "") -> None:
        self.member_id, self.provider = member_id, provider
        super().__init__(message or f"Member {member_id} has no {provider} identity in the mirror.")


class ReauthenticationRequired(RefreshTokenFailed):
    """PluginLab could not refresh the token (422): show ``message`` to the
    member and send them through the auth portal; do not retry.

    A ``RefreshTokenFailed``, so code written against the client keeps working.
    """

    def __init__(self, member_id: str, provider: str, *, detail: str = "") -> None:
        self.member_id, self.provider, self.detail = member_id, provider, detail
        super().__init__(
            REAUTH_MESSAGE.format(provider=Provider(provider).label),
            status=422,
            code="auth/refresh-token-failed",
        )


# Reading ------------------------------------------------------------------------


def _member_label(member: Member | str) -> str:
    return member.remote_id if isinstance(member, Member) else member


_PROVIDERS = frozenset(Provider.values)


def _check_provider(provider: str) -> str:
    if provider not in _PROVIDERS:
        raise ValueError(
            f"Unknown identity provider {provider!r}; expected one of {', '.join(Provider.values)}."
        )
    return provider


def _valid_for(expires_at: datetime | None, seconds: float, now: datetime) -> bool:
    return expires_at is None or expires_at > now + timedelta(seconds=seconds)


def get_access_token(member: Member | str, provider: str, *, min_valid_seconds: int = 60) -> str:
    """An access token for ``member``'s ``provider`` identity, valid for at
    least ``min_valid_seconds`` when the provider can be refreshed.

    - the stored token, when it is valid long enough (no remote call);
    - otherwise (expired, about to expire, missing or undecryptable) a token
      refreshed through PluginLab and stored, exactly once for all
      concurrent callers (see the module docstring);
    - GitHub and Microsoft cannot be refreshed: their stored token while it
      has not expired, else ``RefreshNotSupported`` saying so.

    Raises ``IdentityNotFound``, ``ReauthenticationRequired`` (422: the row is
    marked ``needs_reauth``), ``ValueError`` for an unknown provider, or the
    client's ``RemoteError`` when PluginLab fails (nothing is stored then).
    """
    _check_provider(provider)
    row = _stored_token(member, provider, min_valid_seconds)
    if row is None:
        raise IdentityNotFound(_member_label(member), provider)
    pk, token, valid_long_enough = row
    if token and valid_long_enough:
        return token
    if provider not in REFRESHABLE_PROVIDERS:
        expires_at = Identity.objects.values_list("access_token_expires_at", flat=True).get(pk=pk)
        if token and _valid_for(expires_at, 0, timezone.now()):
            return token
        raise RefreshNotSupported(
            f"{Provider(provider).label} tokens cannot be refreshed and member "
            f"{_member_label(member)} has no usable one stored (sync their identities, "
            "or ask them to sign in again).",
            code="auth/refresh-not-supported",
        )

    def done(identity: Identity, started: datetime) -> bool:
        if not identity.access_token:
            return False
        fresh = identity.refreshed_at is not None and identity.refreshed_at >= started
        return fresh or _valid_for(
            identity.access_token_expires_at, min_valid_seconds, timezone.now()
        )

    identity, _refreshed = _single_flight(pk, done)
    # A str: done() waits for a token, and _refresh_now refuses an answer without one.
    return cast(str, identity.access_token)


def refresh_identity(identity: Identity) -> Identity:
    """Refresh ``identity`` now (the admin action), even if its token is valid.

    Shares ``get_access_token``'s claim: callers racing it get one refresh.
    Raises ``RefreshNotSupported`` for GitHub and Microsoft (without calling
    PluginLab), ``ReauthenticationRequired`` on 422 (``needs_reauth`` is set),
    or another ``RemoteError`` (nothing changes then).
    """
    if not identity.can_refresh:
        raise RefreshNotSupported(
            f"{identity.get_provider_display()} tokens cannot be refreshed.",
            code="auth/refresh-not-supported",
        )

    def done(row: Identity, started: datetime) -> bool:
        return row.refreshed_at is not None and row.refreshed_at > started

    row, _refreshed = _single_flight(identity.pk, done)
    return row


def refresh_if_expiring(identity_id: int, *, within_seconds: int) -> bool:
    """Refresh one identity unless its token is valid for ``within_seconds``
    (the periodic task); True when this call refreshed it."""

    def done(row: Identity, started: datetime) -> bool:
        return bool(row.access_token) and _valid_for(
            row.access_token_expires_at, within_seconds, timezone.now()
        )

    _row, refreshed = _single_flight(identity_id, done)
    return refreshed


def expiring_identity_ids(within_seconds: int) -> list[int]:
    """Refreshable identities of active members, with a refresh token and not
    marked ``needs_reauth``, whose access token expires within the window."""
    horizon = timezone.now() + timedelta(seconds=within_seconds)
    return list(
        Identity.objects.filter(
            provider__in=REFRESHABLE_PROVIDERS,
            needs_reauth=False,
            refresh_token__isnull=False,
            access_token_expires_at__lte=horizon,
            member__deleted_remotely_at__isnull=True,
        )
        .exclude(refresh_token="")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# The hot path -------------------------------------------------------------------

_FAST_SQL: dict[tuple[str, bool], str] = {}


def _fast_sql(conn: Any, by_remote_id: bool) -> str:
    """``SELECT id, access_token, <valid long enough>`` for one
    member and provider, built once per backend. Plain SQL because building
    the equivalent queryset costs more than the read and the decryption
    together; the expiry is compared in the database, so nothing but the
    token needs converting."""
    key = (conn.vendor, by_remote_id)
    if key not in _FAST_SQL:
        q = conn.ops.quote_name
        identity, member = Identity._meta, Member._meta
        expires = q(identity.get_field("access_token_expires_at").column)
        table = q(identity.db_table)
        if by_remote_id:
            source = (
                f"{table} INNER JOIN {q(member.db_table)} ON "
                f"{table}.{q('member_id')} = {q(member.db_table)}.{q(member.pk.column)}"
            )
            who = f"{q(member.db_table)}.{q(member.get_field('remote_id').column)}"
        else:
            source, who = table, f"{table}.{q('member_id')}"
        # Names are the models' own; every value is a parameter.
        columns = (
            f"{table}.{q('id')}, {table}.{q('access_token')}, ({expires} IS NULL OR {expires} > %s)"
        )
        where = f"{who} = %s AND {table}.{q('provider')} = %s"
        _FAST_SQL[key] = f"SELECT {columns} FROM {source} WHERE {where}"  # noqa: S608
    return _FAST_SQL[key]


def _stored_token(
    member: Member | str, provider: str, min_valid_seconds: float
) -> tuple[int, str | None, bool] | None:
    """(pk, decrypted access token, valid for min_valid_seconds)."""
    who: int | str  # the member's pk, or its PluginLab id
    if isinstance(member, Member):
        by_remote_id, who = False, member.pk
    elif isinstance(member, str) and member:
        by_remote_id, who = True, member
    else:
        raise TypeError("member must be a Member or a PluginLab member id (str).")
    conn = connections[router.db_for_read(Identity)]
    horizon = timezone.now() + timedelta(seconds=min_valid_seconds)
    params = [conn.ops.adapt_datetimefield_value(horizon), who, provider]
    row = fetch_one(conn, _fast_sql(conn, by_remote_id), params)
    if row is None:
        return None
    pk, ciphertext, valid = row
    return pk, _ACCESS_TOKEN.from_db_value(ciphertext, None, conn), bool(valid)


_ACCESS_TOKEN = Identity._meta.get_field("access_token")


# The single flight ---------------------------------------------------------------


def _load(pk: int) -> Identity:
    identity = Identity.objects.select_related("member").filter(pk=pk).first()
    if identity is None:  # deleted (unlinked) meanwhile
        raise IdentityNotFound("", "", f"Identity {pk} was removed (unlinked) meanwhile.")
    return identity


def _claim(pk: int, lease_seconds: float) -> datetime | None:
    """One conditional UPDATE: the new lease if this process won it, else None."""
    now = timezone.now()
    lease = now + timedelta(seconds=lease_seconds)
    won = (
        Identity.objects.filter(pk=pk)
        .filter(Q(refresh_lease_expires_at__isnull=True) | Q(refresh_lease_expires_at__lte=now))
        .update(refresh_lease_expires_at=lease)
    )
    return lease if won else None


def _release(pk: int, lease: datetime) -> None:
    Identity.objects.filter(pk=pk, refresh_lease_expires_at=lease).update(
        refresh_lease_expires_at=None
    )


def _single_flight(pk: int, done: Callable[[Identity, datetime], bool]) -> tuple[Identity, bool]:
    """Return the identity once ``done(row, started)`` holds, refreshing it
    through PluginLab if this process wins the claim; (row, refreshed here)."""
    started = timezone.now()
    lease_seconds = float(pluginlab_settings.IDENTITY_REFRESH_LEASE_SECONDS)
    deadline = time.monotonic() + 2 * lease_seconds
    delay = 0.01
    waited_on_other = False
    while True:
        identity = _load(pk)
        if done(identity, started):
            return identity, False
        lease = identity.refresh_lease_expires_at
        if lease is None or lease <= timezone.now():
            if waited_on_other and identity.needs_reauth:
                # The claimer we waited for was told "sign in again".
                raise ReauthenticationRequired(identity.member.remote_id, identity.provider)
            claimed = _claim(pk, lease_seconds)
            if claimed is not None:
                try:
                    identity = _load(pk)  # someone may have finished just before
                    if done(identity, started):
                        return identity, False
                    return _refresh_now(identity), True
                finally:
                    _release(pk, claimed)
        waited_on_other = True
        if time.monotonic() > deadline:
            raise PluginLabUnavailable(
                f"Another process has been refreshing this {identity.provider} token for "
                f"over {2 * lease_seconds:g} s; try again later.",
                code="identity/refresh-in-progress",
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def _refresh_now(identity: Identity) -> Identity:
    """Remote first: a failure raises before anything is stored."""
    member = identity.member
    try:
        fresh = get_pluginlab_client().refresh_identity_token(member.remote_id, identity.provider)
    except RefreshTokenFailed as exc:
        Identity.objects.filter(pk=identity.pk).update(needs_reauth=True)
        raise ReauthenticationRequired(
            member.remote_id, identity.provider, detail=exc.message
        ) from exc
    if not fresh.access_token:
        # Storing it would leave the member with no token and every caller
        # waiting for one; the stored row stays as it was.
        raise PluginLabUnavailable(
            f"PluginLab answered the {identity.provider} token refresh of member "
            f"{member.remote_id} without an access token; nothing was stored. Try again later.",
            code="identity/refresh-without-token",
        )
    for attempt in range(5):
        try:
            return sync.store_identity(member, fresh, refreshed=True)
        except OperationalError:
            # SQLite answers "database is locked" at once (no busy wait) when a
            # read-then-write transaction meets another writer; try again.
            if connection.vendor != "sqlite" or attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
