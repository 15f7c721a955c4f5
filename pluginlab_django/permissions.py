"""DRF permissions for requests authenticated with a PluginLab token.

::

    from pluginlab_django.permissions import HasPlan, IsPluginLabAuthenticated, IsWithinQuota

    class ExportView(APIView):
        authentication_classes = [PluginLabTokenAuthentication]
        permission_classes = [
            IsPluginLabAuthenticated,
            HasPlan("plan_pro", "plan_team"),
            IsWithinQuota,
        ]

Both read the verified token from ``request.auth``, so they work whatever
``USER_RESOLVER`` puts in ``request.user``. They compose with DRF's
``&``, ``|`` and ``~`` like any permission class.
"""

from __future__ import annotations

from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission

from .conf import pluginlab_settings
from .models import Member, QuotaSnapshot
from .tokens import TokenPayload


class IsPluginLabAuthenticated(BasePermission):
    """Like ``IsAuthenticated``, but only a verified PluginLab token counts.

    A token view may also be reached with a site session (an admin's cookie
    when ``SessionAuthentication`` is configured too): that user has no
    token, no ``member`` and no plan, so the request is answered 401 (with
    the Bearer challenge), exactly as if it carried no credentials.
    """

    def has_permission(self, request, view) -> bool:
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

        def has_permission(self, request, view) -> bool:
            payload = request.auth
            return isinstance(payload, TokenPayload) and payload.user.plan_id in self.plans

    _HasPlan.__name__ = _HasPlan.__qualname__ = f"HasPlan({', '.join(map(repr, plan_ids))})"
    return _HasPlan


class IsWithinQuota(BasePermission):
    """Grants access while the member's latest quota snapshot is not exhausted.

    Snapshots are taken by the quota sync (``snapshot_quotas``), so this is as
    current as that schedule; it makes one query per request (none when the
    user is a :class:`~pluginlab_django.authentication.PluginLabUser` whose
    ``member`` is already loaded). With no snapshot yet — or no mirrored
    member — ``PLUGINLAB["QUOTA_WHEN_NO_SNAPSHOT"]`` decides: ``"allow"``
    (the default) or ``"deny"``.
    """

    message = "The quota of your plan is used up."
    code = "quota_exceeded"

    def has_permission(self, request, view) -> bool:
        payload = request.auth
        if not isinstance(payload, TokenPayload):
            return False
        snapshot = self._latest_snapshot(request, payload)
        if snapshot is None:
            return pluginlab_settings.QUOTA_WHEN_NO_SNAPSHOT == "allow"
        return is_within_quota(snapshot)

    @staticmethod
    def _latest_snapshot(request, payload: TokenPayload) -> QuotaSnapshot | None:
        member = getattr(request.user, "member", None)
        if not isinstance(member, Member) or member.remote_id != payload.uid:
            member = (
                Member.objects.select_related("latest_quota").filter(remote_id=payload.uid).first()
            )
        return member.latest_quota if member is not None else None


def is_within_quota(snapshot: QuotaSnapshot) -> bool:
    """Whether one more use fits in the snapshot's quota."""
    if snapshot.is_unlimited:
        return True
    if snapshot.is_over_limit:
        return False
    return snapshot.usage_count < snapshot.usage_limit
