from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class QuotaSnapshot(models.Model):
    """A member's quota usage at one moment. History is kept;
    ``Member.latest_quota`` points at the newest one."""

    member = models.ForeignKey(
        "pluginlab_django.Member", on_delete=models.CASCADE, related_name="quota_snapshots"
    )
    taken_at = models.DateTimeField(_("taken at"), default=timezone.now, db_index=True)
    interval = models.CharField(_("interval"), max_length=32, blank=True)
    usage_count = models.PositiveIntegerField(_("usage count"), default=0)
    usage_limit = models.PositiveIntegerField(_("usage limit"), default=0)
    is_over_limit = models.BooleanField(_("over limit"), default=False)
    is_unlimited = models.BooleanField(_("unlimited"), default=False)
    reset_in_days = models.IntegerField(_("resets in days"), default=0)

    class Meta:
        verbose_name = _("quota snapshot")
        verbose_name_plural = _("quota snapshots")
        ordering = ("-taken_at", "-id")
        get_latest_by = "taken_at"
        indexes = [models.Index(fields=["member", "-taken_at"], name="pluginlab_quota_latest")]

    def __str__(self) -> str:
        limit = "∞" if self.is_unlimited else self.usage_limit
        return f"{self.usage_count}/{limit} ({self.interval})"

    @property
    def usage_ratio(self) -> float | None:
        if self.is_unlimited or not self.usage_limit:
            return None
        return self.usage_count / self.usage_limit
