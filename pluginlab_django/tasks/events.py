"""The Celery task that sends the custom event outbox.

A thin wrapper over ``services.outbox.send_pending``. Enqueued after each
commit that recorded uses (``kick_sender``) and run periodically by the
default beat schedule, so whatever a failed run left ``pending`` goes out
later. It never resends an event left ``sending``: that is the admin's call.

Running it twice is harmless: one sender at a time holds the lock, and a
run that finds it held retries shortly (the holder may have finished its
last round just before the new events were committed).
"""

from __future__ import annotations

import logging
import random

from celery import Task, shared_task
from django.core.exceptions import ImproperlyConfigured

from ..services import outbox

__all__ = ["send_pending_events"]

logger = logging.getLogger("pluginlab_django.events")

#: Backoff while PluginLab is unavailable: 10 s, 20 s, 40 s, ... capped at 10 minutes.
RETRY_BASE_SECONDS = 10
RETRY_MAX_SECONDS = 600
BUSY_RETRY_SECONDS = 2


class EventsUnavailable(Exception):
    """PluginLab could not take the events; raised only to make Celery retry."""


def retry_countdown(retries: int) -> float:
    delay = min(RETRY_BASE_SECONDS * 2**retries, RETRY_MAX_SECONDS)
    return delay * random.uniform(0.75, 1.25)


@shared_task(bind=True, acks_late=True, max_retries=8, ignore_result=True)
def send_pending_events(self: Task) -> dict:
    """Send every pending custom event; retry with backoff while PluginLab is down.

    Eagerly run (no broker), it does not retry in-process (that would only
    repeat at once, inside the request): the events stay ``pending`` for the
    periodic task or ``pluginlab_events send-pending``.
    """
    try:
        summary = outbox.send_pending()
    except ImproperlyConfigured as exc:
        logger.error("Custom events not sent: %s", exc)
        return {"error": str(exc)}
    result = summary.as_dict()
    if self.request.is_eager or self.request.retries >= self.max_retries:
        return result
    if summary.busy:
        raise self.retry(countdown=BUSY_RETRY_SECONDS * random.uniform(1, 1.5))
    if summary.unavailable and summary.still_pending:
        logger.warning("%s custom event(s) wait: %s", summary.still_pending, summary.unavailable)
        raise self.retry(
            exc=EventsUnavailable(summary.unavailable),
            countdown=retry_countdown(self.request.retries),
        )
    return result
