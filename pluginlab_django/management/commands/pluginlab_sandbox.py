"""``manage.py pluginlab_sandbox``: run the sandbox and print the settings a site needs.

It needs no PluginLab settings (it is what prints them), so system checks
are skipped. The 11 ``KEY=value`` lines go to stdout, flushed, before
serving; SIGINT or SIGTERM stops it cleanly with exit status 0.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

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
            sandbox.start()
            for key, value in sandbox.env().items():
                self.stdout.write(f"{key}={value}")
            self.stdout.flush()
            while not stopping.wait(0.5):
                pass
        finally:
            sandbox.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
