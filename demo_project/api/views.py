"""The demo API: how a plugin backend uses PluginLab tokens, plans and quota.

Every view authenticates with ``PluginLabTokenAuthentication`` (the default
in settings) and requires a token (``IsPluginLabAuthenticated``): the site's
session authentication is configured too (for the browsable API), but an
admin's session cookie carries no token, so it gets 401, not the member
data of nobody. ``request.auth`` is the verified token.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pluginlab_django.models import CustomEvent, Member
from pluginlab_django.permissions import HasPlan, IsPluginLabAuthenticated, MeteredQuota

#: The plan the sandbox gives its demo token; a real site uses its own plan ids.
PREMIUM_PLAN_ID = "plan_pro"


def member_of(request: Request) -> Member | None:
    """The mirrored member of the request's token, whatever USER_RESOLVER gives."""
    member = getattr(request.user, "member", None)
    if isinstance(member, Member):
        return member
    return Member.objects.select_related("latest_quota").filter(remote_id=request.auth.uid).first()


def quota_json(member) -> dict | None:
    snapshot = member.latest_quota if member else None
    if snapshot is None:
        return None
    return {
        "usage_count": snapshot.usage_count,
        "usage_limit": snapshot.usage_limit,
        "is_over_limit": snapshot.is_over_limit,
        "is_unlimited": snapshot.is_unlimited,
        "interval": snapshot.interval,
        "taken_at": snapshot.taken_at,
    }


class MeView(APIView):
    """The token's member, its plan, and its latest mirrored quota."""

    permission_classes = [IsPluginLabAuthenticated]

    @extend_schema(responses=inline_serializer("Me", {"id": serializers.CharField()}))
    def get(self, request: Request) -> Response:
        token = request.auth
        member = member_of(request)
        return Response(
            {
                "id": token.uid,
                "email": token.user.email,
                "name": token.user.name or "",
                "plan_id": token.user.plan_id,
                "price_id": token.user.price_id,
                "mirrored": member is not None,
                "quota": quota_json(member),
            }
        )


class PremiumView(APIView):
    """Only members on the premium plan get in (``HasPlan``)."""

    permission_classes = [IsPluginLabAuthenticated, HasPlan(PREMIUM_PLAN_ID)]

    @extend_schema(responses=inline_serializer("Premium", {"message": serializers.CharField()}))
    def get(self, request: Request) -> Response:
        return Response({"message": f"Welcome to the premium area, {request.auth.user.email}."})


class UsageView(APIView):
    """Record one use of the plugin outside ChatGPT (``MeteredQuota``).

    Refused (403) when the member's quota is used up, counted fresh: the
    latest snapshot plus the uses recorded since. On success one custom
    event is written to the outbox, ``pending``, and sent to PluginLab after
    the response's transaction commits — so this answers 201 even while
    PluginLab is down; the event waits and goes out when it is back.
    """

    permission_classes = [IsPluginLabAuthenticated, MeteredQuota(event_source="DEMO_API")]

    @extend_schema(
        request=None,
        responses={201: inline_serializer("Usage", {"status": serializers.CharField()})},
    )
    def post(self, request: Request) -> Response:
        check = request.pluginlab_quota  # MeteredQuota's check, before this call
        return Response(
            {
                "status": "pending",
                "event_source": "DEMO_API",
                "member_id": request.auth.uid,
                "used_before_this_call": check.used,
                "usage_limit": check.limit,
            },
            status=status.HTTP_201_CREATED,
        )


class ReportView(APIView):
    """A small JSON report; each successful call counts one use (``MeteredQuota``)."""

    permission_classes = [IsPluginLabAuthenticated, MeteredQuota(event_source="DEMO_RPT")]

    @extend_schema(responses=inline_serializer("Report", {"member_id": serializers.CharField()}))
    def get(self, request: Request) -> Response:
        user = request.user
        check = request.pluginlab_quota
        recent = CustomEvent.objects.filter(member_remote_id=user.uid).order_by("-pk")[:5]
        return Response(
            {
                "member_id": user.uid,
                "plan_id": user.plan_id,
                "generated_at": timezone.now(),
                "quota": {
                    "used": check.used,
                    "limit": check.limit,
                    "remaining": check.remaining,
                    "unlimited": check.unlimited,
                    "counted_from": check.code,
                },
                "recent_uses": [
                    {"event_source": e.event_source, "status": e.status, "at": e.created_at}
                    for e in recent
                ],
            }
        )
