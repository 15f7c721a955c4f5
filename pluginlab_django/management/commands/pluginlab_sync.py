"""``manage.py pluginlab_sync [members|identities|quotas|apikeys|all] [--async] [--resume]``.

Runs the syncs in this process with a progress bar (tqdm) when stderr is a
terminal and plain progress lines otherwise (logs, cron, CI), then prints a
summary per kind on stdout. ``--async`` enqueues the Celery tasks instead
and prints their ids. Exits non-zero when a sync failed.

Ctrl-C or SIGTERM stops the sync after the page being stored: the run is
recorded ``failed`` ("interrupted") with its cursor, the lock is released,
the summary is printed and the command exits with 128 + the signal number
(130 for Ctrl-C, 143 for SIGTERM); ``--resume`` continues from the cursor.
A second signal during that cleanup does not cut it short.

Exit codes: 0 every sync succeeded; 1 a sync failed, another members sync
holds the lock, an option is invalid or the broker is unreachable
(``--async``); 130/143 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ... import sync
from ...models import SyncRun
from ...sync.interrupts import InterruptGuard, signal_name

#: PluginLab's largest page (see docs/wire-protocol.md).
MAX_PAGE_SIZE = 100

KINDS = ("members", "identities", "quotas", "apikeys")


class Command(BaseCommand):
    help = "Sync members, identities, quota snapshots and API key records from PluginLab/Plugipay."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "kinds",
            nargs="*",
            choices=[*KINDS, "all"],
            default="all",  # a string: argparse checks a '*' default against choices
            metavar="{members,identities,quotas,apikeys,all}",
            help="What to sync (default: all).",
        )
        parser.add_argument(
            "--async",
            action="store_true",
            dest="use_celery",
            help="Enqueue the Celery tasks instead of running here; print their ids.",
        )
        parser.add_argument(
            "--resume",
            action="store_true",
            help="Members: continue from the cursor of the last failed run.",
        )
        parser.add_argument(
            "--page-size", type=int, default=None, help="Members per page (1..100)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        requested = options["kinds"]
        requested = [requested] if isinstance(requested, str) else requested
        kinds = [kind for kind in KINDS if kind in requested or "all" in requested]
        self._validate(kinds, options)
        if options["use_celery"]:
            self._enqueue(kinds, resume=options["resume"])
            return
        runs: list[SyncRun] = []
        # The guard spans the summary too: a late signal cannot cut it short.
        with InterruptGuard() as guard:
            for kind in kinds:
                if guard.interrupted:
                    break
                with self._progress(kind) as progress:
                    runs.append(self._run(kind, guard.progress(progress), options))
            self._print_summary(runs)
        if guard.interrupted:
            raise CommandError(
                self._interrupted_message(guard, kinds, runs), returncode=guard.exit_code
            )
        failed = [run for run in runs if run.status != SyncRun.Status.SUCCEEDED]
        if failed:
            raise CommandError(
                "Failed: " + ", ".join(f"{run.kind} (sync run {run.pk})" for run in failed)
            )

    def _interrupted_message(
        self, guard: InterruptGuard, kinds: list[str], runs: list[SyncRun]
    ) -> str:
        parts = [f"Interrupted by {signal_name(guard.signum or 0)}."]
        stopped = runs[-1] if runs and guard.raised else None
        if stopped is not None and stopped.kind == "members":
            parts.append(
                f"The members sync (sync run {stopped.pk}) stopped after its last stored "
                "page; `pluginlab_sync members --resume` continues from there."
            )
        elif stopped is not None:
            parts.append(f"The {stopped.kind} sync (sync run {stopped.pk}) stopped midway.")
        skipped = kinds[len(runs) :]
        if skipped:
            parts.append("Not run: " + ", ".join(skipped) + ".")
        return " ".join(parts)

    def _validate(self, kinds: list[str], options: dict[str, Any]) -> None:
        """Refuse bad options before anything runs (no traceback, no failed run)."""
        page_size = options["page_size"]
        if page_size is not None and not 1 <= page_size <= MAX_PAGE_SIZE:
            raise CommandError(
                f"--page-size must be between 1 and {MAX_PAGE_SIZE} (got {page_size})."
            )
        if page_size is not None and "members" not in kinds:
            raise CommandError("--page-size applies to the members sync only.")
        if options["resume"] and "members" not in kinds:
            raise CommandError("--resume applies to the members sync only.")
        if options["use_celery"] and page_size is not None:
            raise CommandError(
                "--page-size is not available with --async (the task uses "
                "PLUGINLAB['SYNC_PAGE_SIZE'])."
            )

    def _run(self, kind: str, progress: sync.Progress, options: dict[str, Any]) -> SyncRun:
        if kind == "members":
            try:
                return sync.sync_members(
                    page_size=options["page_size"], resume=options["resume"], progress=progress
                )
            except sync.SyncAlreadyRunning as exc:
                raise CommandError(str(exc)) from exc
        if kind == "identities":
            return sync.sync_identities(progress=progress)
        if kind == "quotas":
            return sync.snapshot_quotas(progress=progress)
        return sync.sync_api_keys()

    def _enqueue(self, kinds: list[str], *, resume: bool) -> None:
        from ... import tasks

        senders: dict[str, Callable[[], Any]] = {
            "members": lambda: tasks.sync_members_task.delay(resume=resume),
            "identities": tasks.sync_identities_task.delay,
            "quotas": tasks.snapshot_quotas_task.delay,
            "apikeys": tasks.sync_api_keys_task.delay,
        }
        for kind in kinds:
            try:
                result = senders[kind]()
            except Exception as exc:  # kombu's errors vary by transport
                raise CommandError(broker_error(kind, exc)) from None
            self.stdout.write(f"{kind}: enqueued task {result.id}")

    def _progress(self, kind: str) -> ProgressReporter:
        if self.stderr.isatty():
            return BarProgress(kind, getattr(self.stderr, "_out", sys.stderr))
        return LineProgress(kind, self.stderr)

    def _print_summary(self, runs: list[SyncRun]) -> None:
        self.stdout.write("Summary:")
        for run in runs:
            line = (
                f"  {run.kind}: {run.created} created, {run.updated} updated, "
                f"{run.unchanged} unchanged, {run.marked_deleted} marked deleted, "
                f"{run.failed} failed, {run.pages} pages — {run.status} (sync run {run.pk})"
            )
            succeeded = run.status == SyncRun.Status.SUCCEEDED
            style = self.style.SUCCESS if succeeded else self.style.ERROR
            self.stdout.write(style(line))
            if run.error:
                self.stdout.write(f"    {run.error.splitlines()[0]}")


def broker_error(kind: str, exc: Exception) -> str:
    """One sentence for a failed enqueue: which broker, why, what to do."""
    from celery import current_app

    broker = current_app.conf.broker_url or "amqp://guest@localhost:5672// (Celery's default)"
    try:
        from kombu.utils.url import maybe_sanitize_url

        broker = maybe_sanitize_url(broker)  # no password in the message
    except ImportError:  # pragma: no cover - kombu comes with Celery
        pass
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"Could not enqueue the {kind} sync: the Celery broker {broker} is unreachable "
        f"({reason}). Configure a Celery app with a reachable broker (see the README's "
        "Celery section), or run the sync here without --async."
    )


class ProgressReporter:
    """A ``progress(done, total)`` callback used as a context manager."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __call__(self, done: int, total: int | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class BarProgress(ProgressReporter):
    """A tqdm bar (terminals only)."""

    def __init__(self, kind: str, stream: Any) -> None:
        super().__init__(kind)
        from tqdm import tqdm

        self.bar = tqdm(desc=kind, unit=" members", file=stream, dynamic_ncols=True)

    def __call__(self, done: int, total: int | None) -> None:
        if total is not None and self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class LineProgress(ProgressReporter):
    """Plain lines at every 10% (or every 1000 when the total is unknown)."""

    STEP_PERCENT = 10
    STEP_UNKNOWN = 1000

    def __init__(self, kind: str, stream: Any) -> None:
        super().__init__(kind)
        self.stream = stream
        self.next_mark = 0

    def __call__(self, done: int, total: int | None) -> None:
        if total:
            percent = min(100, done * 100 // total)
            if percent >= self.next_mark or done >= total:
                self.stream.write(f"{self.kind}: {done}/{total} ({percent}%)")
                self.next_mark = (percent // self.STEP_PERCENT + 1) * self.STEP_PERCENT
        elif done >= self.next_mark:
            self.stream.write(f"{self.kind}: {done}")
            self.next_mark = done + self.STEP_UNKNOWN
