"""The demo API: how a plugin backend uses PluginLab tokens, plans and quota.

Every view authenticates with ``PluginLabTokenAuthentication`` (the default
in settings) and requires a token (``IsPluginLabAuthenticated``): the site's
session authentication is configured too (for the browsable API), but an
admin's session cookie carries no token, so it gets 401, not the member
data of nobody. ``request.auth`` is the verified token.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pluginlab_django.clients.exceptions import RemoteError
from pluginlab_django.models import Member
from pluginlab_django.permissions import HasPlan, IsPluginLabAuthenticated, IsWithinQuota
from pluginlab_django.services.events import CustomEventInvalid, send_custom_event

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


class UsageSerializer(serializers.Serializer):
    event_source = serializers.CharField(max_length=10, default="DEMO_API")


class UsageView(APIView):
    """Record one use of the plugin outside ChatGPT: a custom event that
    counts in the member's quota. Refused when the member is over quota."""

    permission_classes = [IsPluginLabAuthenticated, IsWithinQuota]

    @extend_schema(request=UsageSerializer, responses={201: None})
    def post(self, request: Request) -> Response:
        serializer = UsageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = member_of(request)
        try:
            event = send_custom_event(
                event_source=serializer.validated_data["event_source"],
                member=member,
                member_id=request.auth.uid,
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
