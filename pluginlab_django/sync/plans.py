"""A member's plan and price, as their tokens carry it → ``Member`` rows.

The admin API does not return plans; tokens do. The rule here: a row is
written only when the plan or price differs (a conditional ``UPDATE``, so an
unchanged row is never rewritten), and of several tokens for one member the
one issued last (``iat``) wins. There is no plan timestamp column, so across
processes the write that runs last wins; a later token of the member sets it
right again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from ..models import Member

__all__ = ["TokenPlan", "store_member_plans"]

#: Member ids per UPDATE (SQLite's parameter limit is 999 on old versions).
CHUNK = 500


@dataclass(frozen=True)
class TokenPlan:
    """What one token said about its member's plan, and when it was issued."""

    plan_id: str
    price_id: str
    issued_at: int = 0

    def newer_than(self, other: TokenPlan | None) -> bool:
        return other is None or self.issued_at >= other.issued_at


def store_member_plans(plans: Mapping[str, TokenPlan]) -> int:
    """Write each member's plan if it changed; return how many rows changed.

    One conditional ``UPDATE`` per distinct (plan, price) — a handful, not
    one per member. Members not mirrored (yet) are skipped: their plan is
    recorded from a later token, once the memo in ``services.plans`` expires.
    """
    by_plan: dict[tuple[str, str], list[str]] = defaultdict(list)
    for remote_id, plan in plans.items():
        by_plan[(plan.plan_id, plan.price_id)].append(remote_id)
    changed = 0
    for (plan_id, price_id), remote_ids in by_plan.items():
        for start in range(0, len(remote_ids), CHUNK):
            changed += (
                Member.objects.filter(remote_id__in=remote_ids[start : start + CHUNK])
                .exclude(plan_id=plan_id, price_id=price_id)
                .update(plan_id=plan_id, price_id=price_id)
            )
    return changed
