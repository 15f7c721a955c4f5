"""The demo API: how a plugin backend uses PluginLab tokens, plans and quota.

Every view authenticates with ``PluginLabTokenAuthentication`` (the default
in settings), so ``request.user`` is the token's member.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pluginlab_django.clients.exceptions import RemoteError
from pluginlab_django.permissions import HasPlan, IsWithinQuota
from pluginlab_django.services.events import CustomEventInvalid, send_custom_event

#: The plan the sandbox gives its demo token; a real site uses its own plan ids.
PREMIUM_PLAN_ID = "plan_pro"


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

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=inline_serializer("Me", {"id": serializers.CharField()}))
    def get(self, request: Request) -> Response:
        user = request.user
        member = user.member
        return Response(
            {
                "id": user.uid,
                "email": user.email,
                "name": user.name,
                "plan_id": user.plan_id,
                "price_id": user.price_id,
                "mirrored": member is not None,
                "quota": quota_json(member),
            }
        )


class PremiumView(APIView):
    """Only members on the premium plan get in (``HasPlan``)."""

    permission_classes = [IsAuthenticated, HasPlan(PREMIUM_PLAN_ID)]

    @extend_schema(responses=inline_serializer("Premium", {"message": serializers.CharField()}))
    def get(self, request: Request) -> Response:
        return Response({"message": f"Welcome to the premium area, {request.user.email}."})


class UsageSerializer(serializers.Serializer):
    event_source = serializers.CharField(max_length=10, default="DEMO_API")


class UsageView(APIView):
    """Record one use of the plugin outside ChatGPT: a custom event that
    counts in the member's quota. Refused when the member is over quota."""

    permission_classes = [IsAuthenticated, IsWithinQuota]

    @extend_schema(request=UsageSerializer, responses={201: None})
    def post(self, request: Request) -> Response:
        serializer = UsageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = request.user.member
        try:
            event = send_custom_event(
                event_source=serializer.validated_data["event_source"],
                member=member,
                member_id=request.user.uid,
                is_in_quota=True,
            )
        except CustomEventInvalid as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except RemoteError as exc:
            return Response(
                {"detail": f"PluginLab could not record the event: {exc}"},
                status=status.HTTP_502_BAD_GATEWAY,
            )
        return Response(
            {"event_id": event.pk, "status": event.status, "event_source": event.event_source},
            status=status.HTTP_201_CREATED,
        )
