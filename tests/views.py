"""Views (and their routes, included by tests/urls.py under ``auth/``) used by
the token-authentication tests: DRF views with each permission, and a plain
Django view with the decorator."""

from __future__ import annotations

from django.http import JsonResponse
from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from pluginlab_django.authentication import PluginLabTokenAuthentication
from pluginlab_django.decorators import pluginlab_token_required
from pluginlab_django.permissions import HasPlan, IsWithinQuota


def describe(user, payload) -> dict:
    return {
        "user_class": type(user).__name__,
        "user_pk": user.pk,
        "uid": payload.uid,
        "email": payload.user.email,
        "plan_id": payload.user.plan_id,
        "price_id": payload.user.price_id,
        "given_name": payload.user.given_name,
        "family_name": payload.user.family_name,
    }


class WhoAmIView(APIView):
    authentication_classes = [PluginLabTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response(describe(request.user, request.auth))


class ProOnlyView(WhoAmIView):
    permission_classes = [IsAuthenticated, HasPlan("plan_pro", "plan_team")]


class ProOrQuotaView(WhoAmIView):
    """Composition with DRF's operators: a pro plan, or quota left."""

    permission_classes = [HasPlan("plan_pro") | IsWithinQuota]


class QuotaView(WhoAmIView):
    permission_classes = [IsAuthenticated, IsWithinQuota]


class EchoOpenView(APIView):
    """A tiny answer with no authentication at all (the benchmark's baseline)."""

    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        return Response({"ok": True, "uid": getattr(request.auth, "uid", None)})


class EchoTokenView(EchoOpenView):
    """The same view behind token authentication."""

    authentication_classes = [PluginLabTokenAuthentication]
    permission_classes = [IsAuthenticated]


@pluginlab_token_required
def plain_view(request):
    return JsonResponse(describe(request.pluginlab_user, request.pluginlab))


@pluginlab_token_required()
def plain_post_view(request):
    return JsonResponse({"method": request.method, "uid": request.pluginlab.uid})


urlpatterns = [
    path("whoami/", WhoAmIView.as_view(), name="auth-whoami"),
    path("pro/", ProOnlyView.as_view(), name="auth-pro"),
    path("pro-or-quota/", ProOrQuotaView.as_view(), name="auth-pro-or-quota"),
    path("quota/", QuotaView.as_view(), name="auth-quota"),
    path("echo-open/", EchoOpenView.as_view(), name="auth-echo-open"),
    path("echo-token/", EchoTokenView.as_view(), name="auth-echo-token"),
    path("plain/", plain_view, name="auth-plain"),
    path("plain-post/", plain_post_view, name="auth-plain-post"),
]
