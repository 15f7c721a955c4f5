"""Members: PluginLab's member list → ``Member`` rows.

``sync_members`` walks every page and writes each page with a constant number
of SQL statements, whatever the page size:

1. one SELECT of the page's existing rows (``remote_id``,
   ``remote_updated_at_ms``, ``deleted_remotely_at`` only);
2. one INSERT ... ON CONFLICT (remote_id) DO UPDATE for the new *and* the
   changed members together (``member_upsert``) — a member whose
   ``updatedAtMs`` is not newer than the stored one (and is not marked
   deleted) is not written at all;
3. one UPDATE of the ``SyncRun`` (counters and cursor), in the same
   transaction as 2., so the cursor never points past unstored data.

The upsert (rather than a plain INSERT) also makes a concurrent insert of the
same member — a webhook's ``sync_member`` racing a page — harmless: no
duplicate, no IntegrityError. On SQLite Django splits a batch into several
INSERTs when it exceeds SQLite's 999-parameter limit (about 45 members);
that is Django's batching, not per-row work. When ``member_synced`` has
receivers, one more SELECT per page reads the written rows back for them.

Only a **complete, successful** run (walked from the first page, no error)
marks members it did not see with ``deleted_remotely_at``; the seen ids are
kept as 8-byte fingerprints (``SeenIds``) and the local ids are streamed, so
memory stays flat at any member count. Rows written since the run started
(e.g. by a webhook) are never marked by it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .. import signals
from ..clients import get_pluginlab_client
from ..clients import types as remote
from ..conf import pluginlab_settings
from ..db_locks import retry_if_locked
from ..models import Member, SyncRun
from .member_upsert import upsert_members
from .prefetch import prefetched
from .runs import Progress, fail_run, finish_run, save_progress, start_exclusive_run
from .seen_ids import SeenIds

__all__ = ["mark_member_deleted", "store_member", "sync_member", "sync_members"]

logger = logging.getLogger("pluginlab_django.sync")

#: Columns an upsert writes. ``plan_id``/``price_id`` (known from tokens and
#: webhooks only) and ``latest_quota`` are never overwritten by a sync.
UPDATE_FIELDS: tuple[str, ...] = (
    "email",
    "name",
    "given_name",
    "family_name",
    "picture_url",
    "sign_in_method",
    "is_verified",
    "has_password",
    "provider_user_id",
    "custom_fields",
    "metadata",
    "remote_created_at",
    "remote_updated_at",
    "remote_updated_at_ms",
    "last_synced_at",
    "deleted_remotely_at",
    "remote_data",
)

#: Pages fetched ahead while one is written (0: fetch and write in turn).
PREFETCH_PAGES = 1

#: Members marked deleted per UPDATE at the end of a complete run.
MARK_CHUNK_SIZE = 500


def member_row_values(member: remote.Member, now: datetime) -> dict[str, Any]:
    """The column values for one remote member (text clipped to column sizes;
    ``remote_data`` keeps the JSON whole)."""
    return {
        "email": member.email[:254],
        "name": (member.name or "")[:255],
        "given_name": (member.given_name or "")[:255],
        "family_name": (member.family_name or "")[:255],
        "picture_url": (member.picture_url or "")[:2048],
        "sign_in_method": member.auth.sign_in_method[:32],
        "is_verified": member.auth.is_verified,
        "has_password": member.auth.has_password,
        "provider_user_id": (member.auth.provider_user_id or "")[:255],
        "custom_fields": member.custom_fields,
        "metadata": member.metadata,
        "remote_created_at": member.created_at,
        "remote_updated_at": member.updated_at,
        "remote_updated_at_ms": member.updated_at_ms,
        "last_synced_at": now,
        "deleted_remotely_at": None,
        "remote_data": member.raw,
    }


def needs_write(
    member: remote.Member, stored_ms: int | None, deleted_remotely_at: datetime | None
) -> bool:
    """Whether remote data should overwrite a stored row.

    Newer ``updatedAtMs`` wins; equal or older data is not written (an older
    copy can arrive late when a webhook and a page race). A row marked
    deleted is always rewritten (the member is listed again). Without
    timestamps on either side we cannot tell, so we write.
    """
    if deleted_remotely_at is not None:
        return True
    if member.updated_at_ms is None or stored_ms is None:
        return True
    return member.updated_at_ms > stored_ms


# One member ----------------------------------------------------------------


@retry_if_locked  # SQLite: a concurrent writer took the lock (db_locks)
def store_member(member: remote.Member) -> tuple[Member, bool]:
    """Upsert one remote member; return ``(row, created)``.

    Unchanged data (same ``updatedAtMs``) is not written and sends no
    signal. Safe against a concurrent insert of the same member.
    """
    now = timezone.now()
    values = member_row_values(member, now)
    written = True
    with transaction.atomic():
        row = Member.objects.select_for_update().filter(remote_id=member.id).first()
        created = row is None
        if created:
            try:
                with transaction.atomic():
                    row = Member.objects.create(remote_id=member.id, **values)
            except IntegrityError:  # inserted concurrently: update it instead
                created = False
                row = Member.objects.select_for_update().get(remote_id=member.id)
        if not created:
            written = needs_write(member, row.remote_updated_at_ms, row.deleted_remotely_at)
            if written:
                for name, value in values.items():
                    setattr(row, name, value)
                row.save(update_fields=UPDATE_FIELDS)
    if written:
        signals.member_synced.send(sender=Member, member=row, created=created)
    return row, created


def sync_member(member_id: str) -> Member | None:
    """Fetch one member and store it; a 404 marks the row deleted remotely.

    Used by webhooks and the admin. Remote errors propagate (the caller
    retries); the local row is untouched then.
    """
    member = get_pluginlab_client().get_member(member_id)
    if member is None:
        return mark_member_deleted(member_id)
    row, _created = store_member(member)
    return row


def mark_member_deleted(member_id: str) -> Member | None:
    """Set ``deleted_remotely_at`` (if not yet set); never drops the row.

    Returns the row, or ``None`` when the member was never mirrored.
    """
    now = timezone.now()
    marked = Member.objects.filter(remote_id=member_id, deleted_remotely_at__isnull=True).update(
        deleted_remotely_at=now
    )
    row = Member.objects.filter(remote_id=member_id).first()
    if marked and row is not None:
        signals.member_deleted_remotely.send(sender=Member, member=row)
    return row


# Every member ---------------------------------------------------------------


@dataclass
class PageResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    #: ``(row, created)`` per written member, only when someone listens.
    written: list[tuple[Member, bool]] = field(default_factory=list)


def store_member_page(
    members: list[remote.Member], *, now: datetime, want_rows: bool = False
) -> PageResult:
    """Upsert one page with one SELECT and one INSERT ... ON CONFLICT.

    ``want_rows``: also return the written rows for ``member_synced`` (one
    more SELECT, only when someone listens).
    """
    by_id = {member.id: member for member in members}  # a repeated id: last wins
    stored = {
        remote_id: (stored_ms, deleted_at)
        for remote_id, stored_ms, deleted_at in Member.objects.filter(
            remote_id__in=list(by_id)
        ).values_list("remote_id", "remote_updated_at_ms", "deleted_remotely_at")
    }
    result = PageResult()
    rows: list[dict[str, Any]] = []
    for remote_id, member in by_id.items():
        found = stored.get(remote_id)
        if found is None:
            result.created += 1
        elif needs_write(member, *found):
            result.updated += 1
        else:
            result.unchanged += 1
            continue
        rows.append({"remote_id": remote_id, **member_row_values(member, now)})
    pks = upsert_members(rows, UPDATE_FIELDS)
    if want_rows and pks:
        # Re-read so receivers see whole rows (plan, quota pointer included).
        result.written = [
            (row, row.remote_id not in stored)
            for row in Member.objects.filter(pk__in=list(pks.values())).order_by("pk")
        ]
    return result


def sync_members(
    *, page_size: int | None = None, resume: bool = False, progress: Progress | None = None
) -> SyncRun:
    """Mirror every member; return the finished ``SyncRun``.

    ``resume``: continue from the cursor of the latest members run if it
    failed (such a run is partial: it marks nothing deleted). Without a
    failed run to continue, a full run starts.

    Raises ``SyncAlreadyRunning`` if another members run holds the lock;
    records (does not raise) every other failure: the run is then
    ``failed``, its ``cursor`` is the last fully stored page's token, and
    nothing is marked deleted.
    """
    page_size = page_size or pluginlab_settings.SYNC_PAGE_SIZE
    run = start_exclusive_run(SyncRun.Kind.MEMBERS, complete=True)
    try:
        start_after = _resume_cursor(run) if resume else None
        if start_after:
            run.complete = False
            run.cursor = start_after
            run.save(update_fields=["complete", "cursor"])
        seen = SeenIds() if run.complete else None
        _walk_pages(run, start_after, page_size, seen, progress)
        if seen is not None:
            run.marked_deleted = _mark_unseen(run, seen)
    except Exception as exc:
        return fail_run(run, exc)
    return finish_run(run)


def _resume_cursor(run: SyncRun) -> str | None:
    previous = (
        SyncRun.objects.filter(kind=SyncRun.Kind.MEMBERS)
        .exclude(pk=run.pk)
        .exclude(status=SyncRun.Status.RUNNING)
        .order_by("-started_at", "-pk")
        .first()
    )
    if previous is not None and previous.status == SyncRun.Status.FAILED and previous.cursor:
        logger.info("Resuming members sync from run %s's cursor", previous.pk)
        return previous.cursor
    return None


def _walk_pages(
    run: SyncRun,
    start_after: str | None,
    page_size: int,
    seen: SeenIds | None,
    progress: Progress | None,
) -> None:
    client = get_pluginlab_client()
    # Build per-member signal payloads only when someone listens.
    want_rows = signals.member_synced.has_listeners(Member)
    done = 0
    pages = client.iter_member_pages(limit=page_size, start_after=start_after)
    if PREFETCH_PAGES:
        pages = prefetched(pages, depth=PREFETCH_PAGES)
    for page in pages:
        now = timezone.now()
        with transaction.atomic():
            result = store_member_page(page.items, now=now, want_rows=want_rows)
            run.created += result.created
            run.updated += result.updated
            run.unchanged += result.unchanged
            run.pages += 1
            # An empty cursor after the last page: resuming starts afresh.
            run.cursor = page.next_page_token or ""
            save_progress(run)
        if seen is not None:
            seen.add_many(member.id for member in page.items)
        for row, created in result.written:
            signals.member_synced.send(sender=Member, member=row, created=created)
        done += len(page.items)
        if progress is not None:
            progress(done, page.total)


def _mark_unseen(run: SyncRun, seen: SeenIds) -> int:
    """Mark active members the complete run did not see; return how many."""
    seen.freeze()
    candidates = Member.objects.filter(deleted_remotely_at__isnull=True).filter(
        Q(last_synced_at__lt=run.started_at) | Q(last_synced_at__isnull=True)
    )
    # Collect first, write after: SQLite gives no isolation between a
    # streaming read and writes to the same table on one connection.
    missing = [
        pk
        for pk, remote_id in candidates.values_list("pk", "remote_id").iterator(chunk_size=2000)
        if remote_id not in seen
    ]
    marked = 0
    now = timezone.now()
    notify = signals.member_deleted_remotely.has_listeners(Member)
    pks = iter(missing)
    while chunk := list(islice(pks, MARK_CHUNK_SIZE)):
        with transaction.atomic():
            chunk_qs = Member.objects.filter(pk__in=chunk, deleted_remotely_at__isnull=True)
            rows = list(chunk_qs.select_for_update()) if notify else None
            count = chunk_qs.update(deleted_remotely_at=now)
        marked += count
        for row in rows or ():
            row.deleted_remotely_at = now
            signals.member_deleted_remotely.send(sender=Member, member=row)
    if marked:
        logger.info("Members sync run %s marked %s members deleted remotely", run.pk, marked)
    return marked
