"""Celery tasks for processing, sweeping and pruning webhook deliveries.

Thin wrappers over ``pluginlab_django.services.webhooks`` and
``services.webhook_dispatch``; the claim inside ``process_delivery`` makes a
duplicated, retried or re-queued task harmless.
"""

from __future__ import annotations

import logging
import random
import time

from celery import Task, shared_task

from ..services import webhook_dispatch
from ..services import webhooks as webhook_service

__all__ = [
    "process_received_webhooks",
    "process_webhook_delivery",
    "prune_webhook_deliveries",
    "sweep_webhook_deliveries",
]

logger = logging.getLogger("pluginlab_django.webhooks")

#: Retry delays grow as 30 s, 60 s, 120 s, ... capped at an hour, with jitter.
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600
#: Immediate repeats of a delivery whose handler lost SQLite's write lock.
LOCKED_RETRIES = 3


class WebhookProcessingFailed(Exception):
    """Processing recorded a failure; raised only to make Celery retry."""


def retry_countdown(retries: int) -> float:
    delay = min(RETRY_BASE_SECONDS * 2**retries, RETRY_MAX_SECONDS)
    return delay * random.uniform(0.75, 1.25)


@shared_task(bind=True, max_retries=6, ignore_result=True)
def process_webhook_delivery(self: Task, delivery_pk: int) -> str:
    """Process one stored delivery; retry with backoff while it fails.

    When tasks run eagerly (no broker) a failure is not retried in-process
    (it would only repeat at once): the delivery stays ``failed`` for the
    admin's Reprocess action. After the last retry it stays ``failed`` too.
    """
    result = process_retrying_locked(delivery_pk)
    if result.failed and not self.request.is_eager:
        if self.request.retries >= self.max_retries:
            logger.error(
                "Webhook delivery pk=%s still failing after %s retries; left for reprocessing",
                delivery_pk,
                self.request.retries,
            )
            return result.outcome
        raise self.retry(
            exc=WebhookProcessingFailed(result.error),
            countdown=retry_countdown(self.request.retries),
        )
    return result.outcome


def process_retrying_locked(delivery_pk: int) -> webhook_service.ProcessResult:
    """``process_delivery``, repeated at once a few times while SQLite's
    write lock was busy (see ``db_locks``)."""
    return retry_locked(webhook_service.process_delivery(delivery_pk))


def retry_locked(result: webhook_service.ProcessResult) -> webhook_service.ProcessResult:
    """Process a delivery again at once (a few times) while its failure was
    SQLite's busy write lock; any other result is returned as it is."""
    for _ in range(LOCKED_RETRIES):
        if not (result.failed and "database is locked" in (result.error or "")):
            break
        if result.delivery is None:  # pragma: no cover - a failed result has its row
            break
        time.sleep(random.uniform(0.05, 0.2))
        result = webhook_service.process_delivery(result.delivery.pk)
    return result


@shared_task(ignore_result=True)
def process_received_webhooks() -> dict[str, int]:
    """Process every ``received`` delivery, oldest first (the receiver's
    drain, see ``services.webhook_dispatch``); a failed one is retried by
    ``process_webhook_delivery`` with backoff."""
    return dict(webhook_dispatch.drain_received(retry=retry_locked))


@shared_task(ignore_result=True)
def prune_webhook_deliveries() -> int:
    """Delete processed deliveries older than ``WEBHOOK_RETENTION_DAYS`` (failed ones stay)."""
    deleted = webhook_service.prune_deliveries()
    logger.info("Pruned %s webhook deliveries", deleted)
    return deleted


@shared_task(ignore_result=True)
def sweep_webhook_deliveries() -> int:
    """Re-queue deliveries left ``received`` (never or long ago queued) or ``processing``
    (claim older than ``WEBHOOK_CLAIM_TIMEOUT_SECONDS``): a broker that was down, a
    lost task or a dead worker never leaves a delivery unprocessed."""
    return webhook_dispatch.sweep_stuck_deliveries()
