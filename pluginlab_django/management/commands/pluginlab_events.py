"""``manage.py pluginlab_events send-pending | list --status STATUS``.

``send-pending`` sends the custom event outbox from a terminal (the same
sender as the Celery task: one at a time, each event at most once, in order
per member) and prints a summary: sent, failed, still pending.
``list`` shows events, newest first. Both take ``--json`` for scripts.

Exit status of ``send-pending``: 0 when nothing is left pending and none
failed, 2 when some are still pending (PluginLab unreachable, or another
sender is running), 3 when PluginLab refused some (now ``failed``), 1 for
an error (``CommandError``: PluginLab not configured, bad arguments).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from ...models import CustomEvent
from ...services import outbox

STILL_PENDING_EXIT = 2
FAILED_EXIT = 3
LIST_FIELDS = (
    "pk",
    "created_at",
    "status",
    "event_source",
    "member_remote_id",
    "is_in_quota",
    "attempts",
    "claimed_at",
    "sent_at",
    "error",
)


class Command(BaseCommand):
    help = "Send the pending custom usage events to PluginLab, or list events by status."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", metavar="{send-pending,list}")
        sub.required = True
        send = sub.add_parser("send-pending", help="Send every pending event now.")
        send.add_argument("--limit", type=int, default=None, help="Try at most this many.")
        send.add_argument("--json", action="store_true", help="Print the summary as JSON.")
        listing = sub.add_parser("list", help="Show events, newest first.")
        listing.add_argument(
            "--status",
            choices=[*CustomEvent.Status.values, "stuck"],
            default=None,
            help="Only this status ('stuck': sending for longer than "
            "EVENT_SENDING_STALE_SECONDS, left by a sender that died).",
        )
        listing.add_argument("--limit", type=int, default=50, help="At most this many (50).")
        listing.add_argument("--json", action="store_true", help="Print the events as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be a positive number.")
        if options["action"] == "send-pending":
            self._send_pending(limit, options["json"])
        else:
            self._list(options["status"], limit, options["json"])

    def _send_pending(self, limit: int | None, as_json: bool) -> None:
        try:
            summary = outbox.send_pending(limit=limit)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if as_json:
            self.stdout.write(json.dumps(summary.as_dict()))
        else:
            if summary.busy:
                self.stderr.write("Another sender is running; it is sending the pending events.")
            self.stdout.write(
                f"sent: {summary.sent}\nfailed: {summary.failed}\n"
                f"still pending: {summary.still_pending}"
            )
            if summary.unavailable:
                self.stderr.write(f"Stopped early, PluginLab is unavailable: {summary.unavailable}")
        if summary.still_pending:
            sys.exit(STILL_PENDING_EXIT)
        if summary.failed:
            sys.exit(FAILED_EXIT)

    def _list(self, status: str | None, limit: int, as_json: bool) -> None:
        events = CustomEvent.objects.order_by("-pk")
        if status == "stuck":
            events = events.filter(
                status=CustomEvent.Status.SENDING, claimed_at__lt=outbox.stale_before()
            )
        elif status:
            events = events.filter(status=status)
        rows = list(events.values(*LIST_FIELDS)[:limit])
        if as_json:
            self.stdout.write(json.dumps(rows, default=str))
            return
        if not rows:
            self.stdout.write("No events.")
            return
        for row in rows:
            line = (
                f"{row['pk']:>8}  {row['created_at']:%Y-%m-%d %H:%M:%S}  {row['status']:<8} "
                f"{row['event_source']:<10} {row['member_remote_id'] or '-'}"
            )
            if row["error"]:
                line += f"  ({row['error'][:80]})"
            self.stdout.write(line)
