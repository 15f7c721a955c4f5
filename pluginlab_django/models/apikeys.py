from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

#: Key id and secret prefixes, and the only modes they are taken for
#: (wire spec §2). Any other prefix has no mode: nothing is guessed.
KEY_ID_PREFIXES = {"pk_live_": "live", "pk_test_": "test"}
SECRET_PREFIXES = {"sk_live_": "live", "sk_test_": "test"}


def mode_of(value: str | None, prefixes: dict[str, str] = KEY_ID_PREFIXES) -> str | None:
    """``"live"``/``"test"`` from a documented prefix, else ``None``."""
    for prefix, mode in prefixes.items():
        if (value or "").startswith(prefix):
            return mode
    return None


class ApiKeyMode(models.TextChoices):
    TEST = "test", _("Test")
    LIVE = "live", _("Live")


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        """Keys Plugipay still lists and has not revoked."""
        return self.filter(revoked_at__isnull=True, gone_at__isnull=True)

    def revocation_due(self, now: datetime | None = None) -> ApiKeyQuerySet:
        return self.active().filter(revoke_scheduled_at__lte=now or timezone.now())


class ApiKey(models.Model):
    """A Plugipay API key record. The secret is **never** stored: Plugipay
    returns it once, on create, and the admin shows it once."""

    record_id = models.CharField(_("record id"), max_length=64, unique=True)
    account_id = models.CharField(_("account id"), max_length=64, blank=True)
    key_id = models.CharField(_("key id"), max_length=128, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True, default="")
    scope = models.TextField(_("scope"), blank=True, default="")
    # Blank when the key id has neither documented prefix.
    mode = models.CharField(_("mode"), max_length=8, choices=ApiKeyMode.choices, blank=True)
    created_at = models.DateTimeField(_("created at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, db_index=True)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)
    # Set by a rotation with overlap: the periodic task revokes the key then.
    revoke_scheduled_at = models.DateTimeField(
        _("revocation scheduled at"), null=True, blank=True, db_index=True
    )
    # Set by the API key sync when Plugipay no longer lists the record.
    gone_at = models.DateTimeField(_("gone from Plugipay"), null=True, blank=True)

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
        return self.revoked_at is None and self.gone_at is None

    @property
    def state(self) -> str:
        """``gone``, ``revoked``, ``revocation scheduled <when>`` or ``active``."""
        if self.gone_at is not None:
            return "gone"
        if self.revoked_at is not None:
            return "revoked"
        if self.revoke_scheduled_at is not None:
            return f"revocation scheduled {self.revoke_scheduled_at.isoformat(timespec='seconds')}"
        return "active"

    @property
    def age_days(self) -> int | None:
        if not self.created_at:
            return None
        return (timezone.now() - self.created_at).days

    @staticmethod
    def mode_for(key_id: str) -> str:
        return mode_of(key_id) or ""


class ApiKeyFormToken(models.Model):
    """A one-time token of an admin form that mints a key (add, rotate).

    The form carries a signed random token; the submission that inserts
    its row (unique) is the only one that may call Plugipay, so a reload, the
    back button or a re-sent POST creates nothing. Only a hash is kept.
    """

    token_hash = models.CharField(max_length=64, unique=True)
    used_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_key_ids = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = _("API key form token")
        default_permissions = ()

    def __str__(self) -> str:
        return f"form token used {self.used_at:%Y-%m-%d %H:%M}"
