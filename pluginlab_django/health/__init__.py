"""Is it healthy? The checks behind ``manage.py pluginlab_doctor`` and the
django-health-check backends (``health.backends``).

A check is a function returning a :class:`Result` (``ok``/``warn``/``fail``,
one line of summary, optional details), registered by name::

    from pluginlab_django.health import Result, doctor_check

    @doctor_check("events.pending")
    def pending_events() -> Result:
        waiting = CustomEvent.objects.filter(status="pending").count()
        return Result.ok(f"{waiting} usage events pending") if waiting < 100 else ...

``remote=True`` marks a check that calls PluginLab or Plugipay (readiness
probes and the doctor run it; a liveness probe never does); ``liveness=True``
one cheap and local enough for a liveness probe. Checks live in the modules
of :data:`CHECK_MODULES` (imported on first use): add a module there, or a
function to one of them.
"""

from .registry import (
    CHECK_MODULES,
    DoctorCheck,
    Result,
    Status,
    doctor_check,
    registered_checks,
    run_check,
    run_checks,
)

__all__ = [
    "CHECK_MODULES",
    "DoctorCheck",
    "Result",
    "Status",
    "doctor_check",
    "registered_checks",
    "run_check",
    "run_checks",
]
