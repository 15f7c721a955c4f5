"""django-health-check's view with the PluginLab backends (tests/test_doctor.py)."""

from django.urls import path
from health_check.views import HealthCheckView

from pluginlab_django.health.backends import (
    PluginLabDoctor,
    PluginLabLiveness,
    PluginLabReadiness,
)

urlpatterns = [
    path("livez/", HealthCheckView.as_view(checks=[PluginLabLiveness])),
    path("readyz/", HealthCheckView.as_view(checks=[PluginLabReadiness])),
    path(
        "ht/cert/",
        HealthCheckView.as_view(checks=[(PluginLabDoctor, {"item": "pluginlab.cert"})]),
    ),
]
