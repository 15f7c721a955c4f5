"""The custom event outbox: filter by status (stuck ones too), send what is
pending now, resend what a dead sender left; and a form to send one event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..clients import RemoteError
from ..models import CustomEvent, Member
from ..services import events as event_service
from ..services import outbox
from .display import ADMIN_CSS, compact_datetime
from .forms import StandaloneCustomEventForm

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

#: Actions that act on the whole outbox: allowed with no row selected.
OUTBOX_ACTIONS = ("send_pending_now",)


class StatusFilter(admin.SimpleListFilter):
    """The statuses, plus "stuck": sending for longer than
    ``EVENT_SENDING_STALE_SECONDS`` (left by a sender that died mid-send)."""

    title = _("status")
    parameter_name = "status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, StrOrPromise]]:
        return [
            *CustomEvent.Status.choices,
            ("stuck", _("Stuck sending (sender died)")),
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[CustomEvent]
    ) -> QuerySet[CustomEvent]:
        value = self.value()
        if value == "stuck":
            return queryset.filter(
                status=CustomEvent.Status.SENDING, claimed_at__lt=outbox.stale_before()
            )
        if value in CustomEvent.Status.values:
            return queryset.filter(status=value)
        return queryset


@admin.register(CustomEvent)
class CustomEventAdmin(admin.ModelAdmin):
    list_display = (
        "created",
        "event_source",
        "member_remote_id",
        "is_in_quota",
        "country_code",
        "status",
        "attempts",
        "sent",
        "sent_by",
    )
    list_filter = (StatusFilter, "is_in_quota", "event_source")
    actions = ("send_pending_now", "resend_selected")
    search_fields = ("=member_remote_id", "event_source")
    list_select_related = ("sent_by",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "member",
        "member_remote_id",
        "event_source",
        "is_in_quota",
        "country_code",
        "subdivision_code",
        "sent_by",
        "created_at",
        "status",
        "error",
        "claimed_at",
        "sent_at",
        "attempts",
    )

    class Media:
        css = ADMIN_CSS

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: CustomEvent) -> SafeString | str:
        return compact_datetime(obj.created_at)

    @admin.display(description=_("sent"), ordering="sent_at")
    def sent(self, obj: CustomEvent) -> SafeString | str:
        return compact_datetime(obj.sent_at)

    def has_change_permission(self, request: HttpRequest, obj: CustomEvent | None = None) -> bool:
        return False

    def has_send_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pluginlab_django.create_event")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The outbox actions need no selection: they act on every pending event."""
        if (
            request.method == "POST"
            and request.POST.get("action") in OUTBOX_ACTIONS
            and not request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        ):
            post = request.POST.copy()
            post["select_across"] = "1"
            post.setlist(helpers.ACTION_CHECKBOX_NAME, ["0"])
            # Mutable, as the copy is: the stubs allow only Django's immutable kind here.
            request.POST = post  # type: ignore[assignment]
        return super().changelist_view(request, extra_context)

    @admin.action(description=_("Send pending events now"), permissions=["send"])
    def send_pending_now(self, request: HttpRequest, queryset: QuerySet[CustomEvent]) -> None:
        """Sends every pending event (not only the selected rows), in order."""
        try:
            summary = outbox.send_pending()
        except ImproperlyConfigured as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if summary.busy:
            self.message_user(
                request,
                "Another sender is running; it sends what is pending. "
                f"{summary.still_pending} event(s) still pending.",
                messages.WARNING,
            )
            return
        text = (
            f"Sent {summary.sent}, failed {summary.failed}, still pending {summary.still_pending}."
        )
        if summary.unavailable:
            text += f" PluginLab is unavailable: {summary.unavailable}"
        level = (
            messages.SUCCESS
            if not (summary.failed or summary.still_pending)
            else (messages.WARNING)
        )
        self.message_user(request, text, level)

    @admin.action(description=_("Resend selected events (sending or failed)"), permissions=["send"])
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[CustomEvent]) -> None:
        """Back to pending, then sent: only for events you know PluginLab did
        not record (a stuck 'sending' one may have been counted)."""
        count = outbox.resend(queryset)
        if not count:
            self.message_user(
                request, "None of the selected events is sending or failed.", messages.WARNING
            )
            return
        self.message_user(request, f"{count} event(s) queued again.", messages.SUCCESS)
        self.send_pending_now(request, queryset)

    def has_delete_permission(self, request: HttpRequest, obj: CustomEvent | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pluginlab_django.create_event")

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """'Add' sends an event to PluginLab (and logs it), it does not write a row."""
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:pluginlab_django_customevent_changelist"))
        form = StandaloneCustomEventForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            member = Member.objects.filter(remote_id=data["member_id"]).first()
            try:
                event = event_service.send_custom_event(
                    event_source=data["event_source"],
                    member=member,
                    member_id=data["member_id"],
                    is_in_quota=data["is_in_quota"],
                    country_code=data["country_code"],
                    subdivision_code=data["subdivision_code"],
                    sent_by=request.user,
                )
            except RemoteError as exc:
                form.add_error(
                    None, f"PluginLab did not record the event (it is logged as failed): {exc}"
                )
            else:
                self.message_user(request, f"Event {event.event_source} sent.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:pluginlab_django_customevent_changelist")
                )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Send a custom usage event"),
            "form": form,
            "opts": self.model._meta,
            "submit_label": _("Send event"),
        }
        return TemplateResponse(request, "admin/pluginlab_django/send_form.html", context)
