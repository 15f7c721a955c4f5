"""Sync health: every run with its counts and error, read-only."""

from __future__ import annotations

from django.contrib import admin

from ..models import SyncRun


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = (
        "kind",
        "status",
        "started_at",
        "finished_at",
        "created",
        "updated",
        "unchanged",
        "marked_deleted",
        "failed",
        "pages",
        "complete",
    )
    list_filter = ("kind", "status", "complete")
    date_hierarchy = "started_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
