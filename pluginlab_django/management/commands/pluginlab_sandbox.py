"""``manage.py pluginlab_sandbox``: run the sandbox and print the settings a site needs.

It needs no PluginLab settings (it is what prints them), so system checks
are skipped. The 11 ``KEY=value`` lines go to stdout, flushed, before
serving; SIGINT or SIGTERM stops it cleanly with exit status 0.
"""

from __future__ import annotations

import signal
import threading
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from pluginlab_django.testing import Sandbox


class Command(BaseCommand):
    help = "Run the PluginLab/Plugipay sandbox on a loopback port and print its settings."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--members", type=int, default=500)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--webhook-url", default=None)
        parser.add_argument("--plugin-id", default=None)
        parser.add_argument("--secret", default=None, help="The admin SDK secret.")
        parser.add_argument("--webhook-secret", default=None)
        parser.add_argument("--plugipay-key-id", default=None)
        parser.add_argument("--plugipay-secret", default=None)
        parser.add_argument("--verbose", action="store_true", help="Log every request.")

    def handle(self, *args: Any, **options: Any) -> None:
        validate_options(options)
        sandbox = Sandbox(
            members=options["members"],
            seed=options["seed"],
            host=options["host"],
            port=options["port"],
            webhook_url=options["webhook_url"],
            plugin_id=options["plugin_id"],
            admin_secret=options["secret"],
            webhook_secret=options["webhook_secret"],
            plugipay_key_id=options["plugipay_key_id"],
            plugipay_secret=options["plugipay_secret"],
            verbose=options["verbose"],
        )
        stopping = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stopping.set())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            try:
                sandbox.start()
            except OSError as exc:
                raise CommandError(
                    f"Cannot listen on {options['host']}:{options['port']}: {exc.strerror or exc}"
                    " (choose another port with --port)."
                ) from None
            for key, value in sandbox.env().items():
                self.stdout.write(f"{key}={value}")
            self.stdout.flush()
            while not stopping.wait(0.5):
                pass
        finally:
            sandbox.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def validate_options(options: dict[str, Any]) -> None:
    """A CommandError with a sentence for each option that cannot work."""
    port = options["port"]
    if not 0 <= port <= 65535:
        raise CommandError(f"--port must be from 0 to 65535 (0: any free port), not {port}.")
    if options["members"] < 0:
        raise CommandError(f"--members must be 0 or more, not {options['members']}.")
    url = options["webhook_url"]
    if url is not None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a bad port)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise CommandError(
                f"--webhook-url must be an http(s) URL with a host "
                f"(e.g. http://127.0.0.1:8000/pluginlab/webhook/), not {url!r}."
            )
