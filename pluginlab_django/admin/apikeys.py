"""Plugipay API keys: list, add (secret shown once), revoke, rotate, sync.

The secret of a new key is rendered straight into the response of the POST
that created it (``Cache-Control: no-store``): it is never saved, logged, put
in a message or a session. The add and rotate forms carry a one-time token
(``apikey_forms``), so a reload or a re-sent POST mints nothing.

The site's own key (``PLUGIPAY_KEY_ID``) cannot be revoked, rotated or
scheduled for revocation here; the service refuses and says how to rotate it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from .. import sync
from ..clients import RemoteError
from ..conf import pluginlab_settings
from ..models import ApiKey
from ..models.apikeys import ApiKeyQuerySet
from ..services import apikeys as apikey_service
from . import apikey_forms
from .actions import confirmation_page, confirmed
from .display import ADMIN_CSS, compact_datetime

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from ..services.apikeys import CreatedApiKey

SECRET_TEMPLATE = "admin/pluginlab_django/apikey/secret.html"
ADD_TEMPLATE = "admin/pluginlab_django/apikey/add_form.html"
ROTATE_TEMPLATE = "admin/pluginlab_django/confirm_action.html"


class ActiveFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> tuple[tuple[str, StrOrPromise], ...]:
        return (
            ("active", _("Active")),
            ("scheduled", _("Revocation scheduled")),
            ("revoked", _("Revoked")),
            ("gone", _("Gone from Plugipay")),
        )

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        # The changelist's queryset comes from ApiKey.objects.
        keys = cast(ApiKeyQuerySet, queryset)
        if self.value() == "active":
            return keys.active()
        if self.value() == "scheduled":
            return keys.active().filter(revoke_scheduled_at__isnull=False)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "gone":
            return queryset.filter(gone_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("key_id", "description", "scope", "mode", "age_days", "state", "created")
    list_filter = (ActiveFilter, "mode")
    search_fields = ("key_id", "=record_id", "description")
    ordering = ("-created_at", "-id")
    actions = ("revoke_keys", "cancel_scheduled_revocations", "rotate_keys")
    readonly_fields = (
        "record_id",
        "account_id",
        "key_id",
        "description",
        "scope",
        "mode",
        "created_at",
        "revoked_at",
        "revoke_scheduled_at",
        "gone_at",
        "last_synced_at",
    )
    change_list_template = "admin/pluginlab_django/apikey/change_list.html"

    class Media:
        css = ADMIN_CSS

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: ApiKey) -> SafeString | str:
        return compact_datetime(obj.created_at)

    @admin.display(description=_("age (days)"))
    def age_days(self, obj: ApiKey) -> int | None:
        return obj.age_days

    @admin.display(description=_("state"), boolean=False)
    def state(self, obj: ApiKey) -> str:
        if obj.gone_at is not None:
            return "gone (Plugipay no longer lists it)"
        return obj.state

    # Records are Plugipay's: never edited, deleted or added as rows here -----

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_create_apikey_permission(request)

    def has_create_apikey_permission(self, request: HttpRequest) -> bool:
        return pluginlab_settings.plugipay_configured and request.user.has_perm(
            "pluginlab_django.create_apikey"
        )

    def has_revoke_apikey_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pluginlab_django.revoke_apikey")

    def has_rotate_apikey_permission(self, request: HttpRequest) -> bool:
        """Both: a rotation mints a key and revokes one. (Django shows an action
        when *any* of its listed permissions holds, hence one combined check.)"""
        return self.has_create_apikey_permission(request) and self.has_revoke_apikey_permission(
            request
        )

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pluginlab_django.sync")

    # Add: Plugipay creates the key; its secret is shown once -----------------

    @method_decorator(never_cache)
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            return self._denied(request)
        form = apikey_forms.OneTimeApiKeyCreateForm(
            request.POST or None, initial={"once": apikey_forms.issue_token(request)}
        )
        if request.method == "POST" and form.is_valid():
            data = {k: v for k, v in form.cleaned_data.items() if k != "once"}
            try:
                token, first = apikey_forms.claim_token(request, form.cleaned_data["once"])
            except apikey_forms.FormTokenInvalid as exc:
                return self._back_to_list(request, str(exc), messages.ERROR)
            if not first:
                message = apikey_forms.already_used_message(token)
                return self._back_to_list(request, message, messages.WARNING)
            try:
                created = apikey_service.create_api_key(**data)
            except RemoteError as exc:
                form = apikey_forms.OneTimeApiKeyCreateForm(
                    {**data, "once": apikey_forms.issue_token(request)}
                )
                form.is_valid()
                form.add_error(None, f"Plugipay refused to create the key: {exc}")
            else:
                apikey_forms.record_created(token, [created.record.key_id])
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
        return TemplateResponse(request, ADD_TEMPLATE, context)

    def _back_to_list(self, request: HttpRequest, message: str, level: int) -> HttpResponseRedirect:
        self.message_user(request, message, level)
        return HttpResponseRedirect(reverse("admin:pluginlab_django_apikey_changelist"))

    def _secret_page(
        self,
        request: HttpRequest,
        created: list[CreatedApiKey],
        *,
        title: StrOrPromise,
        notes: Iterable[str] = (),
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "created": created,
            "notes": list(notes),
            "opts": self.model._meta,
        }
        response = TemplateResponse(request, SECRET_TEMPLATE, context)
        response["Cache-Control"] = "no-store"
        return response

    def _log_addition(self, request: HttpRequest, record: ApiKey) -> None:
        self.log_addition(request, record, "Created in Plugipay.")

    def _denied(self, request: HttpRequest) -> HttpResponseRedirect:
        self.message_user(
            request, "You may not create API keys, or Plugipay is not configured.", messages.ERROR
        )
        return HttpResponseRedirect(reverse("admin:pluginlab_django_apikey_changelist"))

    # Actions -------------------------------------------------------------------

    @admin.action(description=_("Revoke now"), permissions=["revoke_apikey"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        if not confirmed(request):
            return confirmation_page(
                self,
                request,
                queryset,
                action="revoke_keys",
                title=_("Revoke API keys"),
                question="Revoke these keys in Plugipay now? Requests signed with them will "
                "fail at once; there is no un-revoke.",
            )
        for key in queryset:
            try:
                result = apikey_service.revoke_api_key(key)
            except apikey_service.OwnKeyProtected as exc:
                self.message_user(request, f"{key}: not revoked. {exc}", messages.ERROR)
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

    @admin.action(description=_("Cancel scheduled revocation"), permissions=["revoke_apikey"])
    def cancel_scheduled_revocations(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> None:
        for key in queryset:
            if apikey_service.cancel_revocation(key):
                self.message_user(request, f"{key}: scheduled revocation cancelled.")
            else:
                self.message_user(
                    request, f"{key}: no revocation was scheduled ({key.state}).", messages.INFO
                )

    @admin.action(description=_("Rotate selected keys"), permissions=["rotate_apikey"])
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        if not self.has_rotate_apikey_permission(request):
            # Actions are filtered by permission already: this is a second lock.
            return self._back_to_list(
                request, "Rotating needs both create_apikey and revoke_apikey.", messages.ERROR
            )
        form = apikey_forms.RotateForm(
            request.POST if confirmed(request) else None,
            initial={"once": apikey_forms.issue_token(request)},
        )
        if not form.is_bound or not form.is_valid():
            if form.is_bound:  # a bad overlap: ask again with a fresh token
                # items(): a QueryDict's last values, as its .dict() gives.
                form.data = {**dict(form.data.items()), "once": apikey_forms.issue_token(request)}
            response = confirmation_page(
                self,
                request,
                queryset,
                action="rotate_keys",
                title=_("Rotate API keys"),
                question="Create a successor for each key (same scope, description marked "
                "with the rotation date) and revoke the old key after the overlap. "
                "Deploy the new secrets within the overlap.",
                form=form,
            )
            response.template_name = ROTATE_TEMPLATE
            return response
        try:
            token, first = apikey_forms.claim_token(request, form.cleaned_data["once"])
        except apikey_forms.FormTokenInvalid as exc:
            return self._back_to_list(request, str(exc), messages.ERROR)
        if not first:
            return self._back_to_list(
                request, apikey_forms.already_used_message(token), messages.WARNING
            )
        created, notes = self._rotate_each(request, queryset, form.cleaned_data["overlap"])
        apikey_forms.record_created(token, [item.record.key_id for item in created])
        if not created:
            return None
        for item in created:
            self._log_addition(request, item.record)
        return self._secret_page(request, created, title=_("API keys rotated"), notes=notes)

    def _rotate_each(
        self, request: HttpRequest, queryset: QuerySet[ApiKey], overlap: timedelta
    ) -> tuple[list[CreatedApiKey], list[str]]:
        created: list[CreatedApiKey] = []
        notes: list[str] = []
        for key in queryset:
            try:
                rotation = apikey_service.rotate_api_key(key, overlap)
            except apikey_service.RotationIncomplete as exc:
                created.append(exc.created)
                self.message_user(request, str(exc), messages.ERROR)
            except (RemoteError, apikey_service.ApiKeyError) as exc:
                self.message_user(
                    request, f"{key}: not rotated, nothing created: {exc}", messages.ERROR
                )
            else:
                created.append(rotation.created)
                when = (
                    "was revoked now"
                    if not overlap
                    else f"will be revoked at {rotation.revoke_at:%Y-%m-%d %H:%M %Z}"
                )
                notes.append(f"{key} (replaced by {rotation.created.record.key_id}) {when}.")
        return created, notes

    # Sync button -----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "sync/",
                self.admin_site.admin_view(self.sync_view),
                name="pluginlab_django_apikey_sync",
            ),
            *super().get_urls(),
        ]

    def sync_view(self, request: HttpRequest) -> HttpResponse:
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

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_sync": self.has_sync_permission(request)}
        return super().changelist_view(request, extra_context)
