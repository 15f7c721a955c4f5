from __future__ import annotations

from django.db import models
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _


class SignInMethod(models.TextChoices):
    EMAIL_AND_PASSWORD = "email-and-password", _("Email and password")
    MAGIC_EMAIL_CODE = "magic-email-code", _("Magic email code")
    GOOGLE = "google", _("Google")
    GITHUB = "github", _("GitHub")
    GITLAB = "gitlab", _("GitLab")
    MICROSOFT = "microsoft", _("Microsoft")


class MemberQuerySet(models.QuerySet["Member"]):
    def active(self) -> MemberQuerySet:
        """Members PluginLab still lists."""
        return self.filter(deleted_remotely_at__isnull=True)

    def by_email(self, email: str) -> MemberQuerySet:
        """Case-insensitive email lookup (uses the UPPER(email) index)."""
        return self.annotate(_email_upper=Upper("email")).filter(_email_upper=email.upper())


class Member(models.Model):
    """A PluginLab member, mirrored.

    Rows are written only by ``pluginlab_django.sync`` (from remote data) and
    never dropped because the remote stopped listing them:
    ``deleted_remotely_at`` marks them instead.
    """

    remote_id = models.CharField(_("PluginLab id"), max_length=64, unique=True)
    # Looked up case-insensitively only (``by_email``: the UPPER(email) index).
    email = models.EmailField(_("email"), max_length=254)
    name = models.CharField(_("name"), max_length=255, blank=True, default="")
    given_name = models.CharField(_("given name"), max_length=255, blank=True, default="")
    family_name = models.CharField(_("family name"), max_length=255, blank=True, default="")
    picture_url = models.URLField(_("picture URL"), max_length=2048, blank=True, default="")
    sign_in_method = models.CharField(
        _("sign-in method"), max_length=32, choices=SignInMethod.choices, blank=True, default=""
    )
    is_verified = models.BooleanField(_("verified"), default=False)
    has_password = models.BooleanField(_("has password"), default=False)
    provider_user_id = models.CharField(
        _("provider user id"), max_length=255, blank=True, default=""
    )
    custom_fields = models.JSONField(_("custom fields"), default=dict, blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    # Known only from tokens or webhooks: the admin API does not return them.
    plan_id = models.CharField(_("plan id"), max_length=128, blank=True, default="")
    price_id = models.CharField(_("price id"), max_length=128, blank=True, default="")
    remote_created_at = models.DateTimeField(_("created remotely"), null=True, blank=True)
    remote_updated_at = models.DateTimeField(_("updated remotely"), null=True, blank=True)
    # The exact updatedAtMs, so an unchanged member is recognised without a write.
    remote_updated_at_ms = models.BigIntegerField(null=True, blank=True, editable=False)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)
    deleted_remotely_at = models.DateTimeField(_("deleted remotely"), null=True, blank=True)
    # The member JSON as last seen, so fields the vendor adds later are kept.
    remote_data = models.JSONField(_("remote data"), default=dict, blank=True, editable=False)
    # Denormalised pointer to the newest snapshot: lists show quota usage
    # with one JOIN instead of a query per member.
    latest_quota = models.ForeignKey(
        "pluginlab_django.QuotaSnapshot",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        db_index=False,  # a partial index in Meta: only rows that point somewhere
    )

    objects = MemberQuerySet.as_manager()

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ("-remote_created_at", "-id")
        # Every index here is written by each member a sync inserts, so only
        # those a query uses exist (migration 0007 dropped the rest). No
        # plain or ``LIKE`` index on ``email``: lookups go through UPPER(email)
        # and the admin's search is a substring match no btree serves. No
        # ``LIKE`` index on ``plan_id`` (only equality: the admin's filter).
        # ``deleted_remotely_at`` and ``latest_quota`` are indexed where set
        # only: the queries that need an index look for deleted members and
        # for members pointing at given snapshots (``SET_NULL`` on deletion),
        # and a first sync inserts neither.
        indexes = [
            models.Index(Upper("email"), name="pluginlab_member_email_ci"),
            models.Index(fields=["-remote_created_at", "-id"], name="pluginlab_member_created"),
            models.Index(fields=["plan_id"], name="pluginlab_member_plan"),
            models.Index(
                fields=["deleted_remotely_at"],
                name="pluginlab_member_deleted",
                condition=models.Q(deleted_remotely_at__isnull=False),
            ),
            models.Index(
                fields=["latest_quota"],
                name="pluginlab_member_quota",
                condition=models.Q(latest_quota__isnull=False),
            ),
        ]
        permissions = [("sync", "Can sync from PluginLab")]

    def __str__(self) -> str:
        return self.email or self.remote_id

    @property
    def is_deleted_remotely(self) -> bool:
        return self.deleted_remotely_at is not None
