from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..fields import EncryptedTextField, current_fingerprint, is_undecryptable

TOKEN_FIELDS = ("access_token", "refresh_token")


class Provider(models.TextChoices):
    GOOGLE = "google", _("Google")
    GITHUB = "github", _("GitHub")
    GITLAB = "gitlab", _("GitLab")
    MICROSOFT = "microsoft", _("Microsoft")


class Identity(models.Model):
    """An OAuth identity of a member; tokens are encrypted at rest.

    ``key_fingerprint`` names the key the tokens were encrypted with (see
    ``fields.key_fingerprint``); ``save()`` keeps it and the tokens together.
    ``refresh_lease_expires_at`` is the single-flight claim on a refresh
    (``services.identities``): set by one process's conditional UPDATE,
    cleared when it is done, and simply expiring if that process dies.
    """

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
    key_fingerprint = models.CharField(
        _("encryption key fingerprint"), max_length=16, blank=True, default="", db_index=True
    )
    refresh_lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

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

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Write the tokens and their key fingerprint as one unit.

        A save touching either token (or the fingerprint) writes both tokens,
        so a row is never half under one key and half under another.
        """
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and set(update_fields) & {*TOKEN_FIELDS, "key_fingerprint"}:
            deferred = self.get_deferred_fields()
            extra = [f for f in (*TOKEN_FIELDS, "key_fingerprint") if f not in deferred]
            kwargs["update_fields"] = list(dict.fromkeys([*update_fields, *extra]))
            update_fields = kwargs["update_fields"]
        if update_fields is None or "key_fingerprint" in update_fields:
            tokens = [getattr(self, f, None) for f in TOKEN_FIELDS]
            if not any(is_undecryptable(t) for t in tokens):
                self.key_fingerprint = current_fingerprint() if any(tokens) else ""
        super().save(*args, **kwargs)

    def token_undecryptable(self, field: str = "access_token") -> bool:
        """True when the stored ``field`` exists but no configured key opens it."""
        return is_undecryptable(getattr(self, field))

    @property
    def access_token_expired(self) -> bool:
        return bool(self.access_token_expires_at and self.access_token_expires_at <= timezone.now())

    @property
    def can_refresh(self) -> bool:
        return self.provider in (Provider.GOOGLE, Provider.GITLAB)
