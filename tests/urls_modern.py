"""URLs for tests/test_modern_django.py: the test suite's URLs, an async view
under the decorator, and the demo's API (token views next to a session)."""

from __future__ import annotations

from django.http import JsonResponse
from django.urls import include, path

from pluginlab_django.decorators import pluginlab_token_required
from tests.urls import urlpatterns as base_urlpatterns


@pluginlab_token_required
async def async_view(request):
    return JsonResponse({"uid": request.pluginlab.uid, "async": True})


urlpatterns = [
    *base_urlpatterns,
    path("async/", async_view, name="async-token-view"),
    path("api/", include("demo_project.api.urls")),
]
