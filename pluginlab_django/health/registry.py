"""The registry of doctor checks, and running them (a failing check is a
``fail`` result, never an exception)."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger("pluginlab_django.health")

#: Modules whose import registers checks, in the order their lines appear.
CHECK_MODULES: list[str] = [
    "pluginlab_django.health.remote",
    "pluginlab_django.health.local",
]


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass
class Result:
    """What one check found: a status, one line, and details for ``--json``."""

    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None

    @classmethod
    def ok(cls, summary: str, **details: Any) -> Result:
        return cls(Status.OK, summary, details)

    @classmethod
    def warn(cls, summary: str, **details: Any) -> Result:
        return cls(Status.WARN, summary, details)

    @classmethod
    def fail(cls, summary: str, **details: Any) -> Result:
        return cls(Status.FAIL, summary, details)


@dataclass(frozen=True)
class DoctorCheck:
    name: str
    func: Callable[[], Result]
    remote: bool = False
    liveness: bool = False


_registry: dict[str, DoctorCheck] = {}
_lock = threading.Lock()


def doctor_check(
    name: str, *, remote: bool = False, liveness: bool = False
) -> Callable[[Callable[[], Result]], Callable[[], Result]]:
    """Register the decorated function as the check ``name`` (re-registering replaces)."""

    def register(func: Callable[[], Result]) -> Callable[[], Result]:
        with _lock:
            _registry[name] = DoctorCheck(name, func, remote=remote, liveness=liveness)
        return func

    return register


def registered_checks(
    *, remote: bool | None = None, liveness: bool | None = None
) -> list[DoctorCheck]:
    """The checks, in registration order; filtered when ``remote``/``liveness`` are given."""
    for module in CHECK_MODULES:
        importlib.import_module(module)
    return [
        check
        for check in list(_registry.values())
        if (remote is None or check.remote == remote)
        and (liveness is None or check.liveness == liveness)
    ]


def run_check(check: DoctorCheck) -> Result:
    start = time.monotonic()
    try:
        result = check.func()
    except ImproperlyConfigured as exc:  # settings the check needs are missing or invalid
        result = Result.fail(str(exc))
    except Exception as exc:  # a broken check is reported, not raised
        logger.warning("Doctor check %s raised", check.name, exc_info=True)
        result = Result.fail(f"the check itself failed: {type(exc).__name__}: {exc}")
    if result.latency_ms is None and check.remote:
        result.latency_ms = round((time.monotonic() - start) * 1000, 1)
    return result


def run_checks(checks: list[DoctorCheck] | None = None) -> list[tuple[DoctorCheck, Result]]:
    return [(check, run_check(check)) for check in (checks or registered_checks())]
