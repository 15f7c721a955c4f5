from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ApiKeyMode(models.TextChoices):
    TEST = "test", _("Test")
    LIVE = "live", _("Live")


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A Plugipay API key record. The secret is **never** stored: Plugipay
    returns it once, on create, and the admin shows it once."""

    record_id = models.CharField(_("record id"), max_length=64, unique=True)
    account_id = models.CharField(_("account id"), max_length=64, blank=True)
    key_id = models.CharField(_("key id"), max_length=128, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True, default="")
    scope = models.TextField(_("scope"), blank=True, default="")
    mode = models.CharField(_("mode"), max_length=8, choices=ApiKeyMode.choices)
    created_at = models.DateTimeField(_("created at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, db_index=True)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ("-created_at", "-id")
        permissions = [
            ("revoke_apikey", "Can revoke a Plugipay API key"),
            ("create_apikey", "Can create a Plugipay API key"),
        ]

    def __str__(self) -> str:
        return self.key_id

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def age_days(self) -> int | None:
        if not self.created_at:
            return None
        return (timezone.now() - self.created_at).days

    @staticmethod
    def mode_for(key_id: str) -> str:
        return ApiKeyMode.LIVE if key_id.startswith("pk_live_") else ApiKeyMode.TEST
