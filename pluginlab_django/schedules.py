"""A default Celery beat schedule for the periodic syncs.

Paste into your settings (with Celery configured from Django settings under
the ``CELERY_`` namespace)::

    from pluginlab_django.schedules import DEFAULT_BEAT_SCHEDULE

    CELERY_BEAT_SCHEDULE = {
        **DEFAULT_BEAT_SCHEDULE,
        # your own entries; or override one, e.g. hourly quota snapshots:
        # "pluginlab-snapshot-quotas": {**DEFAULT_BEAT_SCHEDULE["pluginlab-snapshot-quotas"],
        #                               "schedule": 3600},
    }

and run ``celery -A yourproject beat`` next to the workers. Intervals are in
seconds (plain numbers, so this module needs no Celery import). Webhooks keep
members fresh between runs; the full member sync is what notices members
deleted without a webhook, and a second one never runs while one is running.
"""

from __future__ import annotations

from typing import Any

MINUTE = 60
HOUR = 60 * MINUTE

DEFAULT_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Every member, in bulk; marks members PluginLab no longer lists.
    "pluginlab-sync-members": {
        "task": "pluginlab_django.tasks.sync_members_task",
        "schedule": 6 * HOUR,
    },
    # Quota usage of every active member, fanned out in SYNC_CHUNK_SIZE chunks.
    "pluginlab-snapshot-quotas": {
        "task": "pluginlab_django.tasks.snapshot_quotas_task",
        "schedule": 30 * MINUTE,
    },
    # OAuth identities (token expiry times, unlinked providers), fanned out.
    "pluginlab-sync-identities": {
        "task": "pluginlab_django.tasks.sync_identities_task",
        "schedule": 12 * HOUR,
    },
    # Plugipay API key records (created or revoked elsewhere).
    "pluginlab-sync-api-keys": {
        "task": "pluginlab_django.tasks.sync_api_keys_task",
        "schedule": 1 * HOUR,
    },
    # Processed webhook deliveries older than WEBHOOK_RETENTION_DAYS.
    "pluginlab-prune-webhook-deliveries": {
        "task": "pluginlab_django.tasks.webhooks.prune_webhook_deliveries",
        "schedule": 24 * HOUR,
    },
    # API keys whose revocation a rotation with overlap scheduled.
    "pluginlab-revoke-due-api-keys": {
        "task": "pluginlab_django.tasks.revoke_due_api_keys_task",
        "schedule": 5 * MINUTE,
    },
    # Webhook deliveries nothing will process otherwise: stored while the
    # broker was down, or their task or worker lost (WEBHOOK_CLAIM_TIMEOUT_SECONDS).
    "pluginlab-sweep-webhook-deliveries": {
        "task": "pluginlab_django.tasks.webhooks.sweep_webhook_deliveries",
        "schedule": 5 * MINUTE,
    },
    # Custom usage events still pending (PluginLab was down, a task was lost).
    "pluginlab-send-pending-events": {
        "task": "pluginlab_django.tasks.events.send_pending_events",
        "schedule": 1 * MINUTE,
    },
}

#: Opt-in (not in DEFAULT_BEAT_SCHEDULE): refresh OAuth access tokens that
#: expire within IDENTITY_REFRESH_WINDOW_SECONDS, so ``get_access_token``
#: rarely waits for PluginLab. Add it with
#: ``CELERY_BEAT_SCHEDULE = {**DEFAULT_BEAT_SCHEDULE, **IDENTITY_TOKEN_REFRESH_SCHEDULE}``.
IDENTITY_TOKEN_REFRESH_SCHEDULE: dict[str, dict[str, Any]] = {
    "pluginlab-refresh-identity-tokens": {
        "task": "pluginlab_django.tasks.refresh_identity_tokens_task",
        "schedule": 5 * MINUTE,
    },
}
