"""The member admin: a fast list over the mirror, edits that write through to
PluginLab, identities and quota history inline, and the dashboard's URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..models import Identity, Member
from ..services import members as member_service
from .actions import MEMBER_ACTIONS, log_deletions
from .display import (
    ADMIN_CSS,
    compact_datetime,
    email_and_name,
    expiry,
    local_datetime,
    mask_secret,
    usage_bar,
)
from .forms import MemberAddForm, MemberChangeForm, RemoteRefused, WriteThroughForm
from .pagination import EstimatedCountPaginator

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class OverLimitFilter(admin.SimpleListFilter):
    title = _("quota")
    parameter_name = "quota"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> tuple[tuple[str, StrOrPromise], ...]:
        return (
            ("over", _("Over limit")),
            ("within", _("Within limit")),
            ("none", _("No snapshot")),
        )

    def queryset(self, request: HttpRequest, queryset: QuerySet[Member]) -> QuerySet[Member]:
        if self.value() == "over":
            return queryset.filter(latest_quota__is_over_limit=True)
        if self.value() == "within":
            return queryset.filter(latest_quota__is_over_limit=False)
        if self.value() == "none":
            return queryset.filter(latest_quota__isnull=True)
        return queryset


class DeletedRemotelyFilter(admin.SimpleListFilter):
    title = _("deleted remotely")
    parameter_name = "deleted"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> tuple[tuple[str, StrOrPromise], ...]:
        return (("yes", _("Yes")), ("no", _("No")))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Member]) -> QuerySet[Member]:
        if self.value() == "yes":
            return queryset.filter(deleted_remotely_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(deleted_remotely_at__isnull=True)
        return queryset


class ReadOnlyInline(admin.TabularInline):
    """Mirrored rows: what PluginLab says, never edited here."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class _RefusedRequest(HttpRequest):
    """A request whose save PluginLab refused (for the type checker only):
    ``get_form`` shows the reason on the re-rendered form."""

    _pluginlab_remote_refusal: str


UNDECRYPTABLE_NOTE = _("cannot be decrypted (key not configured)")


def masked_token(obj: Identity, field: str) -> str:
    """The masked token, or a note when no configured key can decrypt it
    (a sync from PluginLab, or the old key put back, repairs it)."""
    if obj.token_undecryptable(field):
        return str(UNDECRYPTABLE_NOTE)
    return mask_secret(getattr(obj, field))


class IdentityInline(ReadOnlyInline):
    model = Identity
    fields = readonly_fields = (
        "provider",
        "provider_user_id",
        "masked_access_token",
        "access_token_expiry",
        "masked_refresh_token",
        "refresh_token_expiry",
        "needs_reauth",
        "refreshed_at",
    )

    @admin.display(description=_("access token"))
    def masked_access_token(self, obj: Identity) -> str:
        return masked_token(obj, "access_token")

    @admin.display(description=_("refresh token"))
    def masked_refresh_token(self, obj: Identity) -> str:
        return masked_token(obj, "refresh_token")

    @admin.display(description=_("access token expires"))
    def access_token_expiry(self, obj: Identity) -> SafeString | str:
        return expiry(obj.access_token_expires_at)

    @admin.display(description=_("refresh token expires"))
    def refresh_token_expiry(self, obj: Identity) -> SafeString | str:
        return expiry(obj.refresh_token_expires_at)


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    """Saving a member PATCHes PluginLab (``MemberChangeForm.write_through``)
    only once the form and every inline validated (Django calls
    ``save_model`` only then); the row is written from PluginLab's answer,
    never from the form. A refusal re-renders the form with the reason."""

    list_display = (
        "member",
        "sign_in_method",
        "is_verified",
        "plan_id",
        "quota",
        "updated",
    )
    list_filter = (
        "sign_in_method",
        "is_verified",
        "plan_id",
        OverLimitFilter,
        DeletedRemotelyFilter,
    )
    search_fields = ("email", "name", "=remote_id")
    list_select_related = ("latest_quota",)
    list_per_page = 50
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ("-remote_created_at", "-id")
    actions = MEMBER_ACTIONS
    inlines = (IdentityInline,)
    readonly_fields = (
        "remote_id",
        "email",
        "sign_in_method",
        "has_password",
        "provider_user_id",
        "custom_fields",
        "plan_id",
        "price_id",
        "remote_created_at",
        "remote_updated_at",
        "last_synced_at",
        "deleted_remotely_at",
        "quota",
        "quota_history",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "remote_id",
                    "email",
                    "sign_in_method",
                    "is_verified",
                    "has_password",
                    "provider_user_id",
                )
            },
        ),
        (
            _("Profile (saved to PluginLab)"),
            {"fields": ("name", "given_name", "family_name", "picture_url", "metadata")},
        ),
        (_("Plan and quota"), {"fields": ("plan_id", "price_id", "quota", "quota_history")}),
        (
            _("Mirror"),
            {
                "fields": (
                    "custom_fields",
                    "remote_created_at",
                    "remote_updated_at",
                    "last_synced_at",
                    "deleted_remotely_at",
                )
            },
        ),
    )
    add_fieldsets = ((None, {"fields": ("email", "password", "is_verified", "metadata")}),)

    class Media:
        css = ADMIN_CSS

    @admin.display(description=_("member"), ordering="email")
    def member(self, obj: Member) -> SafeString:
        return email_and_name(obj.email, obj.name)

    @admin.display(description=_("updated remotely"), ordering="remote_updated_at")
    def updated(self, obj: Member) -> SafeString | str:
        return compact_datetime(obj.remote_updated_at)

    @admin.display(description=_("quota usage"), ordering="latest_quota__usage_count")
    def quota(self, obj: Member) -> SafeString | str:
        return usage_bar(obj.latest_quota)

    @admin.display(description=_("quota history (latest 10)"))
    def quota_history(self, obj: Member) -> SafeString | str:
        snapshots = obj.quota_snapshots.order_by("-taken_at", "-id")[:10]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (local_datetime(s.taken_at), usage_bar(s), s.interval, s.reset_in_days)
                for s in snapshots
            ),
        )
        if not rows:
            return "–"
        return format_html(
            '<table class="pl-quota-history"><thead><tr><th>Taken</th><th>Usage</th>'
            "<th>Interval</th><th>Resets in (days)</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # Forms: change writes through, add creates remotely ----------------------

    def get_form(
        self, request: HttpRequest, obj: Member | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Member]]:
        kwargs["form"] = MemberChangeForm if obj is not None else MemberAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, "_pluginlab_remote_refusal", "")
        if refusal:
            form = type(form.__name__, (form,), {"remote_refusal": refusal})
        return form

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """On a refusal from PluginLab (raised by ``save_model``, which rolls
        back the view's transaction), render the form again with the entered
        values and the reason; no second remote call is made."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except RemoteRefused as refused:
            cast(_RefusedRequest, request)._pluginlab_remote_refusal = refused.message
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_fieldsets(
        self, request: HttpRequest, obj: Member | None = None
    ) -> tuple[tuple[StrOrPromise | None, Any], ...]:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(
        self, request: HttpRequest, obj: Member | None = None
    ) -> list[str] | tuple[str, ...]:
        return () if obj is None else super().get_readonly_fields(request, obj)

    def get_inlines(
        self, request: HttpRequest, obj: Member | None
    ) -> tuple[type[InlineModelAdmin[Any, Any]], ...]:
        return self.inlines if obj is not None else ()

    def save_model(
        self, request: HttpRequest, obj: Member, form: WriteThroughForm, change: bool
    ) -> None:
        """Write through to PluginLab (everything validated by now), then show
        the mirror's copy of its answer: the form's copy is never saved."""
        row = form.write_through()
        obj.pk = row.pk
        obj.refresh_from_db()

    # Delete: PluginLab first -----------------------------------------------------

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method != "POST" or not request.POST.get("post"):
            return super().delete_view(request, object_id, extra_context)
        member = self.get_object(request, object_id)
        if member is None or not self.has_delete_permission(request, member):
            return super().delete_view(request, object_id, extra_context)
        result = member_service.delete_members([member])
        if result.failed:
            self.message_user(
                request,
                f"{member} was not deleted (kept here): {result.failed[0][1]}",
                messages.ERROR,
            )
            return HttpResponseRedirect(
                reverse("admin:pluginlab_django_member_change", args=[member.pk])
            )
        log_deletions(self, request, [member])
        self.message_user(request, f"{member} was deleted in PluginLab and here.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:pluginlab_django_member_changelist"))

    # Custom permissions ----------------------------------------------------------

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pluginlab_django.sync")

    def has_refresh_identity_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pluginlab_django.refresh_identity")

    def has_create_event_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("pluginlab_django.create_event")
