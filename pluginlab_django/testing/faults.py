"""Injected faults and the request counter.

Rates are drawn from a seeded RNG so a faulty run can be replayed; ``count``
limits a fault to the next N matching requests, which is what retry tests
need ("fail twice, then succeed").
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass


@dataclass
class FaultPlan:
    latency_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    drop_rate: float = 0.0
    path_prefix: str | None = None
    count: int | None = None
    #: Seconds sent as ``Retry-After`` with injected errors (429 default: 0).
    retry_after: int | None = None


@dataclass
class Decision:
    latency_ms: int = 0
    error_status: int | None = None
    drop: bool = False
    retry_after: int | None = None


class Faults:
    """What to do to the next request, and how many requests came in."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._plan: FaultPlan | None = None
            self._rng = random.Random(self._seed)
            self._paths: Counter[str] = Counter()

    def set(self, plan: FaultPlan) -> None:
        if not 0 <= plan.error_rate <= 1 or not 0 <= plan.drop_rate <= 1:
            raise ValueError("error_rate and drop_rate are shares from 0 to 1")
        if not 100 <= int(plan.error_status) <= 599:
            raise ValueError("error_status must be an HTTP status")
        if plan.count is not None and plan.count < 0:
            raise ValueError("count must be >= 0")
        if plan.retry_after is not None and plan.retry_after < 0:
            raise ValueError("retry_after must be >= 0 seconds")
        with self._lock:
            self._plan = plan

    def clear(self) -> None:
        with self._lock:
            self._plan = None

    def plan(self) -> FaultPlan | None:
        with self._lock:
            return self._plan

    def request_count(self, path_prefix: str = "") -> int:
        with self._lock:
            return sum(n for path, n in self._paths.items() if path.startswith(path_prefix))

    def decide(self, path: str) -> Decision:
        """Count the request, then draw its fate under the current plan."""
        with self._lock:
            self._paths[path] += 1
            plan = self._plan
            if plan is None or (plan.path_prefix and not path.startswith(plan.path_prefix)):
                return Decision()
            if plan.count is not None:
                if plan.count <= 0:
                    return Decision()
                plan.count -= 1
            decision = Decision(latency_ms=int(plan.latency_ms))
            if plan.drop_rate and self._rng.random() < plan.drop_rate:
                decision.drop = True
            elif plan.error_rate and self._rng.random() < plan.error_rate:
                decision.error_status = int(plan.error_status)
                decision.retry_after = plan.retry_after
            return decision

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._paths)
