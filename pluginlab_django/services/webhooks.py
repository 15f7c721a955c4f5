"""Webhook deliveries: stored first, then processed exactly once.

A verified delivery is written to ``WebhookDelivery`` before anything acts on
it, so a crash, a failing handler or a lost task never loses it: it stays
``received`` or ``failed`` and can be processed again. Two unique columns —
``delivery_id`` (the signed body's ``deliveryId``) and ``body_digest`` (the
raw body's SHA-256) — turn PluginLab's redeliveries, concurrent identical
POSTs and replays of one signed body under new headers into one row.
Processing starts with a *claim* — a conditional UPDATE
from a claimable status to ``processing`` — so of several workers, admin
actions or retries racing on one delivery exactly one runs the handlers. A
drain claims a batch of ``received`` deliveries in one such UPDATE and
records their outcomes in one UPDATE per status (``process_received``);
storing, claiming and recording are plain SQL on PostgreSQL and SQLite, the
ORM's statements costing several times what they do.

Handling, in order: the ``webhook_received`` signal, the per-event signal
(``signals.webhook_event(name)``), then the built-in handling, which reaches
rows only through ``pluginlab_django.sync``:

- ``member.*`` → ``sync.sync_member(id)``: the event is only a hint, the
  member is fetched from PluginLab and the mirror shows what PluginLab says
  (only PluginLab's own "not found" marks it deleted), so a replayed
  ``member.deleted`` cannot delete a member PluginLab still has, nor an old
  ``member.updated`` roll a row back
- ``identity.*`` → ``sync.sync_identities([id])``
- ``quota.*`` → ``sync.snapshot_quotas([id])``

with ``id`` read from ``data.member.id`` — the only part of the body the spec
lets us rely on. A delivery nothing handles (no built-in handling and no
receiver for its event name) is marked ``ignored``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Field, Q
from django.utils import timezone

from .. import signals, sync
from ..conf import pluginlab_settings
from ..models import SyncRun, WebhookDelivery
from ..sql_values import adapt_datetimes
from ..webhooks import VerifiedDelivery, WebhookHeaders, body_digest, parse_payload

__all__ = [
    "ProcessResult",
    "StoredDelivery",
    "WebhookHandlingError",
    "member_id_from_payload",
    "process_delivery",
    "process_received",
    "prune_deliveries",
    "store_delivery",
]

logger = logging.getLogger("pluginlab_django.webhooks")

Status = WebhookDelivery.Status

#: Outcome of ``process_delivery`` when another processor holds the delivery
#: or it is already done: nothing was run.
SKIPPED = "skipped"
# Outcomes as plain strings (what ProcessResult.outcome holds).
_PROCESSED = str(Status.PROCESSED)
_IGNORED = str(Status.IGNORED)
#: A batch records the outcomes of its handled deliveries together, at the
#: latest this long after the first of them was handled: a worker that dies
#: meanwhile leaves at most this window's deliveries to be run again once
#: their claims expire (the same as a crash between one handler and its
#: UPDATE, widened by this window).
OUTCOMES_WINDOW_SECONDS = 0.1


def _field(name: str) -> Field[Any, Any]:
    # get_field's type includes reverse relations; these names are columns.
    field = WebhookDelivery._meta.get_field(name)
    assert isinstance(field, Field), name
    return field


def _width(name: str) -> int:
    max_length = _field(name).max_length
    assert max_length is not None, name
    return max_length


# Column widths of WebhookDelivery; longer values are hashed or cut, never
# allowed to fail the INSERT of a valid delivery.
_ID_MAX = _width("delivery_id")
_HOOK_MAX = _width("hook_id")
_EVENT_MAX = _width("event")
_ERROR_MAX = 4000
# Headers kept with a delivery (the signature too, so the raw body can be
# verified again later).
_STORED_HEADERS = (*WebhookHeaders.ALL, "Content-Type", "User-Agent")
_FIELDS = {field.name: field for field in WebhookDelivery._meta.concrete_fields}


class WebhookHandlingError(Exception):
    """A built-in handler could not bring the mirror up to date."""


@dataclass(frozen=True)
class StoredDelivery:
    delivery: WebhookDelivery
    #: False when the delivery id was already stored (a redelivery).
    created: bool


@dataclass(frozen=True)
class ProcessResult:
    delivery: WebhookDelivery | None
    #: "processed", "ignored", "failed", or "skipped" (not claimed: done or busy).
    outcome: str
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome == Status.FAILED


# Storing -------------------------------------------------------------------


def store_delivery(
    *,
    body: str,
    headers: Mapping[str, str],
    payload: Mapping[str, Any],
    verified: VerifiedDelivery | None = None,
    queued: bool = False,
) -> StoredDelivery:
    """Store a verified delivery once; a repeated body or delivery id returns the first row.

    Race-safe: the INSERT relies on the unique constraints (delivery id and
    body digest), so of concurrent identical deliveries one creates the row
    and the others read it. ``headers`` is case-insensitive
    (``request.headers``); ``payload`` is the decoded ``body``; ``verified``
    (from ``webhooks.verify_delivery``) gives the event and delivery id as
    judged on the signed body — without it they are read from the body, then
    the headers. ``queued`` records that processing is about to be handed to
    Celery (``queued_at``).

    On PostgreSQL and SQLite (3.35+) the row is written by one plain
    ``INSERT … ON CONFLICT DO NOTHING RETURNING id``: a duplicate returns no
    row instead of raising, so no savepoint is needed inside a caller's
    transaction, and the ORM's ``create()`` (most of the receiver's CPU,
    measured with benchmarks/webhook_stages.py) is not paid per delivery.
    """
    if verified is None:
        event = _str(payload.get("event")) or headers.get(WebhookHeaders.EVENT) or ""
        raw_id = _str(payload.get("deliveryId")) or headers.get(WebhookHeaders.DELIVERY_ID) or ""
        digest = body_digest(body)
    else:
        event, raw_id, digest = verified.event, verified.delivery_id, verified.digest
    delivery_id = _delivery_id(raw_id, digest)
    now = timezone.now()
    fields: dict[str, Any] = {
        "delivery_id": delivery_id,
        "hook_id": (headers.get(WebhookHeaders.HOOK_ID) or "")[:_HOOK_MAX],
        "event": event[:_EVENT_MAX],
        "headers": {name: headers[name] for name in _STORED_HEADERS if name in headers},
        "body": body,
        "body_digest": digest,
        "received_at": now,
        "queued_at": now if queued else None,
    }
    connection = _connection()
    for _ in range(3):
        if _returns_rows(connection):
            delivery = _insert_unless_stored(connection, fields)
        else:
            delivery = _create_unless_stored(fields)
        if delivery is not None:
            # Robust: the delivery is stored, so the sender must get its 2xx.
            _send_robust(signals.webhook_stored, delivery=delivery)
            return StoredDelivery(delivery, created=True)
        # Another request stored this delivery id or this very body.
        existing = _first_stored(connection, delivery_id, digest)
        if existing is not None:
            return StoredDelivery(existing, created=False)
        # The conflicting row was pruned meanwhile: try the INSERT again.
    raise IntegrityError(f"webhook delivery {delivery_id!r} conflicts with a row that vanished")


#: What a new row holds besides the ``fields`` of ``store_delivery``.
_NEW_ROW = {
    "status": Status.RECEIVED,
    "attempts": 0,
    "error": "",
    "processed_at": None,
    "claimed_at": None,
}
#: The same as SQL literals (the same on every backend we write SQL for).
_NEW_ROW_SQL = {
    "status": "'" + str(Status.RECEIVED) + "'",
    "attempts": "0",
    "error": "''",
    "processed_at": "NULL",
    "claimed_at": "NULL",
}
_insert_sql: dict[str, str] = {}


def _insert_unless_stored(connection: Any, fields: dict[str, Any]) -> WebhookDelivery | None:
    """The new row, or None when a unique column (delivery id, body digest) was taken.

    The statement's text is built once per database alias (the columns
    every new row starts with are literals in it); ``fields`` are parameters.
    """
    sql = _insert_sql.get(connection.alias)
    if sql is None:
        ops = connection.ops
        columns = [_FIELDS[name].column for name in [*fields, *_NEW_ROW]]
        values = ["%s"] * len(fields) + list(_NEW_ROW_SQL.values())
        sql = (
            f"INSERT INTO {ops.quote_name(WebhookDelivery._meta.db_table)} "  # noqa: S608
            f"({', '.join(map(ops.quote_name, columns))}) "
            f"VALUES ({', '.join(values)}) ON CONFLICT DO NOTHING "
            f"RETURNING {ops.quote_name(WebhookDelivery._meta.pk.column)}"
        )
        _insert_sql[connection.alias] = sql
    params = [_FIELDS[name].get_db_prep_save(value, connection) for name, value in fields.items()]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    delivery = WebhookDelivery(pk=row[0], **fields, **_NEW_ROW)
    delivery._state.adding = False
    delivery._state.db = connection.alias
    return delivery


def _create_unless_stored(fields: dict[str, Any]) -> WebhookDelivery | None:
    """``_insert_unless_stored`` through the ORM, for backends without RETURNING."""
    # In autocommit the lone INSERT is atomic by itself; inside a caller's
    # transaction a savepoint keeps a duplicate from breaking it.
    guard = (
        transaction.atomic()
        if transaction.get_connection().in_atomic_block
        else contextlib.nullcontext()
    )
    try:
        with guard:
            return WebhookDelivery.objects.create(**fields)
    except IntegrityError:
        return None


def _connection() -> Any:
    return connections[router.db_for_write(WebhookDelivery)]


def _returns_rows(connection: Any) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING`` and ``UPDATE … RETURNING`` work here:
    PostgreSQL, SQLite 3.35+ (elsewhere the ORM's slower path is taken)."""
    return connection.vendor in ("postgresql", "sqlite") and bool(
        connection.features.can_return_columns_from_insert
    )


def _delivery_id(value: str, digest: str) -> str:
    """The delivery id, else ``sha256:`` + the body's digest.

    The digest keeps a delivery without any id deduplicated against its own
    exact redelivery; an id too long for the column is hashed.
    """
    if not value:
        return "sha256:" + digest
    if len(value) > _ID_MAX:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


# Processing ----------------------------------------------------------------


def process_delivery(delivery: WebhookDelivery | int, *, reprocess: bool = False) -> ProcessResult:
    """Run the handlers for one stored delivery, if this call wins the claim.

    ``received`` and ``failed`` deliveries are claimable, and with
    ``reprocess=True`` (the admin action) ``ignored`` ones too — say, after a
    receiver for that event was added. A ``processing`` claim older than
    ``WEBHOOK_CLAIM_TIMEOUT_SECONDS`` is presumed abandoned. A ``processed``
    delivery is never run again. Handler exceptions are recorded on the row
    (status ``failed``, ``error``), not raised: the caller decides on retries
    from ``ProcessResult.failed``.
    """
    pk = delivery.pk if isinstance(delivery, WebhookDelivery) else delivery
    claimed = _claim(pk, reprocess=reprocess)
    if claimed is None:
        return ProcessResult(WebhookDelivery.objects.filter(pk=pk).first(), SKIPPED)
    claim, row = claimed
    return _run_claimed(row, claim)


def process_received(limit: int) -> list[ProcessResult]:
    """Claim up to ``limit`` ``received`` deliveries, oldest first, and process them.

    What a drain runs: one UPDATE claims the whole batch and returns its rows
    (``UPDATE … WHERE id IN (SELECT … LIMIT n [FOR UPDATE SKIP LOCKED])
    RETURNING …``), so a delivery costs the worker its handlers and the one
    UPDATE that records its outcome, instead of a claim, a SELECT and that
    UPDATE. Each row is claimed exactly as ``process_delivery`` claims it
    (``processing``, ``claimed_at``, ``attempts + 1``), so concurrent drains,
    per-delivery tasks and admin actions still run a delivery once; on
    PostgreSQL concurrent drains skip each other's rows instead of waiting.
    A batch whose claim has grown older than half of
    ``WEBHOOK_CLAIM_TIMEOUT_SECONDS`` (slow handlers) gives its unstarted
    rows back (``received``, attempts restored) rather than let the sweeper
    take them over while they wait. Returns the results, empty when nothing
    was waiting.
    """
    connection = _connection()
    if not _returns_rows(connection):
        pks = list(
            WebhookDelivery.objects.filter(status=Status.RECEIVED)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        return [process_delivery(pk) for pk in pks]
    claim = timezone.now()
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    pk_column = connection.ops.quote_name(WebhookDelivery._meta.pk.column)
    oldest = f"SELECT {pk_column} FROM {table} WHERE status = %s ORDER BY {pk_column} LIMIT %s"  # noqa: S608
    update = (
        f"UPDATE {table} SET status = %s, claimed_at = %s, attempts = attempts + 1 "  # noqa: S608
        f"WHERE status = %s AND {pk_column} IN "
    )
    if connection.features.has_select_for_update_skip_locked:
        # Materialized: a LIMIT … FOR UPDATE subquery inlined into the UPDATE
        # may be run again by the plan, claiming more than ``limit`` rows.
        sql = (
            f"WITH picked AS MATERIALIZED ({oldest} FOR UPDATE SKIP LOCKED) "  # noqa: S608
            f"{update}(SELECT {pk_column} FROM picked)"
        )
        params = [Status.RECEIVED, limit, Status.PROCESSING, claim, Status.RECEIVED]
    else:
        sql = f"{update}({oldest})"
        params = [Status.PROCESSING, claim, Status.RECEIVED, Status.RECEIVED, limit]
    rows = _returning(connection, sql, params)
    rows.sort(key=lambda row: row.pk)
    started = time.monotonic()
    give_back_after = pluginlab_settings.WEBHOOK_CLAIM_TIMEOUT_SECONDS / 2
    results: list[ProcessResult] = []
    handled: list[tuple[WebhookDelivery, str]] = []
    handled_since = 0.0
    for index, row in enumerate(rows):
        if index and time.monotonic() - started > give_back_after:
            _give_back(rows[index:], claim)
            break
        outcome = _attempt(row, claim)
        if isinstance(outcome, ProcessResult):  # failed, and recorded already
            results.append(outcome)
            continue
        if not handled:
            handled_since = time.monotonic()
        handled.append((row, outcome))
        if time.monotonic() - handled_since >= OUTCOMES_WINDOW_SECONDS:
            results.extend(_record_outcomes(handled, claim))
            handled = []
    results.extend(_record_outcomes(handled, claim))
    return results


def _run_claimed(claimed: WebhookDelivery, claim: datetime) -> ProcessResult:
    """Run the handlers of a delivery this process has claimed; record the outcome."""
    outcome = _attempt(claimed, claim)
    if isinstance(outcome, ProcessResult):
        return outcome
    _finish(claimed, claim, status=outcome, error="", processed_at=timezone.now())
    _send_robust(signals.webhook_processed, delivery=claimed)
    return ProcessResult(claimed, outcome)


def _attempt(claimed: WebhookDelivery, claim: datetime) -> ProcessResult | str:
    """Run the handlers of a claimed delivery: the status to record
    (``processed`` or ``ignored``), or, when a handler raised, the failure's
    result, recorded and signalled here."""
    try:
        handled = _handle(claimed)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:_ERROR_MAX]
        _finish(claimed, claim, status=Status.FAILED, error=error, processed_at=None)
        logger.warning(
            "Webhook delivery %s (%s) failed on attempt %s: %s",
            claimed.delivery_id,
            claimed.event,
            claimed.attempts,
            type(exc).__name__,
            exc_info=True,
        )
        _send_robust(signals.webhook_failed, delivery=claimed, exception=exc)
        return ProcessResult(claimed, Status.FAILED, error)
    return _PROCESSED if handled else _IGNORED


def _record_outcomes(
    handled: list[tuple[WebhookDelivery, str]], claim: datetime
) -> list[ProcessResult]:
    """Record the outcomes of handled deliveries of one claim, one UPDATE per
    status, then send ``webhook_processed`` for each: what ``_finish`` and
    the signal do for one delivery (a row whose claim was taken over keeps
    what its new owner recorded, and the row is reloaded)."""
    results = []
    for status in (_PROCESSED, _IGNORED):
        deliveries = [delivery for delivery, outcome in handled if outcome == status]
        if not deliveries:
            continue
        now = timezone.now()
        placeholders = ", ".join(["%s"] * len(deliveries))
        connection = _connection()
        table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
        recorded = {
            pk
            for (pk,) in _execute(
                connection,
                f"UPDATE {table} SET status = %s, error = %s, processed_at = %s "  # noqa: S608
                f"WHERE id IN ({placeholders}) AND status = %s AND claimed_at = %s RETURNING id",
                [status, "", now, *(d.pk for d in deliveries), Status.PROCESSING, claim],
            )
        }
        for delivery in deliveries:
            if delivery.pk in recorded:
                delivery.status, delivery.error, delivery.processed_at = status, "", now
            else:
                _taken_over(delivery, claim, status)
            _send_robust(signals.webhook_processed, delivery=delivery)
            results.append(ProcessResult(delivery, status))
    return results


def _claim(pk: int, *, reprocess: bool) -> tuple[datetime, WebhookDelivery] | None:
    """Move the delivery to ``processing`` if claimable; return the claim's
    timestamp and the claimed row.

    One UPDATE with the claimable states in its WHERE clause: the database
    lets exactly one concurrent caller change the row. Where the backend can,
    the UPDATE returns the row too (no SELECT after it).
    """
    now = timezone.now()
    statuses = [Status.RECEIVED, Status.FAILED]
    if reprocess:
        statuses.append(Status.IGNORED)
    abandoned = now - timedelta(seconds=pluginlab_settings.WEBHOOK_CLAIM_TIMEOUT_SECONDS)
    placeholders = ", ".join(["%s"] * len(statuses))
    assignments = "status = %s, claimed_at = %s, attempts = attempts + 1"
    condition = f"id = %s AND (status IN ({placeholders}) OR (status = %s AND claimed_at < %s))"
    params = [Status.PROCESSING, now, pk, *statuses, Status.PROCESSING, abandoned]
    connection = _connection()
    if _returns_rows(connection):
        table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
        sql = f"UPDATE {table} SET {assignments} WHERE {condition}"  # noqa: S608
        rows = _returning(connection, sql, params)
        return (now, rows[0]) if rows else None
    if not _update(assignments, params[:2], condition, params[2:]):
        return None
    return now, WebhookDelivery.objects.get(pk=pk)


def _give_back(deliveries: list[WebhookDelivery], claim: datetime) -> None:
    """Return claimed, unstarted deliveries to ``received`` (attempts restored)."""
    placeholders = ", ".join(["%s"] * len(deliveries))
    _update(
        "status = %s, claimed_at = NULL, attempts = attempts - 1",
        [Status.RECEIVED],
        f"id IN ({placeholders}) AND status = %s AND claimed_at = %s",
        [*(delivery.pk for delivery in deliveries), Status.PROCESSING, claim],
    )
    logger.info(
        "Gave back %s claimed webhook deliveries not started within half the claim timeout",
        len(deliveries),
    )


def _first_stored(connection: Any, delivery_id: str, digest: str) -> WebhookDelivery | None:
    """The first row holding this delivery id or this body digest."""
    if not _returns_rows(connection):
        return (
            WebhookDelivery.objects.filter(Q(delivery_id=delivery_id) | Q(body_digest=digest))
            .order_by("pk")
            .first()
        )
    ops = connection.ops
    sql = (
        f"SELECT {_all_columns(connection)} "  # noqa: S608 - names from the model
        f"FROM {ops.quote_name(WebhookDelivery._meta.db_table)} "
        f"WHERE {ops.quote_name(_FIELDS['delivery_id'].column)} = %s "
        f"OR {ops.quote_name(_FIELDS['body_digest'].column)} = %s "
        f"ORDER BY {ops.quote_name(WebhookDelivery._meta.pk.column)} LIMIT 1"
    )
    rows = _as_deliveries(connection, _execute(connection, sql, [delivery_id, digest]))
    return rows[0] if rows else None


def _all_columns(connection: Any) -> str:
    return ", ".join(
        connection.ops.quote_name(field.column) for field in WebhookDelivery._meta.concrete_fields
    )


def _returning(connection: Any, sql: str, params: list[Any]) -> list[WebhookDelivery]:
    """Run ``sql`` (an UPDATE) with ``RETURNING`` every column; the rows as models."""
    rows = _execute(connection, f"{sql} RETURNING {_all_columns(connection)}", params)
    return _as_deliveries(connection, rows)


def _as_deliveries(connection: Any, rows: list[tuple[Any, ...]]) -> list[WebhookDelivery]:
    """Rows of every column (in field order) as models, their values converted
    from the database as the ORM converts them."""
    if not rows:
        return []
    fields = WebhookDelivery._meta.concrete_fields
    ops = connection.ops
    table = WebhookDelivery._meta.db_table
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(table)
        found = ops.get_db_converters(column) + field.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    names = [field.attname for field in fields]
    deliveries = []
    for row in rows:
        values = list(row)
        for index, column, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], column, connection)
        deliveries.append(WebhookDelivery.from_db(connection.alias, names, values))
    return deliveries


def _finish(delivery: WebhookDelivery, claim: datetime, **fields: Any) -> None:
    """Record the outcome (in the row and on ``delivery``), unless the claim was taken over."""
    updated = _update(
        ", ".join(f"{_field(name).column} = %s" for name in fields),
        list(fields.values()),
        "id = %s AND status = %s AND claimed_at = %s",
        [delivery.pk, Status.PROCESSING, claim],
    )
    if updated:
        for name, value in fields.items():
            setattr(delivery, name, value)
    else:
        _taken_over(delivery, claim, fields.get("status"))


def _taken_over(delivery: WebhookDelivery, claim: datetime, status: str | None) -> None:
    delivery.refresh_from_db()
    logger.warning(
        "Webhook delivery pk=%s: claim from %s was taken over; outcome %s not recorded",
        delivery.pk,
        claim.isoformat(),
        status,
    )


def _update(assignments: str, values: list[Any], condition: str, params: list[Any]) -> int:
    """``UPDATE <deliveries> SET assignments WHERE condition``; rows changed.

    Plain SQL: building the same UPDATE with the ORM costs several times the
    statement (measured: most of a delivery's processing CPU). Column names
    come from the model; every value is a parameter.
    """
    connection = transaction.get_connection(router.db_for_write(WebhookDelivery))
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    prepared = adapt_datetimes(connection, [*values, *params])
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {assignments} WHERE {condition}", prepared)  # noqa: S608
        return cursor.rowcount


def _execute(connection: Any, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run a statement that returns rows (``… RETURNING``); datetimes adapted
    for the backend as the ORM adapts them."""
    with connection.cursor() as cursor:
        cursor.execute(sql, adapt_datetimes(connection, params))
        return cursor.fetchall()


def _handle(delivery: WebhookDelivery) -> bool:
    """Send the signals and run the built-in handling; True if anything acted."""
    payload = parse_payload(delivery.body.encode())
    event = delivery.event
    kwargs = {"delivery": delivery, "event": event, "payload": payload}
    signals.webhook_received.send(sender=WebhookDelivery, **kwargs)
    event_signal = signals.webhook_event(event)
    has_receivers = event_signal.has_listeners(WebhookDelivery)
    event_signal.send(sender=WebhookDelivery, **kwargs)
    return _handle_builtin(event, payload) or has_receivers


def member_id_from_payload(payload: Mapping[str, Any]) -> str | None:
    """``data.member.id`` when present and a non-empty string."""
    data = payload.get("data")
    member = data.get("member") if isinstance(data, Mapping) else None
    member_id = member.get("id") if isinstance(member, Mapping) else None
    return member_id if isinstance(member_id, str) and member_id else None


def _handle_builtin(event: str, payload: Mapping[str, Any]) -> bool:
    family = event.split(".", 1)[0]
    handler = _BUILTIN_HANDLERS.get(family)
    member_id = member_id_from_payload(payload)
    if handler is None or member_id is None:
        return False
    handler(event, member_id)
    return True


def _handle_member(event: str, member_id: str) -> None:
    # Whatever the event says (created, updated, deleted): ask PluginLab.
    sync.sync_member(member_id)


def _handle_identity(event: str, member_id: str) -> None:
    _raise_if_failed(sync.sync_identities([member_id]))


def _handle_quota(event: str, member_id: str) -> None:
    _raise_if_failed(sync.snapshot_quotas([member_id]))


def _raise_if_failed(run: SyncRun | None) -> None:
    """Sync runs record their errors instead of raising; a delivery must fail."""
    if run is None:
        return
    if run.status == SyncRun.Status.FAILED or run.failed:
        raise WebhookHandlingError(
            f"{run.get_kind_display()} sync run {run.pk} failed ({run.failed} failed): "
            f"{run.error}".strip()
        )


_BUILTIN_HANDLERS: dict[str, Callable[[str, str], None]] = {
    "member": _handle_member,
    "identity": _handle_identity,
    "quota": _handle_quota,
}


def _send_robust(signal: Any, **kwargs: Any) -> None:
    """Lifecycle signals sent after the outcome is recorded must not undo it."""
    for receiver, result in signal.send_robust(sender=WebhookDelivery, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "Receiver %r of a webhook lifecycle signal raised %s",
                receiver,
                type(result).__name__,
                exc_info=result,
            )


# Retention -----------------------------------------------------------------


def prune_deliveries(*, older_than: timedelta | None = None) -> int:
    """Delete processed (and ignored) deliveries finished before the cut-off.

    ``older_than`` defaults to ``WEBHOOK_RETENTION_DAYS``. Failed, received
    and in-progress deliveries are kept: they still need attention.
    Returns the number of rows deleted.
    """
    if older_than is None:
        older_than = timedelta(days=pluginlab_settings.WEBHOOK_RETENTION_DAYS)
    cutoff = timezone.now() - older_than
    deleted, _ = WebhookDelivery.objects.filter(
        status__in=[Status.PROCESSED, Status.IGNORED], processed_at__lt=cutoff
    ).delete()
    return deleted
