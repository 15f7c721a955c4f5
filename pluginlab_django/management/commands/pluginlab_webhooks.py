"""``manage.py pluginlab_webhooks``: stored webhook deliveries from a terminal.

::

    pluginlab_webhooks reprocess [--failed] [--event NAME] [--id DELIVERY_ID]
                                 [--since DATE] [--queue] [--json]
    pluginlab_webhooks prune [--older-than DAYS] [--json]

``reprocess`` processes, in this process (no broker needed), the deliveries
nothing else will: ``received`` ones and ``processing`` claims older than
``WEBHOOK_CLAIM_TIMEOUT_SECONDS``; ``--failed`` adds failed ones, ``--id``
names one delivery (any status but processed). ``--queue`` hands them to
Celery instead. ``prune`` deletes processed and ignored deliveries older than
``WEBHOOK_RETENTION_DAYS``. Each prints one summary line (or, with
``--json``, one JSON object); exit status 1 when a delivery failed.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ...conf import pluginlab_settings
from ...models import WebhookDelivery
from ...services import webhook_dispatch
from ...services import webhooks as webhook_service

Status = WebhookDelivery.Status


class Command(BaseCommand):
    help = "Reprocess or prune stored PluginLab webhook deliveries."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        reprocess = actions.add_parser(
            "reprocess", help="process deliveries left received, stuck or (--failed) failed"
        )
        reprocess.add_argument("--failed", action="store_true", help="include failed deliveries")
        reprocess.add_argument("--event", help="only deliveries of this event name")
        reprocess.add_argument(
            "--id", dest="delivery_id", help="only this delivery id (ignored ones included)"
        )
        reprocess.add_argument(
            "--since", help="only deliveries received at or after this ISO date or datetime"
        )
        reprocess.add_argument(
            "--queue", action="store_true", help="queue Celery tasks instead of processing here"
        )
        reprocess.add_argument("--json", action="store_true", help="print one JSON object")
        prune = actions.add_parser("prune", help="delete old processed and ignored deliveries")
        prune.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            help="finished more than DAYS ago (default WEBHOOK_RETENTION_DAYS)",
        )
        prune.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "prune":
            self.prune(options)
        else:
            self.reprocess(options)

    # reprocess ---------------------------------------------------------

    def reprocess(self, options: dict[str, Any]) -> None:
        queryset = self.selection(options)
        summary = webhook_dispatch.reprocess_deliveries(
            queryset, reprocess=bool(options["delivery_id"]), queue=options["queue"]
        )
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
        else:
            for delivery_id, error in summary.failures:
                self.stderr.write(f"{delivery_id}: {error}")
            self.stdout.write(summary.line())
        if summary.failures:
            raise CommandError(
                f"{len(summary.failures)} of {summary.selected} deliveries failed; "
                "see their errors in the admin.",
                returncode=1,
            )

    def selection(self, options: dict[str, Any]) -> QuerySet[WebhookDelivery]:
        deliveries = WebhookDelivery.objects.all()
        if options["delivery_id"]:
            deliveries = deliveries.filter(delivery_id=options["delivery_id"])
            if not deliveries.exists():
                raise CommandError(f"No stored delivery has the id {options['delivery_id']!r}.")
        else:
            timeout = timedelta(seconds=pluginlab_settings.WEBHOOK_CLAIM_TIMEOUT_SECONDS)
            wanted = Q(status=Status.RECEIVED) | Q(
                status=Status.PROCESSING, claimed_at__lt=timezone.now() - timeout
            )
            if options["failed"]:
                wanted |= Q(status=Status.FAILED)
            deliveries = deliveries.filter(wanted)
        if options["event"]:
            deliveries = deliveries.filter(event=options["event"])
        if options["since"]:
            deliveries = deliveries.filter(received_at__gte=_parse_since(options["since"]))
        return deliveries

    # prune -------------------------------------------------------------

    def prune(self, options: dict[str, Any]) -> None:
        days = options["older_than"]
        if days is None:
            days = pluginlab_settings.WEBHOOK_RETENTION_DAYS
        if days < 0:
            raise CommandError(f"--older-than must be 0 or more days, not {days}.")
        deleted = webhook_service.prune_deliveries(older_than=timedelta(days=days))
        if options["json"]:
            self.stdout.write(json.dumps({"deleted": deleted, "olderThanDays": days}))
        else:
            self.stdout.write(
                f"Pruned {deleted} processed or ignored deliveries finished more than "
                f"{days} days ago."
            )


def _parse_since(value: str) -> datetime:
    """An ISO datetime or date (midnight), in the current time zone when naive."""
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            moment = datetime.combine(day, time.min) if day is not None else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(
            f"--since {value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]."
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment
