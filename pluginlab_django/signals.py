"""Signals sent by django-pluginlab so site code can react without polling.

Every signal is sent with ``sender`` set to the model class concerned (or
``WebhookDelivery`` for webhook signals) and the keyword arguments listed.
"""

import threading

from django.dispatch import Signal

# Sync ---------------------------------------------------------------------
#: A member row was created or changed from remote data. kwargs: member, created
member_synced = Signal()
#: A member no longer listed by a complete sync was marked. kwargs: member
member_deleted_remotely = Signal()
#: A member was deleted remotely through our own services. kwargs: member_id
member_deleted = Signal()
#: A member's identities were refreshed from remote. kwargs: member, identities,
#: removed (providers no longer listed remotely, deleted locally)
identities_synced = Signal()
#: A quota snapshot was taken. kwargs: member, snapshot
quota_snapshot_taken = Signal()
#: API key records were synced from Plugipay. kwargs: created, updated
api_keys_synced = Signal()
#: A SyncRun finished (successfully or not). kwargs: run
sync_finished = Signal()

# Webhooks -----------------------------------------------------------------
#: A valid delivery was stored. kwargs: delivery
webhook_stored = Signal()
#: About to process a delivery. kwargs: delivery, event, payload
webhook_received = Signal()
#: A delivery was processed. kwargs: delivery
webhook_processed = Signal()
#: Processing failed (it stays reprocessable). kwargs: delivery, exception
webhook_failed = Signal()

_webhook_event_signals: dict[str, Signal] = {}
_webhook_event_signals_lock = threading.Lock()


def webhook_event(name: str) -> Signal:
    """The signal sent for deliveries of one event name (e.g. ``"member.updated"``).

    The same ``Signal`` is returned for the same name, so site code can
    connect before any delivery arrives::

        @receiver(webhook_event("member.updated"))
        def on_member_updated(sender, delivery, event, payload, **kwargs): ...

    kwargs: delivery, event, payload. Sent right after ``webhook_received``.
    """
    try:
        return _webhook_event_signals[name]
    except KeyError:
        with _webhook_event_signals_lock:
            return _webhook_event_signals.setdefault(name, Signal())
