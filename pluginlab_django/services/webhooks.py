"""Webhook deliveries: stored first, then processed exactly once.

A verified delivery is written to ``WebhookDelivery`` before anything acts on
it, so a crash, a failing handler or a lost task never loses it: it stays
``received`` or ``failed`` and can be processed again. Two unique columns —
``delivery_id`` (the signed body's ``deliveryId``) and ``body_digest`` (the
raw body's SHA-256) — turn PluginLab's redeliveries, concurrent identical
POSTs and replays of one signed body under new headers into one row.
Processing starts with a *claim* — a conditional UPDATE
from a claimable status to ``processing`` — so of several workers, admin
actions or retries racing on one delivery exactly one runs the handlers.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import Field, Q
from django.utils import timezone

from .. import signals, sync
from ..conf import pluginlab_settings
from ..models import SyncRun, WebhookDelivery
from ..webhooks import VerifiedDelivery, WebhookHeaders, body_digest, parse_payload

__all__ = [
    "ProcessResult",
    "StoredDelivery",
    "WebhookHandlingError",
    "member_id_from_payload",
    "process_delivery",
    "prune_deliveries",
    "store_delivery",
]

logger = logging.getLogger("pluginlab_django.webhooks")

Status = WebhookDelivery.Status

#: Outcome of ``process_delivery`` when another processor holds the delivery
#: or it is already done: nothing was run.
SKIPPED = "skipped"


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
    """
    if verified is None:
        event = _str(payload.get("event")) or headers.get(WebhookHeaders.EVENT) or ""
        raw_id = _str(payload.get("deliveryId")) or headers.get(WebhookHeaders.DELIVERY_ID) or ""
        digest = body_digest(body)
    else:
        event, raw_id, digest = verified.event, verified.delivery_id, verified.digest
    delivery_id = _delivery_id(raw_id, digest)
    fields = {
        "hook_id": (headers.get(WebhookHeaders.HOOK_ID) or "")[:_HOOK_MAX],
        "event": event[:_EVENT_MAX],
        "headers": {name: headers[name] for name in _STORED_HEADERS if name in headers},
        "body": body,
        "body_digest": digest,
        "queued_at": timezone.now() if queued else None,
    }
    # In autocommit the lone INSERT is atomic by itself; inside a caller's
    # transaction a savepoint keeps a duplicate from breaking it.
    guard = (
        transaction.atomic()
        if transaction.get_connection().in_atomic_block
        else contextlib.nullcontext()
    )
    delivery: WebhookDelivery | None
    try:
        with guard:
            delivery = WebhookDelivery.objects.create(delivery_id=delivery_id, **fields)
    except IntegrityError:
        # Another request stored this delivery id or this very body.
        delivery = (
            WebhookDelivery.objects.filter(Q(delivery_id=delivery_id) | Q(body_digest=digest))
            .order_by("pk")
            .first()
        )
        if delivery is None:  # pragma: no cover - the conflicting row was pruned meanwhile
            raise
        return StoredDelivery(delivery, created=False)
    # Robust: the delivery is stored, so the sender must get its 2xx.
    _send_robust(signals.webhook_stored, delivery=delivery)
    return StoredDelivery(delivery, created=True)


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
    claim = _claim(pk, reprocess=reprocess)
    if claim is None:
        return ProcessResult(WebhookDelivery.objects.filter(pk=pk).first(), SKIPPED)
    claimed = WebhookDelivery.objects.get(pk=pk)

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

    status = Status.PROCESSED if handled else Status.IGNORED
    _finish(claimed, claim, status=status, error="", processed_at=timezone.now())
    _send_robust(signals.webhook_processed, delivery=claimed)
    return ProcessResult(claimed, status)


def _claim(pk: int, *, reprocess: bool) -> datetime | None:
    """Move the delivery to ``processing`` if claimable; return the claim's timestamp.

    One UPDATE with the claimable states in its WHERE clause: the database
    lets exactly one concurrent caller change the row.
    """
    now = timezone.now()
    statuses = [Status.RECEIVED, Status.FAILED]
    if reprocess:
        statuses.append(Status.IGNORED)
    abandoned = now - timedelta(seconds=pluginlab_settings.WEBHOOK_CLAIM_TIMEOUT_SECONDS)
    placeholders = ", ".join(["%s"] * len(statuses))
    claimed = _update(
        "status = %s, claimed_at = %s, attempts = attempts + 1",
        [Status.PROCESSING, now],
        f"id = %s AND (status IN ({placeholders}) OR (status = %s AND claimed_at < %s))",
        [pk, *statuses, Status.PROCESSING, abandoned],
    )
    return now if claimed else None


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
        delivery.refresh_from_db()
        logger.warning(
            "Webhook delivery pk=%s: claim from %s was taken over; outcome %s not recorded",
            delivery.pk,
            claim.isoformat(),
            fields.get("status"),
        )


def _update(assignments: str, values: list[Any], condition: str, params: list[Any]) -> int:
    """``UPDATE <deliveries> SET assignments WHERE condition``; rows changed.

    Plain SQL: a worker runs two of these per delivery, and building the
    same UPDATE with the ORM costs several times the statement (measured:
    most of a delivery's processing CPU). Column names come from the model;
    every value is a parameter.
    """
    connection = transaction.get_connection(router.db_for_write(WebhookDelivery))
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    prepared = [adapt(v) if isinstance(v, datetime) else v for v in [*values, *params]]
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {assignments} WHERE {condition}", prepared)  # noqa: S608
        return cursor.rowcount


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
