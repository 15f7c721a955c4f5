"""Sync health: every run with its counts and error, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..models import SyncRun
from .display import ADMIN_CSS, compact_datetime, counts


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = (
        "kind",
        "status",
        "started",
        "finished",
        "results",
        "complete",
    )
    list_filter = ("kind", "status", "complete")
    date_hierarchy = "started_at"

    class Media:
        css = ADMIN_CSS

    @admin.display(description=_("started"), ordering="started_at")
    def started(self, obj: SyncRun) -> SafeString | str:
        return compact_datetime(obj.started_at)

    @admin.display(description=_("finished"), ordering="finished_at")
    def finished(self, obj: SyncRun) -> SafeString | str:
        return compact_datetime(obj.finished_at)

    @admin.display(description=_("results"))
    def results(self, obj: SyncRun) -> SafeString:
        return counts(
            [
                ("new", obj.created),
                ("updated", obj.updated),
                ("unchanged", obj.unchanged),
                ("marked deleted", obj.marked_deleted),
                ("failed", obj.failed),
                ("pages", obj.pages),
            ]
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False
