"""``manage.py pluginlab_doctor [--json] [--local]``: is PluginLab healthy here?

One line per item, ``ok``/``warn``/``fail``: each remote host with these
credentials and its latency, the JWKS, the last success of each sync kind,
the webhook backlog (see ``pluginlab_django.health``). Exit status 0 when
nothing fails (warnings included), 1 when any item fails.

It runs whatever the settings are (it reports bad ones itself), so system
checks are not required first.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pluginlab_django.health import Status, registered_checks, run_checks


class Command(BaseCommand):
    help = "Check the PluginLab and Plugipay hosts, the JWKS, the syncs and the webhook backlog."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON document on stdout.")
        parser.add_argument(
            "--local", action="store_true", help="Skip the checks that call remote hosts."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        checks = registered_checks(remote=False if options["local"] else None)
        results = run_checks(checks)
        failed = [check.name for check, result in results if result.status is Status.FAIL]
        if options["json"]:
            document = {
                "healthy": not failed,
                "checks": [
                    {
                        "name": check.name,
                        "status": result.status.value,
                        "summary": result.summary,
                        "remote": check.remote,
                        "latency_ms": result.latency_ms,
                        "details": result.details,
                    }
                    for check, result in results
                ],
            }
            self.stdout.write(json.dumps(document, indent=2, default=str))
        else:
            width = max((len(check.name) for check, _ in results), default=0)
            styles = {
                Status.OK: self.style.SUCCESS,
                Status.WARN: self.style.WARNING,
                Status.FAIL: self.style.ERROR,
            }
            for check, result in results:
                status = styles[result.status](f"{result.status.value:<4}")
                self.stdout.write(f"{status}  {check.name:<{width}}  {result.summary}")
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} items failed: {', '.join(failed)}", returncode=1
            )
