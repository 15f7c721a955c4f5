"""Who processes a stored delivery: Celery, or the request itself — never nobody.

``WEBHOOK_PROCESSING`` chooses:

- ``"celery"``: the receiver queues ``process_webhook_delivery`` once the
  request's transaction has committed;
- ``"inline"``: the receiver processes the delivery itself, once the
  request's transaction has committed (sites without a Celery app);
- ``"auto"`` (default): ``"celery"`` when a Celery app with a broker (or
  eager tasks) is configured, else ``"inline"`` — so a site with no Celery
  yet still has its mirror updated.

A delivery whose task could not be queued (the broker was down) keeps
``queued_at`` empty and stays ``received``: the sweeper
(``sweep_stuck_deliveries``, a periodic task in the default beat schedule)
and ``manage.py pluginlab_webhooks reprocess`` pick it up, as they pick up a
delivery whose queued task or claimed run was lost (older than
``WEBHOOK_CLAIM_TIMEOUT_SECONDS``). The claim in ``process_delivery`` keeps
every extra queueing harmless: a delivery is processed once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
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


def celery_broker_configured(app: Any = None) -> bool:
    """True when the current Celery app can run a task: eager, or a broker URL set.

    Celery's own fallback (AMQP on localhost) does not count: with no Celery
    app configured, ``current_app`` is that default and ``.delay()`` fails.
    """
    if app is None:
        from celery import current_app as app
    conf = app.conf
    return bool(conf.task_always_eager or conf.broker_url or conf.broker_write_url)


def processing_mode() -> str:
    """``"celery"`` or ``"inline"``, as ``WEBHOOK_PROCESSING`` resolves now."""
    setting = pluginlab_settings.WEBHOOK_PROCESSING
    if setting in (CELERY, INLINE):
        return setting
    return CELERY if celery_broker_configured() else INLINE


def dispatch_on_commit(pk: int, *, mode: str | None = None) -> None:
    """Process (or queue) a delivery once the current transaction commits."""
    mode = mode or processing_mode()
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
