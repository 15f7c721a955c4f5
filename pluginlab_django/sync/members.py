"""Members: PluginLab's member list → ``Member`` rows.

Every member write goes through one statement (``member_upsert``): a page
of a full sync, one member from a webhook or the admin (``store_member`` is
a page of one), a write-through edit. "Newer ``updatedAtMs`` wins; a row
marked deleted is rewritten; without timestamps, write" is decided by the
database inside that statement, so a page fetched before a webhook stored a
newer copy can never roll the row back, whichever commits first.

``sync_members`` walks every page and writes each page with a constant
number of SQL statements, whatever the page size: the upsert and one UPDATE
of the ``SyncRun`` (counters, cursor, heartbeat) in the same transaction, so
the cursor never points past unstored data. On PostgreSQL the two are one
statement (the UPDATE is a second CTE of the upsert); on SQLite the upsert
is preceded by a write-lock and a read of the page's existing ids, for
exact counting. When ``member_synced`` has receivers, one more SELECT per
page reads the written rows back for them.

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

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import signals
from ..clients import get_pluginlab_client
from ..clients import types as remote
from ..conf import pluginlab_settings
from ..db_locks import retry_if_locked
from ..models import Member, SyncRun
from .member_upsert import UpsertResult, upsert_members
from .prefetch import prefetched
from .row_upsert import Outcome, RowWrite
from .runs import PROGRESS_FIELDS, Progress, fail_run, finish_run, start_exclusive_run
from .seen_ids import SeenIds

__all__ = [
    "PageResult",
    "forget_member",
    "mark_member_deleted",
    "store_member",
    "store_member_page",
    "sync_member",
    "sync_members",
]

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


# One member ----------------------------------------------------------------


@retry_if_locked  # SQLite: a concurrent writer took the lock (db_locks)
def store_member(member: remote.Member) -> RowWrite[Member]:
    """Upsert one remote member (a page of one); return the row and outcome.

    Unchanged or older data (``updatedAtMs`` not newer) is not written and
    sends no signal; the returned row is then the stored one.
    """
    result = store_member_page([member], now=timezone.now(), want_rows=True)
    if result.written:
        write = result.written[0]
    else:
        write = RowWrite(Member.objects.get(remote_id=member.id), Outcome.UNCHANGED)
    if write.written:
        signals.member_synced.send(sender=Member, member=write.row, created=write.created)
    return write


def sync_member(member_id: str) -> Member | None:
    """Fetch one member and store it; PluginLab's "no such member" marks the
    row deleted remotely.

    Only a 404 ``auth/member-not-found`` marks; any other 404 (a wrong
    ``AUTH_URL`` path, an unknown plugin, a proxy's page) raises
    ``UnexpectedNotFound`` naming the URL that answered, and nothing changes.
    Used by webhooks and the admin. Remote errors propagate (the caller
    retries); the local row is untouched then.
    """
    member = get_pluginlab_client().get_member(member_id)
    if member is None:
        return mark_member_deleted(member_id)
    return store_member(member).row


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


def forget_member(member_id: str) -> bool:
    """Drop the local row of a member deleted on PluginLab *by us* (the
    admin's delete, after PluginLab confirmed). Remote deletions seen by a
    sync are only marked (``mark_member_deleted``), never dropped."""
    deleted, _by_model = Member.objects.filter(remote_id=member_id).delete()
    return bool(deleted)


# Every member ---------------------------------------------------------------


@dataclass
class PageResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    #: One ``RowWrite`` per written member, only when asked (``want_rows``).
    written: list[RowWrite[Member]] = field(default_factory=list)


def store_member_page(
    members: list[remote.Member],
    *,
    now: datetime,
    want_rows: bool = False,
    progress: SyncRun | None = None,
) -> PageResult:
    """Upsert one page in one statement; the statement decides what is newer.

    ``want_rows``: also return the written rows (for ``member_synced``; one
    more SELECT, only when someone listens). ``progress``: the run this is a
    page of, counted and saved with it (``upsert_members``).
    """
    by_id = {member.id: member for member in members}  # a repeated id: last wins
    rows = [{"remote_id": remote_id, **member_row_values(m, now)} for remote_id, m in by_id.items()]
    upserted: UpsertResult = upsert_members(rows, UPDATE_FIELDS, progress=progress)
    result = PageResult(
        created=len(upserted.created),
        updated=len(upserted.updated),
        unchanged=len(upserted.unchanged),
    )
    pks = [*upserted.created.values(), *upserted.updated.values()]
    if want_rows and pks:
        # Re-read so receivers see whole rows (plan, quota pointer included).
        result.written = [
            RowWrite(row, upserted.outcome(row.remote_id))
            for row in Member.objects.filter(pk__in=pks).order_by("pk")
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
    try:
        for page in pages:
            now = timezone.now()
            before = {name: getattr(run, name) for name in PROGRESS_FIELDS}
            try:
                with transaction.atomic():
                    run.pages += 1
                    # An empty cursor after the last page: resuming starts afresh.
                    run.cursor = page.next_page_token or ""
                    # Counts the page into the run and saves its progress, on
                    # PostgreSQL in the page statement itself.
                    result = store_member_page(
                        page.items, now=now, want_rows=want_rows, progress=run
                    )
            except BaseException:
                # The page was rolled back, so is the run's progress: a failed
                # run records the cursor of the last page actually stored.
                for name, value in before.items():
                    setattr(run, name, value)
                raise
            if seen is not None:
                seen.add_many(member.id for member in page.items)
            for write in result.written:
                signals.member_synced.send(sender=Member, member=write.row, created=write.created)
            done += len(page.items)
            if progress is not None:
                progress(done, page.total)
    finally:
        # Stop the prefetching thread now rather than whenever the generator
        # is collected: a failed run keeps its exception, whose traceback
        # keeps this frame, and with it the generator, alive.
        close = getattr(pages, "close", None)
        if close is not None:
            close()


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
