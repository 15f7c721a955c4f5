"""Admin actions on members. Each one asks first (a confirmation page or an
intermediate form), calls the sync/services layer, and reports every
object's outcome; none holds business logic of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.contrib.admin import helpers
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from .. import sync
from ..clients import RefreshNotSupported, RefreshTokenFailed, RemoteError
from ..db_locks import DatabaseLocked, retry_if_locked
from ..models import Member
from ..services import events as event_service
from ..services import identities as identity_service
from ..services import members as member_service
from .forms import CustomEventForm

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

CONFIRM_TEMPLATE = "admin/pluginlab_django/confirm_action.html"


def confirmation_page(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: StrOrPromise,
    question: str,
    form: forms.Form | None = None,
) -> TemplateResponse:
    """The page that asks before an action runs; posting it runs the action."""
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "objects": list(queryset[:200]),
        "count": queryset.count(),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action": action,
        "form": form,
        "opts": opts,
        "app_label": opts.app_label,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "select_across": request.POST.get("select_across", "0"),
    }
    return TemplateResponse(request, CONFIRM_TEMPLATE, context)


def confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirm") == "yes"


@admin.action(description="Sync selected members from PluginLab", permissions=["sync"])
def sync_from_pluginlab(
    modeladmin: admin.ModelAdmin[Member], request: HttpRequest, queryset: QuerySet[Member]
) -> TemplateResponse | None:
    if not confirmed(request):
        return confirmation_page(
            modeladmin,
            request,
            queryset,
            action="sync_from_pluginlab",
            title="Sync from PluginLab",
            question="Fetch these members from PluginLab and update the mirror?",
        )
    for member in queryset:
        try:
            row = retry_if_locked(sync.sync_member)(member.remote_id)
        except DatabaseLocked as exc:
            modeladmin.message_user(request, f"{member}: sync not stored: {exc}", messages.ERROR)
            continue
        except RemoteError as exc:
            modeladmin.message_user(
                request, f"{member}: sync failed, nothing changed: {exc}", messages.ERROR
            )
            continue
        if row is not None and row.deleted_remotely_at:
            modeladmin.message_user(
                request,
                f"{member}: PluginLab no longer has this member; marked as deleted remotely.",
                messages.WARNING,
            )
        else:
            modeladmin.message_user(request, f"{member}: synced.", messages.SUCCESS)
    return None


@admin.action(description="Snapshot quota usage", permissions=["sync"])
def snapshot_quota_usage(
    modeladmin: admin.ModelAdmin[Member], request: HttpRequest, queryset: QuerySet[Member]
) -> TemplateResponse | None:
    if not confirmed(request):
        return confirmation_page(
            modeladmin,
            request,
            queryset,
            action="snapshot_quota_usage",
            title="Snapshot quota usage",
            question="Record the current quota usage of these members?",
        )
    run = sync.snapshot_quotas([m.remote_id for m in queryset])
    level = messages.SUCCESS if run.status == run.Status.SUCCEEDED else messages.ERROR
    message = f"Quota snapshots: {run.created} taken, {run.failed} failed."
    if run.error:
        message += f" {run.error}"
    modeladmin.message_user(request, message, level)
    return None


@admin.action(description="Refresh identity tokens", permissions=["refresh_identity"])
def refresh_identity_tokens(
    modeladmin: admin.ModelAdmin[Member], request: HttpRequest, queryset: QuerySet[Member]
) -> TemplateResponse | None:
    if not confirmed(request):
        return confirmation_page(
            modeladmin,
            request,
            queryset,
            action="refresh_identity_tokens",
            title="Refresh identity tokens",
            question="Ask PluginLab for fresh access tokens of these members' identities?",
        )
    for member in queryset.prefetch_related("identities"):
        identities = list(member.identities.all())
        if not identities:
            modeladmin.message_user(request, f"{member}: no identity to refresh.", messages.INFO)
        for identity in identities:
            label = f"{member} / {identity.get_provider_display()}"
            try:
                # The service's single flight: a refresh racing get_access_token
                # or the periodic task happens once.
                retry_if_locked(identity_service.refresh_identity)(identity)
            except identity_service.IdentityNotFound:
                modeladmin.message_user(
                    request, f"{label}: the identity was removed meanwhile.", messages.INFO
                )
            except DatabaseLocked as exc:
                modeladmin.message_user(request, f"{label}: {exc}", messages.ERROR)
            except RefreshNotSupported:
                modeladmin.message_user(
                    request,
                    f"{label}: {identity.get_provider_display()} tokens cannot be refreshed.",
                    messages.WARNING,
                )
            except RefreshTokenFailed:  # ReauthenticationRequired
                modeladmin.message_user(
                    request,
                    f"{label}: the provider refused the refresh token; the member "
                    "must sign in again (marked as needing re-authentication).",
                    messages.ERROR,
                )
            except RemoteError as exc:
                modeladmin.message_user(
                    request, f"{label}: refresh failed, nothing changed: {exc}", messages.ERROR
                )
            else:
                modeladmin.message_user(request, f"{label}: token refreshed.", messages.SUCCESS)
    return None


@admin.action(description="Create a custom usage event", permissions=["create_event"])
def create_custom_event(
    modeladmin: admin.ModelAdmin[Member], request: HttpRequest, queryset: QuerySet[Member]
) -> TemplateResponse | None:
    form = CustomEventForm(request.POST if confirmed(request) else None)
    if not (confirmed(request) and form.is_valid()):
        return confirmation_page(
            modeladmin,
            request,
            queryset,
            action="create_custom_event",
            title="Create a custom usage event",
            question="Send one custom event to PluginLab for each of these members:",
            form=form,
        )
    data = form.cleaned_data
    for member in queryset:
        try:
            event_service.send_custom_event(
                event_source=data["event_source"],
                member=member,
                is_in_quota=data["is_in_quota"],
                country_code=data["country_code"],
                subdivision_code=data["subdivision_code"],
                sent_by=request.user,
            )
        except RemoteError as exc:
            modeladmin.message_user(request, f"{member}: event not recorded: {exc}", messages.ERROR)
        else:
            modeladmin.message_user(
                request, f"{member}: event {data['event_source']} sent.", messages.SUCCESS
            )
    return None


@admin.action(description="Delete selected members (in PluginLab too)", permissions=["delete"])
def delete_selected(
    modeladmin: admin.ModelAdmin[Member], request: HttpRequest, queryset: QuerySet[Member]
) -> TemplateResponse | None:
    """Replaces Django's bulk delete: PluginLab first, and a partial failure
    keeps (and names) the members it could not delete."""
    if not request.POST.get("post"):
        return admin_actions.delete_selected(modeladmin, request, queryset)
    members = list(queryset)
    result = member_service.delete_members(members)
    deleted = [m for m in members if m.remote_id in set(result.deleted)]
    if deleted:
        log_deletions(modeladmin, request, deleted)
    if result.deleted:
        modeladmin.message_user(
            request,
            f"Deleted {len(result.deleted)} member(s) in PluginLab and here.",
            messages.SUCCESS,
        )
    for member, error in result.failed:
        modeladmin.message_user(
            request, f"{member}: not deleted (kept here): {error}", messages.ERROR
        )
    return None


def log_deletions(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, objects: Sequence[Model]
) -> None:
    """Django 5.1 replaced ``log_deletion`` by ``log_deletions``; support both."""
    if hasattr(modeladmin, "log_deletions"):
        # The stubs say QuerySet; Django only iterates it, and these rows are
        # already deleted.
        modeladmin.log_deletions(request, objects)  # type: ignore[arg-type]
    else:  # Django 4.2 and 5.0
        for obj in objects:
            # django-stubs 6 follows Django 6, which removed log_deletion.
            modeladmin.log_deletion(request, obj, str(obj))  # type: ignore[attr-defined]


MEMBER_ACTIONS = (
    sync_from_pluginlab,
    snapshot_quota_usage,
    refresh_identity_tokens,
    create_custom_event,
    delete_selected,
)

__all__ = ["MEMBER_ACTIONS", "Member", "confirmation_page", "confirmed", "log_deletions"]
