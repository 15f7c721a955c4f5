from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class SyncRun(models.Model):
    """One run of a sync, so the admin can show sync health."""

    class Kind(models.TextChoices):
        MEMBERS = "members", _("Members")
        MEMBER = "member", _("One member")
        IDENTITIES = "identities", _("Identities")
        QUOTAS = "quotas", _("Quota snapshots")
        API_KEYS = "apikeys", _("API keys")

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, db_index=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RUNNING
    )
    started_at = models.DateTimeField(_("started"), default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    marked_deleted = models.PositiveIntegerField(_("marked deleted"), default=0)
    failed = models.PositiveIntegerField(default=0)
    pages = models.PositiveIntegerField(default=0)
    # The last page token fully stored: an interrupted run resumes from here.
    cursor = models.CharField(max_length=512, blank=True, default="")
    # False for a run resumed midway: it cannot tell which members vanished.
    complete = models.BooleanField(default=False)
    error = models.TextField(_("error"), blank=True)
    # Refreshed with every page's progress UPDATE while the run is alive: a
    # run whose heartbeat is older than SYNC_HEARTBEAT_TIMEOUT was killed
    # (SIGKILL, a dead machine) and its lock may be taken over.
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)

    #: Not stored: set by ``sync.runs`` on the run it starts and finishes, the
    #: exception that ended a failed run (None otherwise).
    exception: BaseException | None

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering = ("-started_at", "-id")
        get_latest_by = "started_at"
        constraints = [
            # The full-member-sync lock: at most one running members run, on
            # every backend and across processes (see pluginlab_django.sync.runs).
            models.UniqueConstraint(
                fields=["kind"],
                condition=models.Q(kind="members", status="running"),
                name="pluginlab_syncrun_one_running_members",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} @ {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def duration(self) -> timedelta | None:
        if not self.finished_at:
            return None
        return self.finished_at - self.started_at
