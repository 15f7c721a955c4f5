"""URLs for the test suite: the admin, the app's URLs, and test views
(added to by test modules that need their own views via tests/views.py)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("pluginlab/", include("pluginlab_django.urls")),
    path("auth/", include("tests.views")),  # token authentication tests
    path("metering/", include("tests.metering_views")),  # usage metering tests
]
