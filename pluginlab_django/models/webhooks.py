from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class WebhookDelivery(models.Model):
    """A signed webhook delivery, stored before it is processed.

    ``delivery_id`` (the signed body's ``deliveryId`` when it has one) and
    ``body_digest`` (SHA-256 of the raw body) are both unique, so one signed
    body is stored at most once whatever headers it is sent with, and a
    repeated delivery is never processed twice; ``body`` is the raw text
    exactly as it was signed.
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
    # NULL only on rows stored before the digest existed (the migration fills
    # it in for all but repeats of one body): NULLs do not collide under the
    # unique constraint, empty strings would.
    body_digest = models.CharField(  # noqa: DJ001
        _("body SHA-256"), max_length=64, unique=True, null=True, editable=False
    )
    received_at = models.DateTimeField(_("received"), default=timezone.now, db_index=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    error = models.TextField(_("error"), blank=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True, editable=False)
    # When processing was last handed to Celery; NULL while nothing was
    # queued (inline processing, or the broker was down): the sweeper and
    # ``pluginlab_webhooks reprocess`` look for those.
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ("-received_at", "-id")
        permissions = [("reprocess_webhookdelivery", "Can reprocess a webhook delivery")]

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id}"
