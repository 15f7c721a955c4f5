"""The PluginLab dashboard: a handful of aggregate queries (never a row per
member), cached for ``DASHBOARD_CACHE_SECONDS``, drawn as inline SVG."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.core.cache import caches
from django.db.models import Count, F, FloatField, Min, Q
from django.db.models.functions import Cast, TruncWeek
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from ..conf import pluginlab_settings
from ..models import ApiKey, Dashboard, Member, SyncRun, WebhookDelivery
from ..models.members import SignInMethod
from ..services.outbox import outbox_health
from . import charts

CACHE_KEY = "pluginlab:dashboard:v1"
WEEKS = 26
USAGE_BUCKETS = (
    ("< 25%", 0.0, 0.25),
    ("25–50%", 0.25, 0.5),
    ("50–75%", 0.5, 0.75),
    ("75–100%", 0.75, 1.0),
    ("over limit", 1.0, None),
)


def member_figures() -> dict[str, Any]:
    totals = Member.objects.active().aggregate(
        total=Count("pk"),
        verified=Count("pk", filter=Q(is_verified=True)),
        over_limit=Count("pk", filter=Q(latest_quota__is_over_limit=True)),
        unlimited=Count("pk", filter=Q(latest_quota__is_unlimited=True)),
        no_snapshot=Count("pk", filter=Q(latest_quota__isnull=True)),
    )
    by_method = list(
        Member.objects.active().values_list("sign_in_method").annotate(n=Count("pk")).order_by("-n")
    )
    by_plan = list(
        Member.objects.active().values_list("plan_id").annotate(n=Count("pk")).order_by("-n")[:10]
    )
    since = timezone.now() - timedelta(weeks=WEEKS)
    weekly = dict(
        Member.objects.filter(remote_created_at__gte=since)
        .annotate(week=TruncWeek("remote_created_at"))
        .values_list("week")
        .annotate(n=Count("pk"))
        .order_by("week")
    )
    ratio = Cast(F("latest_quota__usage_count"), FloatField()) / Cast(
        F("latest_quota__usage_limit"), FloatField()
    )
    limited = (
        Member.objects.active()
        .filter(latest_quota__is_unlimited=False, latest_quota__usage_limit__gt=0)
        .annotate(ratio=ratio)
    )
    bucket_filters = {
        label: Q(ratio__gte=low) & (Q(ratio__lt=high) if high is not None else Q())
        for label, low, high in USAGE_BUCKETS
    }
    buckets = limited.aggregate(
        **{f"b{i}": Count("pk", filter=flt) for i, flt in enumerate(bucket_filters.values())}
    )
    return {
        **totals,
        "deleted_remotely": Member.objects.filter(deleted_remotely_at__isnull=False).count(),
        "by_method": [(method or "unknown", n) for method, n in by_method],
        "by_plan": [(plan or "no plan", n) for plan, n in by_plan],
        "weekly": _weeks(weekly, since),
        "usage": [(label, buckets[f"b{i}"]) for i, label in enumerate(bucket_filters)],
    }


def _weeks(counts: dict[Any, int], since: datetime) -> list[tuple[str, int]]:
    start = (since - timedelta(days=since.weekday())).date()
    by_date = {(week.date() if hasattr(week, "date") else week): n for week, n in counts.items()}
    return [
        ((start + timedelta(weeks=i)).strftime("%d %b"), by_date.get(start + timedelta(weeks=i), 0))
        for i in range(WEEKS + 1)
    ]


def api_key_figures() -> dict[str, Any]:
    figures = ApiKey.objects.aggregate(
        active=Count("pk", filter=Q(revoked_at__isnull=True)),
        revoked=Count("pk", filter=Q(revoked_at__isnull=False)),
        oldest_active=Min("created_at", filter=Q(revoked_at__isnull=True)),
    )
    oldest = figures.pop("oldest_active")
    figures["oldest_active_days"] = (timezone.now() - oldest).days if oldest else None
    return figures


def collect_figures() -> dict[str, Any]:
    return {
        "members": member_figures(),
        "api_keys": api_key_figures(),
        "sync_runs": list(SyncRun.objects.order_by("-started_at")[:10]),
        "webhooks": list(
            WebhookDelivery.objects.values_list("status").annotate(n=Count("pk")).order_by("status")
        ),
        "events": outbox_health().as_dict(),
        "generated_at": timezone.now(),
    }


def cached_figures() -> dict[str, Any]:
    cache = caches[pluginlab_settings.CACHE_ALIAS]
    figures = cache.get(CACHE_KEY)
    if figures is None:
        figures = collect_figures()
        cache.set(CACHE_KEY, figures, pluginlab_settings.DASHBOARD_CACHE_SECONDS)
    return figures


#: Values PluginLab has used besides the model's choices.
SIGN_IN_ALIASES = {"email": "Email and password", "unknown": "Unknown"}


def sign_in_label(method: str) -> str:
    """``google`` → "Google", ``email-and-password`` → "Email and password";
    an unforeseen ``magic-link`` → "Magic link"."""
    labels = {value: str(label) for value, label in SignInMethod.choices}
    if method in labels:
        return labels[method]
    if method in SIGN_IN_ALIASES:
        return SIGN_IN_ALIASES[method]
    return method.replace("-", " ").replace("_", " ").capitalize() or "Unknown"


def webhook_status_label(status: str) -> str:
    labels = {value: str(label) for value, label in WebhookDelivery.Status.choices}
    return labels.get(status, status.capitalize())


def draw(figures: dict[str, Any]) -> dict[str, Any]:
    members = figures["members"]
    return {
        "by_method_chart": charts.horizontal_bars(
            [(sign_in_label(method), n) for method, n in members["by_method"]],
            title="Sign-in methods",
        ),
        "by_plan_chart": charts.horizontal_bars(members["by_plan"], title="Plans"),
        "weekly_chart": charts.columns(members["weekly"], title="Sign-ups per week", width=440),
        "usage_chart": charts.horizontal_bars(
            [(label.capitalize(), n) for label, n in members["usage"]],
            title="Quota usage",
            alert=("Over limit",),
        ),
        "api_keys_chart": charts.horizontal_bars(
            [
                ("Active", figures["api_keys"]["active"]),
                ("Revoked", figures["api_keys"]["revoked"]),
            ],
            title="API keys",
        ),
        "webhooks_chart": charts.horizontal_bars(
            [(webhook_status_label(status), n) for status, n in figures["webhooks"]],
            title="Webhook deliveries",
            alert=(webhook_status_label("failed"),),
        ),
    }


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """Listed on the admin index as "Dashboard"; visible to whoever may view members."""

    def has_view_permission(self, request: HttpRequest, obj: Dashboard | None = None) -> bool:
        return request.user.has_perm("pluginlab_django.view_member")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Dashboard | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Dashboard | None = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        figures = cached_figures()
        context = {
            **self.admin_site.each_context(request),
            "title": "PluginLab dashboard",
            "opts": self.model._meta,
            "figures": figures,
            **draw(figures),
        }
        return TemplateResponse(request, "admin/pluginlab_django/dashboard.html", context)
