"""A member's plan and price, as their tokens carry it → ``Member`` rows.

The admin API does not return plans; tokens do. The rule here: a row is
written only when the plan or price differs (a conditional ``UPDATE``, so an
unchanged row is never rewritten), and of several tokens for one member the
one issued last (``iat``) wins. There is no plan timestamp column, so across
processes the write that runs last wins; a later token of the member sets it
right again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..models import Member

__all__ = ["TokenPlan", "store_member_plans"]


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

    Members not mirrored (yet) are skipped: their plan is recorded from a
    later token, once the memo in ``services.plans`` expires.
    """
    changed = 0
    for remote_id, plan in plans.items():
        changed += (
            Member.objects.filter(remote_id=remote_id)
            .exclude(plan_id=plan.plan_id, price_id=plan.price_id)
            .update(plan_id=plan.plan_id, price_id=plan.price_id)
        )
    return changed
