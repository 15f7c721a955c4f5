from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class WebhookDelivery(models.Model):
    """A signed webhook delivery, stored before it is processed.

    ``delivery_id`` is unique, so a repeated delivery is recognised and never
    processed twice; ``body`` is the raw text exactly as it was signed.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        # Claimed by one processor (a conditional UPDATE), so a delivery is
        # never processed twice at once; a claim older than
        # WEBHOOK_CLAIM_TIMEOUT_SECONDS is presumed abandoned.
        PROCESSING = "processing", _("Processing")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed")
        IGNORED = "ignored", _("Ignored")

    delivery_id = models.CharField(_("delivery id"), max_length=128, unique=True)
    hook_id = models.CharField(_("hook id"), max_length=128, blank=True)
    event = models.CharField(_("event"), max_length=128, db_index=True)
    headers = models.JSONField(_("headers"), default=dict)
    body = models.TextField(_("raw body"))
    received_at = models.DateTimeField(_("received"), default=timezone.now, db_index=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    error = models.TextField(_("error"), blank=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ("-received_at", "-id")
        permissions = [("reprocess_webhookdelivery", "Can reprocess a webhook delivery")]

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id}"
