"""Who processes a stored delivery: Celery, or the request itself — never nobody.

``WEBHOOK_PROCESSING`` chooses:

- ``"celery"``: once the request's transaction has committed, the receiver
  makes sure a *drain* runs soon (``process_received_webhooks``): a task
  that processes every ``received`` delivery, oldest first, until none is
  left. One drain is queued per ``DRAIN_KICK_SECONDS`` per process, with
  that countdown, so a burst of deliveries costs the broker and the worker
  one task, not one each (a delivery committed within the window is
  committed before the drain starts, so the drain sees it). With eager
  tasks (no broker) each delivery's task runs at once, as before;
- ``"inline"``: the receiver processes the delivery itself, once the
  request's transaction has committed (sites without a Celery app);
- ``"auto"`` (default): ``"celery"`` when a Celery app with a broker (or
  eager tasks) is configured, else ``"inline"`` — so a site with no Celery
  yet still has its mirror updated.

A delivery whose drain could not be queued (the broker was down) gets
``queued_at`` emptied and stays ``received``: the sweeper
(``sweep_stuck_deliveries``, a periodic task in the default beat schedule)
and ``manage.py pluginlab_webhooks reprocess`` pick it up, as they pick up a
delivery whose queued task or claimed run was lost (older than
``WEBHOOK_CLAIM_TIMEOUT_SECONDS``). The claim in ``process_delivery`` keeps
every extra queueing harmless: a delivery is processed once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..conf import pluginlab_settings
from ..models import WebhookDelivery
from . import webhooks as webhook_service

__all__ = [
    "CELERY",
    "INLINE",
    "PROCESSING_CHOICES",
    "ReprocessSummary",
    "celery_broker_configured",
    "dispatch",
    "dispatch_on_commit",
    "drain_received",
    "kick_drain",
    "processing_mode",
    "reprocess_deliveries",
    "stuck_deliveries",
    "sweep_stuck_deliveries",
]

logger = logging.getLogger("pluginlab_django.webhooks")

Status = WebhookDelivery.Status

CELERY = "celery"
INLINE = "inline"
AUTO = "auto"
PROCESSING_CHOICES = (AUTO, CELERY, INLINE)
#: A delivery nothing was queued for waits this long before the sweeper takes
#: it (inline processing runs within the request, well inside it).
UNQUEUED_GRACE_SECONDS = 60
#: Deliveries re-queued per sweep; the next sweep takes the rest.
SWEEP_BATCH = 1000
#: At most one drain queued per this many seconds per process, with this countdown.
DRAIN_KICK_SECONDS = 0.25
#: Deliveries a drain claims per statement: enough to make the claim's cost
#: per delivery small, few enough that concurrent drains share a burst and a
#: worker that dies strands only a few claims until the sweeper takes them.
DRAIN_BATCH = 25
#: A drain that has run this long queues its successor and returns (so a
#: worker's time limits and warm shutdowns never cut a long one short).
DRAIN_BUDGET_SECONDS = 60.0


def celery_broker_configured(app: Any = None) -> bool:
    """True when the current Celery app can run a task: eager, or a broker URL set.

    Celery's own fallback (AMQP on localhost) does not count: with no Celery
    app configured, ``current_app`` is that default and ``.delay()`` fails.
    """
    if app is None:
        from celery import current_app

        app = current_app
    conf = app.conf
    return bool(conf.task_always_eager or conf.broker_url or conf.broker_write_url)


def processing_mode() -> str:
    """``"celery"`` or ``"inline"``, as ``WEBHOOK_PROCESSING`` resolves now."""
    setting = pluginlab_settings.WEBHOOK_PROCESSING
    if setting in (CELERY, INLINE):
        return setting
    return CELERY if celery_broker_configured() else INLINE


def dispatch_on_commit(pk: int, *, mode: str | None = None) -> None:
    """Process a new delivery, or have a drain run soon, once the current
    transaction commits."""
    mode = mode or processing_mode()
    if mode == CELERY:
        transaction.on_commit(lambda: kick_drain([pk]))
    else:
        transaction.on_commit(lambda: dispatch([pk], mode=mode))


def dispatch(pks: Iterable[int], *, mode: str | None = None) -> int:
    """Hand deliveries to their processor; return how many were handed over.

    Never raises for a broker or handler failure: a stored delivery must not
    turn into a 5xx. A delivery that could not be queued keeps ``queued_at``
    empty for the sweeper.
    """
    mode = mode or processing_mode()
    pks = list(pks)
    if mode == INLINE:
        for pk in pks:
            try:
                webhook_service.process_delivery(pk)
            except Exception:
                logger.exception(
                    "Inline processing of webhook delivery pk=%s raised; it is left for "
                    "`pluginlab_webhooks reprocess`",
                    pk,
                )
        return len(pks)
    return _queue(pks)


def _queue(pks: list[int]) -> int:
    from ..tasks.webhooks import process_webhook_delivery

    queued, unqueued = [], []
    for pk in pks:
        try:
            process_webhook_delivery.apply_async((pk,), retry=False)
        except Exception as exc:
            unqueued.append(pk)
            logger.error(
                "Could not queue webhook delivery pk=%s (%s: %s); it stays 'received' for "
                "the sweeper or `pluginlab_webhooks reprocess`",
                pk,
                type(exc).__name__,
                exc,
            )
        else:
            queued.append(pk)
    if unqueued:
        WebhookDelivery.objects.filter(pk__in=unqueued).update(queued_at=None)
    return len(queued)


# The drain -----------------------------------------------------------------

_next_kick = 0.0
_kick_lock = threading.Lock()
_clock = time.monotonic  # the window's clock (tests hold it still)


def kick_drain(pks: list[int]) -> None:
    """Make sure a drain runs soon for the deliveries ``pks`` just stored.

    Never raises: when the drain cannot be queued, every delivery that was
    counting on it (``pks`` and those stored in this process since the
    failed attempt began) gets ``queued_at`` emptied for the sweeper, and
    the next delivery tries the broker again.
    """
    global _next_kick
    from ..tasks.webhooks import process_received_webhooks

    if process_received_webhooks.app.conf.task_always_eager:
        _queue(pks)  # runs each delivery's task now, as without a broker
        return
    started = timezone.now()
    now = _clock()
    with _kick_lock:
        if now < _next_kick:
            return  # a drain queued within the window starts after it
        _next_kick = now + DRAIN_KICK_SECONDS
    try:
        process_received_webhooks.apply_async(countdown=DRAIN_KICK_SECONDS, retry=False)
    except Exception as exc:
        with _kick_lock:
            _next_kick = 0.0
        WebhookDelivery.objects.filter(
            Q(pk__in=pks) | Q(queued_at__gte=started), status=Status.RECEIVED
        ).update(queued_at=None)
        logger.error(
            "Could not queue the webhook drain (%s: %s); deliveries stay 'received' for "
            "the sweeper or `pluginlab_webhooks reprocess`",
            type(exc).__name__,
            exc,
        )


def drain_received(
    *,
    batch: int = DRAIN_BATCH,
    budget_seconds: float = DRAIN_BUDGET_SECONDS,
    retry: Callable[[webhook_service.ProcessResult], webhook_service.ProcessResult] | None = None,
) -> Counter[str]:
    """Process ``received`` deliveries, oldest first, until none is left.

    ``batch`` at a time are claimed in one statement
    (``services.webhooks.process_received``), each row as ``process_delivery``
    claims it, so drains running at once (one per web process kicked it) and
    the per-delivery tasks never process one twice. ``retry(result)``
    (optional) may run a failed delivery again at once and return the new
    result (the task repeats one that lost SQLite's write lock); a delivery
    still failed is handed to the per-delivery task, whose retries back off.
    Past ``budget_seconds`` the drain queues its successor and returns.
    Returns the outcomes counted.
    """
    from ..tasks.webhooks import process_received_webhooks, process_webhook_delivery

    deadline = time.monotonic() + budget_seconds
    outcomes: Counter[str] = Counter()
    while True:
        results = webhook_service.process_received(batch)
        if not results:
            return outcomes
        for result in results:
            if result.failed and retry is not None:
                result = retry(result)
            outcomes[str(result.outcome)] += 1
            if result.failed and result.delivery is not None:
                _queue_retry(process_webhook_delivery, result.delivery.pk)
        if time.monotonic() > deadline:
            try:
                process_received_webhooks.apply_async(retry=False)
            except Exception:
                logger.exception("Could not queue the next webhook drain; the sweeper will")
            return outcomes


def _queue_retry(task: Any, pk: int) -> None:
    from ..tasks.webhooks import retry_countdown

    try:
        task.apply_async((pk,), countdown=retry_countdown(0), retry=False)
    except Exception:
        logger.exception(
            "Could not queue a retry of webhook delivery pk=%s; it stays 'failed' for "
            "`pluginlab_webhooks reprocess`",
            pk,
        )


# The sweeper ---------------------------------------------------------------


def stuck_deliveries(now: datetime | None = None) -> QuerySet[WebhookDelivery]:
    """Deliveries nothing will process unless they are handed over again.

    ``received`` with nothing queued (past a short grace) or queued longer
    than ``WEBHOOK_CLAIM_TIMEOUT_SECONDS`` ago (the task was lost), and
    ``processing`` claims older than that timeout (the worker died).
    """
    now = now or timezone.now()
    timeout = timedelta(seconds=pluginlab_settings.WEBHOOK_CLAIM_TIMEOUT_SECONDS)
    grace = timedelta(seconds=min(UNQUEUED_GRACE_SECONDS, timeout.total_seconds()))
    return WebhookDelivery.objects.filter(
        Q(status=Status.RECEIVED, queued_at__isnull=True, received_at__lt=now - grace)
        | Q(status=Status.RECEIVED, queued_at__lt=now - timeout)
        | Q(status=Status.PROCESSING, claimed_at__lt=now - timeout)
    )


def sweep_stuck_deliveries(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> int:
    """Hand the oldest stuck deliveries to their processor again; return how many."""
    now = now or timezone.now()
    pks = list(
        stuck_deliveries(now).order_by("received_at", "pk").values_list("pk", flat=True)[:limit]
    )
    if not pks:
        return 0
    mode = processing_mode()
    if mode == CELERY:
        # Stamped first: a sweep running meanwhile does not queue them again.
        WebhookDelivery.objects.filter(pk__in=pks).update(queued_at=now)
    handed = dispatch(pks, mode=mode)
    logger.info("Webhook sweeper handed over %s of %s deliveries (%s)", handed, len(pks), mode)
    return handed


# From a terminal -------------------------------------------------------------


@dataclass
class ReprocessSummary:
    """What ``reprocess_deliveries`` did, by outcome."""

    selected: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    #: ``(delivery_id, error)`` of each delivery that failed.
    failures: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "selected": self.selected,
            **{str(name): self.outcomes[name] for name in _OUTCOMES},
            "failures": [{"deliveryId": i, "error": e} for i, e in self.failures],
        }

    def line(self) -> str:
        counts = ", ".join(f"{self.outcomes[name]} {name!s}" for name in _OUTCOMES)
        return f"{self.selected} deliveries selected: {counts}."


_OUTCOMES = (Status.PROCESSED, Status.IGNORED, Status.FAILED, webhook_service.SKIPPED, "queued")


def reprocess_deliveries(
    queryset: QuerySet[WebhookDelivery], *, reprocess: bool = False, queue: bool = False
) -> ReprocessSummary:
    """Process every delivery of ``queryset`` here (or queue it, ``queue=True``).

    ``reprocess`` lets ``ignored`` deliveries be claimed too. Each delivery is
    claimed as usual, so one a worker is running is skipped, not run twice.
    """
    summary = ReprocessSummary()
    rows = list(queryset.order_by("received_at", "pk").values_list("pk", "delivery_id"))
    summary.selected = len(rows)
    if queue:
        pks = [pk for pk, _ in rows]
        WebhookDelivery.objects.filter(pk__in=pks).update(queued_at=timezone.now())
        summary.outcomes["queued"] = _queue(pks)
        return summary
    for pk, delivery_id in rows:
        result = webhook_service.process_delivery(pk, reprocess=reprocess)
        summary.outcomes[result.outcome] += 1
        if result.failed:
            summary.failures.append((delivery_id, result.error))
    return summary
