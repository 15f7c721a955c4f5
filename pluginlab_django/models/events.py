from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class CustomEvent(models.Model):
    """A custom usage event: the outbox row of a use to report to PluginLab.

    Lifecycle: ``pending`` (written in the request's transaction, nothing
    sent yet) → ``sending`` (claimed by one sender just before its POST) →
    ``sent`` or ``failed`` (PluginLab refused it; ``error`` says why). A
    sender that cannot reach PluginLab puts the event back to ``pending``. An
    event found ``sending`` long after its claim was left by a sender that
    died mid-POST: PluginLab may or may not have counted it, so it is never
    resent automatically (see ``services.outbox``).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
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
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.PENDING
    )
    error = models.TextField(_("error"), blank=True)
    # When a sender claimed it (status "sending"); kept afterwards for the record.
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    # When PluginLab acknowledged it: the quota check counts "sent" events
    # acknowledged after the latest snapshot was taken.
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)

    class Meta:
        verbose_name = _("custom event")
        verbose_name_plural = _("custom events")
        ordering = ("-created_at", "-id")
        permissions = [("create_event", "Can create a custom usage event")]
        indexes = [
            # The fresh quota count: one member's pending/sending events and
            # those sent after a snapshot.
            models.Index(
                fields=["member_remote_id", "status", "sent_at"], name="pluginlab_event_quota"
            ),
            # The sender: pending events, oldest first.
            models.Index(fields=["status", "id"], name="pluginlab_event_outbox"),
        ]

    def __str__(self) -> str:
        return f"{self.event_source} ({self.get_status_display()})"
