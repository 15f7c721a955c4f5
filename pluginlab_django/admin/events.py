"""The log of custom events, and a standalone form to send one."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from ..clients import RemoteError
from ..models import CustomEvent, Member
from ..services import events as event_service
from .forms import StandaloneCustomEventForm


@admin.register(CustomEvent)
class CustomEventAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "event_source",
        "member_remote_id",
        "is_in_quota",
        "country_code",
        "status",
        "sent_by",
    )
    list_filter = ("status", "is_in_quota", "event_source")
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
    )

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return request.user.has_perm("pluginlab_django.create_event")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
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
