"""Keep each mirrored member's plan and price current from their tokens —
without a database write on the request's path.

The admin API does not return a member's plan: tokens are where it shows up,
on every authenticated request. Authentication only *notes* the plan
(``defer_plan_from_token``: a dict lookup, no query); the notes are written
through ``sync.store_member_plans`` after the response, when Django sends
``request_finished`` (after the last byte, for WSGI and ASGI alike), or
inline once ``PENDING_LIMIT`` members wait (code that authenticates outside
a request). Of several tokens of one member the one issued last wins.

A small in-process memo remembers what was last recorded per member, so a
member's plan is noted (and written) only when a token carries a plan or
price not seen for that member recently. The memo entries expire
(``MEMO_SECONDS``) so a member mirrored *after* their first request still
gets their plan recorded soon.

A failed write (the database down) is logged and forgotten from the memo,
so the member's next token tries again; authentication never fails for it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.signals import request_finished
from django.db import DatabaseError, connections, router
from django.dispatch import receiver

from .. import sync
from ..conf import on_settings_change
from ..models import Member
from ..sync.plans import TokenPlan
from ..tokens import TokenPayload

logger = logging.getLogger(__name__)

#: Seconds a recorded (plan, price) is trusted before the database is asked again.
MEMO_SECONDS = 300.0
#: Members remembered per process; the memo is emptied when it grows past this.
MEMO_SIZE = 10_000
#: Members waiting to be written before a noting call writes them itself.
PENDING_LIMIT = 1_000

_memo: dict[str, tuple[str, str, float]] = {}  # uid -> (plan_id, price_id, monotonic time)
_pending: dict[str, TokenPlan] = {}
_lock = threading.Lock()


def _plan_of(payload: TokenPayload) -> TokenPlan:
    return TokenPlan(payload.user.plan_id or "", payload.user.price_id or "", payload.iat)


def _seen_recently(uid: str, plan: TokenPlan, now: float) -> bool:
    seen = _memo.get(uid)
    return (
        seen is not None
        and seen[:2] == (plan.plan_id, plan.price_id)
        and now - seen[2] < (MEMO_SECONDS)
    )


def _remember(uid: str, plan: TokenPlan, now: float) -> None:
    if len(_memo) >= MEMO_SIZE:
        _memo.clear()
    _memo[uid] = (plan.plan_id, plan.price_id, now)


def defer_plan_from_token(payload: TokenPayload) -> bool:
    """Note the token's plan to be written after the response; no query here.

    Returns True when the plan was noted (not seen recently for the member).
    """
    plan = _plan_of(payload)
    now = time.monotonic()
    if _seen_recently(payload.uid, plan, now):
        return False
    with _lock:
        if plan.newer_than(_pending.get(payload.uid)):
            _pending[payload.uid] = plan
            _remember(payload.uid, plan, now)
        backlog = len(_pending) >= PENDING_LIMIT
    if backlog:
        flush_recorded_plans()
    return True


def flush_recorded_plans() -> int:
    """Write every noted plan now; return how many rows changed."""
    with _lock:
        if not _pending:
            return 0
        batch = dict(_pending)
        _pending.clear()
    try:
        return sync.store_member_plans(batch)
    except DatabaseError:
        logger.warning("Could not record members' plans from their tokens", exc_info=True)
        with _lock:  # let the next token of these members try again
            for uid in batch:
                _memo.pop(uid, None)
        return 0


def record_plan_from_token(payload: TokenPayload) -> bool:
    """Store the token's plan and price on the member's row now, if they changed.

    The synchronous form (tests, scripts); requests use
    ``defer_plan_from_token``. Returns True when a row was updated. Never
    raises for a database error.
    """
    plan = _plan_of(payload)
    now = time.monotonic()
    if _seen_recently(payload.uid, plan, now):
        return False
    try:
        updated = sync.store_member_plans({payload.uid: plan})
    except DatabaseError:
        logger.warning("Could not record a member's plan from their token", exc_info=True)
        return False
    with _lock:
        _remember(payload.uid, plan, now)
    return bool(updated)


def forget_recorded_plans() -> None:
    """Empty the memo and drop unwritten notes (tests: start clean)."""
    with _lock:
        _memo.clear()
        _pending.clear()


# A memo of plans seen under other settings (another remote, another tenant)
# must not hide this one's members.
on_settings_change(forget_recorded_plans)


@receiver(request_finished)
def _flush_after_response(**kwargs: Any) -> None:
    if not _pending:
        return
    connection = connections[router.db_for_write(Member)]
    # Django's own request_finished receiver ran first and may have closed
    # the connection (CONN_MAX_AGE = 0): close again what the flush opens.
    opened_here = connection.connection is None
    flush_recorded_plans()
    if opened_here and not connection.in_atomic_block:
        connection.close()
