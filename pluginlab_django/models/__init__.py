"""Mirrored PluginLab and Plugipay records, one module per domain."""

from .apikeys import ApiKey
from .dashboard import Dashboard
from .events import CustomEvent
from .identities import Identity
from .members import Member
from .quotas import QuotaSnapshot
from .sync_runs import SyncRun
from .webhooks import WebhookDelivery

__all__ = [
    "ApiKey",
    "CustomEvent",
    "Dashboard",
    "Identity",
    "Member",
    "QuotaSnapshot",
    "SyncRun",
    "WebhookDelivery",
]
