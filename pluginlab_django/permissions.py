"""DRF permissions for requests authenticated with a PluginLab token.

::

    from pluginlab_django.permissions import (
        HasPlan,
        IsPluginLabAuthenticated,
        IsWithinQuota,
        MeteredQuota,
    )

    class ExportView(APIView):
        authentication_classes = [PluginLabTokenAuthentication]
        permission_classes = [
            IsPluginLabAuthenticated,
            HasPlan("plan_pro", "plan_team"),
            IsWithinQuota,
        ]

    class ReportView(APIView):  # checks quota and counts each successful call
        permission_classes = [IsAuthenticated, MeteredQuota(event_source="API")]

They read the verified token from ``request.auth``, so they work whatever
``USER_RESOLVER`` puts in ``request.user``. They compose with DRF's
``&``, ``|`` and ``~`` like any permission class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from . import metering
from .models import QuotaSnapshot
from .tokens import TokenPayload

if TYPE_CHECKING:
    # Not at run time: rest_framework.views imports DEFAULT_PERMISSION_CLASSES
    # (this module, in many sites) while it is itself being imported.
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class _MeteredView(APIView):
        """A view instance ``MeteredQuota`` has wrapped."""

        _pluginlab_metered: bool
        pluginlab_usage_event: Any  # what metering.record_use returned


class MeteredAPIRequest(Request):
    """The request of a view under ``MeteredQuota``, for annotations only
    (requests are DRF's own at run time; the permission sets the attribute)."""

    pluginlab_quota: metering.QuotaCheck


class IsPluginLabAuthenticated(BasePermission):
    """Like ``IsAuthenticated``, but only a verified PluginLab token counts.

    A token view may also be reached with a site session (an admin's cookie
    when ``SessionAuthentication`` is configured too): that user has no
    token, no ``member`` and no plan, so the request is answered 401 (with
    the Bearer challenge), exactly as if it carried no credentials.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.auth, TokenPayload):
            return True
        raise NotAuthenticated()


def HasPlan(*plan_ids: str) -> type[BasePermission]:
    """A permission class granting access to tokens whose plan is one of ``plan_ids``.

    DRF instantiates each entry of ``permission_classes``, so this returns a
    class (not an instance) bound to the given plans.
    """
    if not plan_ids or not all(isinstance(p, str) and p for p in plan_ids):
        raise TypeError("HasPlan() needs at least one plan id (a non-empty string).")
    allowed = frozenset(plan_ids)

    class _HasPlan(BasePermission):
        message = "Your plan does not give access to this resource."
        code = "plan_required"
        plans = allowed

        def has_permission(self, request: Request, view: APIView) -> bool:
            payload = request.auth
            return isinstance(payload, TokenPayload) and payload.user.plan_id in self.plans

    _HasPlan.__name__ = _HasPlan.__qualname__ = f"HasPlan({', '.join(map(repr, plan_ids))})"
    return _HasPlan


class IsWithinQuota(BasePermission):
    """Grants access while the member has quota left, counted fresh.

    The latest quota snapshot's ``usageCount`` plus the uses recorded
    locally since (``metering.check_quota``: pending and sending custom
    events, and those sent after the snapshot), in one query per request. A
    member PluginLab deleted is refused. With no snapshot yet — or no
    mirrored member — ``PLUGINLAB["QUOTA_WHEN_NO_SNAPSHOT"]`` decides:
    ``"allow"`` (the default) or ``"deny"``. It records nothing: use
    :func:`MeteredQuota` to also count the call.
    """

    message = metering.QUOTA_EXCEEDED_MESSAGE
    code = "quota_exceeded"

    def has_permission(self, request: Request, view: APIView) -> bool:
        return self.allowed_quota(request) is not None

    def allowed_quota(self, request: Request) -> metering.QuotaCheck | None:
        """The member's fresh quota check when the call may go ahead; None
        (with ``message`` and ``code`` set for DRF's 403) when it may not."""
        payload = request.auth
        if not isinstance(payload, TokenPayload):
            return None
        check = metering.check_quota(payload.uid)
        if not check.allowed:
            self.message, self.code = check.message, check.code
            return None
        return check


def MeteredQuota(
    event_source: str = "API",
    is_in_quota: bool = True,
    *,
    country_code: str = "",
    subdivision_code: str = "",
) -> type[BasePermission]:
    """A permission class that checks quota like ``IsWithinQuota`` and counts
    the call: one custom event recorded when the response is a 2xx, nothing
    for a 4xx/5xx (or an exception)::

        class ReportView(APIView):
            permission_classes = [IsAuthenticated, MeteredQuota(event_source="API")]

    Why a permission and not a mixin: it is declared where the quota rule
    already lives (``permission_classes``), works on any ``APIView`` or
    viewset without changing its bases or MRO, and composes with
    ``IsAuthenticated`` and ``HasPlan`` in the list. To see the response, it
    wraps the view instance's ``finalize_response`` (DRF builds a new view
    instance per request, so nothing is shared). The use is recorded there,
    in the request's transaction, as a ``pending`` outbox row: no network
    call in the request (see ``pluginlab_django.metering``). The view finds
    the check in ``request.pluginlab_quota`` (a ``metering.QuotaCheck``:
    ``used`` before this call, ``limit``, ``remaining``).

    Put it in the list itself, not under ``|`` or ``~``: DRF may then skip
    evaluating it, and the call would not be counted. The event source is
    validated here, so a bad one fails when the view is defined.
    """
    spec = metering.MeterSpec.build(
        event_source, is_in_quota, country_code=country_code, subdivision_code=subdivision_code
    )

    class _MeteredQuota(IsWithinQuota):
        meter = spec

        def has_permission(self, request: Request, view: APIView) -> bool:
            check = self.allowed_quota(request)
            if check is None:
                return False
            # The view may show it: no second query.
            cast(MeteredAPIRequest, request).pluginlab_quota = check
            _record_on_success(view, check, self.meter)
            return True

    _MeteredQuota.__name__ = _MeteredQuota.__qualname__ = f"MeteredQuota({spec.event_source!r})"
    return _MeteredQuota


def _record_on_success(view: APIView, check: metering.QuotaCheck, spec: metering.MeterSpec) -> None:
    if getattr(view, "_pluginlab_metered", False):
        return  # two MeteredQuota on one view still count one use
    metered = cast("_MeteredView", view)
    metered._pluginlab_metered = True
    finalize = metered.finalize_response

    def finalize_response(
        request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = finalize(request, response, *args, **kwargs)
        if metering.is_success(response.status_code):
            metered.pluginlab_usage_event = metering.record_use(check, spec)
        return response

    # On purpose: this instance's own finalize_response (DRF makes one per request).
    metered.finalize_response = finalize_response  # type: ignore[method-assign]


def is_within_quota(snapshot: QuotaSnapshot) -> bool:
    """Whether one more use fits in the snapshot's quota."""
    if snapshot.is_unlimited:
        return True
    if snapshot.is_over_limit:
        return False
    return snapshot.usage_count < snapshot.usage_limit
