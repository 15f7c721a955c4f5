"""Remote data → rows: the ONE path by which PluginLab and Plugipay data is stored.

Whatever triggers it — a Celery task, a webhook, an admin action, the
``pluginlab_sync`` command — data fetched by ``pluginlab_django.clients``
reaches the database only through these functions. Nothing here imports
Celery: ``pluginlab_django.tasks`` wraps them.

Bulk syncs (``sync_members``, ``sync_identities``, ``snapshot_quotas``,
``sync_api_keys``) record a ``SyncRun`` and return it; they record failures
in it rather than raising (``run.exception`` holds the exception in the
calling process). ``sync_members`` alone raises ``SyncAlreadyRunning`` when
another full member sync holds the lock. ``progress(done, total)`` callbacks
let a caller draw a progress bar without this package knowing about it.
"""

from .apikeys import store_api_key, sync_api_keys
from .identities import store_identities, store_identity, sync_identities
from .member_batches import active_member_id_chunks
from .members import (
    forget_member,
    mark_member_deleted,
    store_member,
    sync_member,
    sync_members,
)
from .plans import TokenPlan, store_member_plans
from .quotas import snapshot_quotas, store_quota
from .runs import Progress, SyncAlreadyRunning

__all__ = [
    "Progress",
    "SyncAlreadyRunning",
    "TokenPlan",
    "active_member_id_chunks",
    "forget_member",
    "mark_member_deleted",
    "snapshot_quotas",
    "store_api_key",
    "store_identities",
    "store_identity",
    "store_member",
    "store_member_plans",
    "store_quota",
    "sync_api_keys",
    "sync_identities",
    "sync_member",
    "sync_members",
]
