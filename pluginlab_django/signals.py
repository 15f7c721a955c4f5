"""Signals sent by django-pluginlab so site code can react without polling.

Every signal is sent with ``sender`` set to the model class concerned (or
``WebhookDelivery`` for webhook signals) and the keyword arguments listed.
"""

from django.dispatch import Signal

# Sync ---------------------------------------------------------------------
#: A member row was created or changed from remote data. kwargs: member, created
member_synced = Signal()
#: A member no longer listed by a complete sync was marked. kwargs: member
member_deleted_remotely = Signal()
#: A member was deleted remotely through our own services. kwargs: member_id
member_deleted = Signal()
#: A member's identities were refreshed from remote. kwargs: member, identities
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
