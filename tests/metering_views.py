"""Metered views for the metering tests (included by tests/urls.py under
``metering/``): a DRF view with ``MeteredQuota``, plain views with
``@metered`` in both orders with ``pluginlab_token_required``, and the same
DRF view unmetered (the benchmark's baseline).

``?status=N`` makes a view answer N; ``?raise=1`` makes it raise.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from pluginlab_django.authentication import PluginLabTokenAuthentication
from pluginlab_django.decorators import metered, pluginlab_token_required
from pluginlab_django.permissions import MeteredQuota


def _status(request) -> int:
    if request.GET.get("raise"):
        raise RuntimeError("the view broke")
    return int(request.GET.get("status", 200))


class UnmeteredView(APIView):
    authentication_classes = [PluginLabTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"ok": True, "uid": request.auth.uid}, status=_status(request))

    def post(self, request):
        return Response({"ok": True}, status=_status(request))


class MeteredView(UnmeteredView):
    permission_classes = [IsAuthenticated, MeteredQuota(event_source="API")]


@pluginlab_token_required
@metered(event_source="WEB_UI")
def plain_metered(request):
    return JsonResponse({"ok": True}, status=_status(request))


@metered(event_source="WEB_UI")
@pluginlab_token_required
def plain_metered_outside(request):
    return JsonResponse({"ok": True}, status=_status(request))


urlpatterns = [
    path("drf/", MeteredView.as_view(), name="metering-drf"),
    path("drf-unmetered/", UnmeteredView.as_view(), name="metering-drf-unmetered"),
    path("plain/", plain_metered, name="metering-plain"),
    path("plain-outside/", plain_metered_outside, name="metering-plain-outside"),
]
