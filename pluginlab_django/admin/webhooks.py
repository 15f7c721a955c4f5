"""Admin for webhook deliveries: a read-only log with a Reprocess action."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..models import WebhookDelivery
from ..services import webhooks as webhook_service
from .display import ADMIN_CSS, compact_datetime


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Deliveries are evidence of what PluginLab sent: nothing here edits them.

    Reprocessing goes through the service, whose claim keeps a delivery that a
    worker is already processing from being run twice.
    """

    list_display = (
        "event",
        "delivery_id",
        "status",
        "attempts",
        "received",
        "processed",
    )
    list_filter = ("status", "event", "received_at")
    search_fields = ("=delivery_id", "=body_digest", "event")
    date_hierarchy = "received_at"
    ordering = ("-received_at", "-id")
    actions = ("reprocess",)
    fields = (
        "delivery_id",
        "hook_id",
        "event",
        "status",
        "attempts",
        "error",
        "received_at",
        "queued_at",
        "claimed_at",
        "processed_at",
        "body_digest",
        "headers",
        "pretty_body",
    )
    readonly_fields = fields

    class Media:
        css = ADMIN_CSS

    @admin.display(description=_("received"), ordering="received_at")
    def received(self, obj: WebhookDelivery) -> SafeString | str:
        return compact_datetime(obj.received_at)

    @admin.display(description=_("processed"), ordering="processed_at")
    def processed(self, obj: WebhookDelivery) -> SafeString | str:
        return compact_datetime(obj.processed_at)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: WebhookDelivery | None = None
    ) -> bool:
        return False

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.reprocess_{opts.model_name}")

    @admin.display(description=_("body"))
    def pretty_body(self, obj: WebhookDelivery) -> str:
        try:
            text = json.dumps(json.loads(obj.body), indent=2, sort_keys=True)
        except ValueError:
            text = obj.body
        return format_html("<pre>{}</pre>", text)

    @admin.action(description=_("Reprocess selected deliveries"), permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset.order_by("received_at", "id"):
            result = webhook_service.process_delivery(delivery, reprocess=True)
            self.report(request, delivery, result)

    def report(
        self,
        request: HttpRequest,
        delivery: WebhookDelivery,
        result: webhook_service.ProcessResult,
    ) -> None:
        label = f"{delivery.event} {delivery.delivery_id}"
        if result.outcome == WebhookDelivery.Status.PROCESSED:
            self.message_user(request, _("%s: processed.") % label, messages.SUCCESS)
        elif result.outcome == WebhookDelivery.Status.IGNORED:
            self.message_user(
                request, _("%s: nothing handles this event; ignored.") % label, messages.INFO
            )
        elif result.failed:
            self.message_user(
                request, _("%s: failed again: %s") % (label, result.error), messages.ERROR
            )
        else:
            current = result.delivery.get_status_display() if result.delivery else _("deleted")
            self.message_user(
                request,
                _("%(label)s: skipped (%(status)s).") % {"label": label, "status": current},
                messages.WARNING,
            )
