"""Celery task for Plugipay API keys: revoke the keys whose time has come.

A rotation with overlap (``pluginlab_apikeys rotate --overlap``, the admin's
Rotate) schedules the old key's revocation; this task, in the default beat
schedule, carries it out. Thin wrapper over ``services.apikeys.revoke_due``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from ..services import apikeys as apikey_service

__all__ = ["revoke_due_api_keys_task"]

logger = logging.getLogger("pluginlab_django.apikeys")


@shared_task(name="pluginlab_django.tasks.revoke_due_api_keys_task", acks_late=True)
def revoke_due_api_keys_task() -> dict[str, Any]:
    """Safe to run twice or in parallel: a second revoke is reported as
    already revoked; a failed one stays scheduled for the next run."""
    outcomes = apikey_service.revoke_due()
    revoked = [o.record.key_id for o in outcomes if o.revoked]
    failed = {o.record.key_id: o.error for o in outcomes if not o.revoked}
    if revoked:
        logger.info("Revoked %d API key(s) as scheduled: %s", len(revoked), ", ".join(revoked))
    return {"revoked": revoked, "failed": failed}
