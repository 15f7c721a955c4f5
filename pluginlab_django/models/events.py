from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class CustomEvent(models.Model):
    """A local log of every custom event we sent to PluginLab, sent or not."""

    class Status(models.TextChoices):
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    member = models.ForeignKey(
        "pluginlab_django.Member",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="custom_events",
    )
    # Kept even when the member row is gone or was never mirrored.
    member_remote_id = models.CharField(_("member id"), max_length=64, blank=True)
    event_source = models.CharField(_("event source"), max_length=10)
    is_in_quota = models.BooleanField(_("counts in quota"), default=True)
    country_code = models.CharField(_("country code"), max_length=2, blank=True)
    subdivision_code = models.CharField(_("subdivision code"), max_length=8, blank=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    status = models.CharField(_("outcome"), max_length=8, choices=Status.choices)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("custom event")
        verbose_name_plural = _("custom events")
        ordering = ("-created_at", "-id")
        permissions = [("create_event", "Can create a custom usage event")]

    def __str__(self) -> str:
        return f"{self.event_source} ({self.get_status_display()})"
