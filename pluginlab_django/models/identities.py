from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..fields import EncryptedTextField


class Provider(models.TextChoices):
    GOOGLE = "google", _("Google")
    GITHUB = "github", _("GitHub")
    GITLAB = "gitlab", _("GitLab")
    MICROSOFT = "microsoft", _("Microsoft")


class Identity(models.Model):
    """An OAuth identity of a member; tokens are encrypted at rest."""

    member = models.ForeignKey(
        "pluginlab_django.Member", on_delete=models.CASCADE, related_name="identities"
    )
    provider = models.CharField(_("provider"), max_length=16, choices=Provider.choices)
    provider_user_id = models.CharField(_("provider user id"), max_length=255, blank=True)
    access_token = EncryptedTextField(_("access token"), blank=True, null=True)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token = EncryptedTextField(_("refresh token"), blank=True, null=True)
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    # Set when a refresh fails with 422: the member must sign in again.
    needs_reauth = models.BooleanField(_("needs re-authentication"), default=False)
    refreshed_at = models.DateTimeField(_("last refreshed"), null=True, blank=True)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)

    class Meta:
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "provider"], name="pluginlab_identity_member_provider"
            )
        ]
        permissions = [("refresh_identity", "Can refresh an identity token")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.provider_user_id}"

    @property
    def access_token_expired(self) -> bool:
        return bool(self.access_token_expires_at and self.access_token_expires_at <= timezone.now())

    @property
    def can_refresh(self) -> bool:
        return self.provider in (Provider.GOOGLE, Provider.GITLAB)
