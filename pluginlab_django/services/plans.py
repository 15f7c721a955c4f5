"""Keep each mirrored member's plan and price current from their tokens.

The admin API does not return a member's plan: tokens are where it shows up,
on every authenticated request. Writing it on every request would put a
database write on the hot path, so a small in-process memo remembers what
was last recorded per member and the database is touched only when a token
carries a plan or price not seen for that member recently. Even then the
UPDATE is conditional (``WHERE remote_id = … AND NOT (plan_id = … AND
price_id = …)``) so an unchanged row is never rewritten.

The memo entries expire (``MEMO_SECONDS``) so a member mirrored *after*
their first request still gets their plan recorded soon.
"""

from __future__ import annotations

import logging
import threading
import time

from django.core.signals import setting_changed
from django.db import DatabaseError
from django.dispatch import receiver

from ..models import Member
from ..tokens import TokenPayload

logger = logging.getLogger(__name__)

#: Seconds a recorded (plan, price) is trusted before the database is asked again.
MEMO_SECONDS = 300.0
#: Members remembered per process; the memo is emptied when it grows past this.
MEMO_SIZE = 10_000

_memo: dict[str, tuple[str, str, float]] = {}  # uid -> (plan_id, price_id, monotonic time)
_memo_lock = threading.Lock()


def record_plan_from_token(payload: TokenPayload) -> bool:
    """Store the token's plan and price on the member's row if they changed.

    Returns True when a row was updated. Never raises for a database error:
    authentication must not fail because the mirror could not be written.
    """
    plan_id = payload.user.plan_id or ""
    price_id = payload.user.price_id or ""
    now = time.monotonic()
    seen = _memo.get(payload.uid)
    if seen is not None and seen[:2] == (plan_id, price_id) and now - seen[2] < MEMO_SECONDS:
        return False
    try:
        updated = (
            Member.objects.filter(remote_id=payload.uid)
            .exclude(plan_id=plan_id, price_id=price_id)
            .update(plan_id=plan_id, price_id=price_id)
        )
    except DatabaseError:
        logger.warning("Could not record a member's plan from their token", exc_info=True)
        return False
    with _memo_lock:
        if len(_memo) >= MEMO_SIZE:
            _memo.clear()
        _memo[payload.uid] = (plan_id, price_id, now)
    return bool(updated)


def forget_recorded_plans() -> None:
    """Empty the memo (tests; the next token of each member is checked again)."""
    with _memo_lock:
        _memo.clear()


@receiver(setting_changed)
def _forget_on_settings_change(*, setting: str, **kwargs) -> None:
    if setting == "PLUGINLAB":
        forget_recorded_plans()
