"""The doctor's checks as django-health-check backends (``pip install
django-pluginlab[health]``), for ``/ht/`` and Kubernetes probes::

    from health_check.views import HealthCheckView
    from pluginlab_django.health.backends import (
        PluginLabDoctor, PluginLabLiveness, PluginLabReadiness,
    )

    urlpatterns = [
        path("ht/", HealthCheckView.as_view(checks=[
            "health_check.checks.Database", PluginLabReadiness, PluginLabDoctor,
        ])),
        path("livez/", HealthCheckView.as_view(checks=[PluginLabLiveness])),
        path("readyz/", HealthCheckView.as_view(checks=[PluginLabReadiness])),
    ]

A ``fail`` item raises ``ServiceUnavailable`` naming it; a ``warn`` passes
(and is logged), since a probe that fails on a warning restarts or drains
pods for something a restart does not fix. The liveness backend runs only
local, cheap checks: it never calls PluginLab or Plugipay.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

from .registry import DoctorCheck, Status, registered_checks, run_check

logger = logging.getLogger("pluginlab_django.health")


@dataclasses.dataclass
class PluginLabDoctor(HealthCheck):
    """Every doctor item that does not call a remote host, or the one named ``item``."""

    item: str | None = None
    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=15), repr=False
    )

    def selected(self) -> list[DoctorCheck]:
        if self.item is not None:
            return [c for c in registered_checks() if c.name == self.item]
        return registered_checks(remote=False)

    def run(self) -> None:
        checks = self.selected()
        if not checks:
            raise ServiceUnavailable(f"no PluginLab doctor check is named {self.item!r}")
        failures = []
        for check in checks:
            result = run_check(check)
            if result.status is Status.FAIL:
                failures.append(f"{check.name}: {result.summary}")
            elif result.status is Status.WARN:
                logger.warning("PluginLab health %s: %s", check.name, result.summary)
        if failures:
            raise ServiceUnavailable("; ".join(failures))


@dataclasses.dataclass
class PluginLabLiveness(PluginLabDoctor):
    """Liveness: local and cheap (the settings); never a remote call."""

    def selected(self) -> list[DoctorCheck]:
        return registered_checks(remote=False, liveness=True)


@dataclasses.dataclass
class PluginLabReadiness(PluginLabDoctor):
    """Readiness: PluginLab's and Plugipay's hosts answer with these credentials."""

    def selected(self) -> list[DoctorCheck]:
        return registered_checks(remote=True)
