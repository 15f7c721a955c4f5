"""Plugipay API keys: list, add (secret shown once), revoke, rotate, sync.

The secret of a new key is rendered straight into the response of the POST
that created it (``Cache-Control: no-store``): it is never saved, logged, put
in a message or a session, so a reload cannot show it again.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from .. import sync
from ..clients import RemoteError
from ..conf import pluginlab_settings
from ..models import ApiKey
from ..services import apikeys as apikey_service
from .actions import confirmation_page, confirmed
from .forms import ApiKeyCreateForm

SECRET_TEMPLATE = "admin/pluginlab_django/apikey/secret.html"


class ActiveFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("active", _("Active")), ("revoked", _("Revoked")))

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("key_id", "description", "scope", "mode", "age_days", "state", "created_at")
    list_filter = (ActiveFilter, "mode")
    search_fields = ("key_id", "=record_id", "description")
    ordering = ("-created_at", "-id")
    actions = ("revoke_keys", "rotate_keys")
    readonly_fields = (
        "record_id",
        "account_id",
        "key_id",
        "description",
        "scope",
        "mode",
        "created_at",
        "revoked_at",
        "last_synced_at",
    )
    change_list_template = "admin/pluginlab_django/apikey/change_list.html"

    @admin.display(description=_("age (days)"))
    def age_days(self, obj: ApiKey):
        return obj.age_days

    @admin.display(description=_("state"), boolean=False)
    def state(self, obj: ApiKey) -> str:
        return "active" if obj.is_active else "revoked"

    # Records are Plugipay's: never edited, deleted or added as rows here -----

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return self.has_create_apikey_permission(request)

    def has_create_apikey_permission(self, request: HttpRequest) -> bool:
        return pluginlab_settings.plugipay_configured and request.user.has_perm(
            "pluginlab_django.create_apikey"
        )

    def has_revoke_apikey_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pluginlab_django.revoke_apikey")

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pluginlab_django.sync")

    # Add: Plugipay creates the key; its secret is shown once -----------------

    @method_decorator(never_cache)
    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        if not self.has_add_permission(request):
            return self._denied(request)
        form = ApiKeyCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                created = apikey_service.create_api_key(**form.cleaned_data)
            except RemoteError as exc:
                form.add_error(None, f"Plugipay refused to create the key: {exc}")
            else:
                self._log_addition(request, created.record)
                return self._secret_page(request, [created], title=_("API key created"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Add API key"),
            "form": form,
            "opts": self.model._meta,
            "submit_label": _("Create key"),
            "explanation": _(
                "Plugipay creates the key and shows its secret on the next page, once."
            ),
        }
        return TemplateResponse(request, "admin/pluginlab_django/send_form.html", context)

    def _secret_page(self, request: HttpRequest, created: list, *, title) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "created": created,
            "opts": self.model._meta,
        }
        response = TemplateResponse(request, SECRET_TEMPLATE, context)
        response["Cache-Control"] = "no-store"
        return response

    def _log_addition(self, request: HttpRequest, record: ApiKey) -> None:
        self.log_addition(request, record, "Created in Plugipay.")

    def _denied(self, request: HttpRequest):
        self.message_user(
            request, "You may not create API keys, or Plugipay is not configured.", messages.ERROR
        )
        return HttpResponseRedirect(reverse("admin:pluginlab_django_apikey_changelist"))

    # Actions -------------------------------------------------------------------

    @admin.action(description=_("Revoke selected keys"), permissions=["revoke_apikey"])
    def revoke_keys(self, request, queryset):
        if not confirmed(request):
            return confirmation_page(
                self,
                request,
                queryset,
                action="revoke_keys",
                title=_("Revoke API keys"),
                question="Revoke these keys in Plugipay? Requests signed with them will fail "
                "at once; there is no un-revoke.",
            )
        for key in queryset:
            try:
                result = apikey_service.revoke_api_key(key)
            except RemoteError as exc:
                self.message_user(
                    request, f"{key}: not revoked, nothing changed: {exc}", messages.ERROR
                )
            else:
                if result.already_revoked:
                    self.message_user(request, f"{key}: was already revoked.", messages.INFO)
                else:
                    self.message_user(request, f"{key}: revoked.", messages.SUCCESS)
        return None

    @admin.action(description=_("Rotate selected keys"), permissions=["create_apikey"])
    def rotate_keys(self, request, queryset):
        if not confirmed(request):
            return confirmation_page(
                self,
                request,
                queryset,
                action="rotate_keys",
                title=_("Rotate API keys"),
                question="Create a new key with the same description and scope for each, then "
                "revoke the old one? Deploy the new secrets before the old keys are gone.",
            )
        created = []
        for key in queryset.filter(revoked_at__isnull=True):
            try:
                created.append(apikey_service.rotate_api_key(key))
            except apikey_service.RotationIncomplete as exc:
                created.append(exc.created)
                self.message_user(request, str(exc), messages.ERROR)
            except RemoteError as exc:
                self.message_user(
                    request, f"{key}: not rotated, nothing changed: {exc}", messages.ERROR
                )
        if not created:
            return None
        for item in created:
            self._log_addition(request, item.record)
        return self._secret_page(request, created, title=_("API keys rotated"))

    # Sync button -----------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "sync/",
                self.admin_site.admin_view(self.sync_view),
                name="pluginlab_django_apikey_sync",
            ),
            *super().get_urls(),
        ]

    def sync_view(self, request: HttpRequest):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_sync_permission(request):
            self.message_user(request, "You may not sync API keys.", messages.ERROR)
        elif not pluginlab_settings.plugipay_configured:
            self.message_user(request, "Plugipay is not configured.", messages.ERROR)
        else:
            run = sync.sync_api_keys()
            if run.status == run.Status.SUCCEEDED:
                self.message_user(
                    request,
                    f"API keys synced: {run.created} new, {run.updated} "
                    f"updated, {run.unchanged} unchanged.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request, f"API key sync failed, nothing changed: {run.error}", messages.ERROR
                )
        return HttpResponseRedirect(reverse("admin:pluginlab_django_apikey_changelist"))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_sync": self.has_sync_permission(request)}
        return super().changelist_view(request, extra_context)
