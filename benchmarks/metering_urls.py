"""URLconf for benchmarks/metering_settings.py: the metering test views only
(``/metering/drf/`` metered, ``/metering/drf-unmetered/`` the same view without)."""

from django.urls import include, path

urlpatterns = [path("metering/", include("tests.metering_views"))]
