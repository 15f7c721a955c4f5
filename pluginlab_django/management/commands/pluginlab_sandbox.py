"""``manage.py pluginlab_sandbox``: run the sandbox and print the settings a site needs.

It needs no PluginLab settings (it is what prints them), so system checks
are skipped. The 12 ``KEY=value`` lines go to stdout, flushed, before
serving; SIGINT or SIGTERM stops it cleanly with exit status 0.

Ids and secrets not given as options are derived from ``--seed``: a restart
with the same seed prints the same values, so ``--env-file .env`` (which
writes the lines into that file, replacing earlier ones and keeping every
other line) is needed once, not at every start.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pluginlab_django.testing import ENV_KEYS, Sandbox
from pluginlab_django.testing.credentials import derived_credentials

#: Command option -> key of ``derived_credentials()`` used when the option is not given.
OPTION_CREDENTIALS = {
    "plugin_id": "plugin_id",
    "secret": "admin_secret",
    "webhook_secret": "webhook_secret",
    "plugipay_key_id": "plugipay_key_id",
    "plugipay_secret": "plugipay_secret",
}


class Command(BaseCommand):
    help = "Run the PluginLab/Plugipay sandbox on a loopback port and print its settings."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
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
        parser.add_argument(
            "--env-file",
            default=None,
            help="Also write the KEY=value lines into this file (e.g. .env), "
            "replacing earlier ones and keeping its other lines.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        validate_options(options)
        derived = derived_credentials(options["seed"])
        for option, key in OPTION_CREDENTIALS.items():
            if options[option] is None:
                options[option] = derived[key]
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
        stop = StopRequest()
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            try:
                sandbox.start()
            except OSError as exc:
                raise CommandError(
                    f"Cannot listen on {options['host']}:{options['port']}: {exc.strerror or exc}"
                    " (choose another port with --port)."
                ) from None
            lines = [f"{key}={value}" for key, value in sandbox.env().items()]
            if options["env_file"]:
                write_env_file(Path(options["env_file"]), lines)
            for line in lines:
                self.stdout.write(line)
            self.stdout.flush()
            stop.wait()
        finally:
            sandbox.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class StopRequest:
    """The SIGINT/SIGTERM handler of the command, and the wait for it.

    The handler only sets an attribute. It must take no lock: Python runs
    it in the main thread between two bytecodes, possibly while that thread
    holds the very lock the handler would need (``threading.Event.set()``
    from a handler deadlocks when the signal lands inside ``Event.wait()``,
    which is how a SIGTERM once left the sandbox running for good). A signal
    interrupts ``time.sleep``, so the wait notices it within ``interval``.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.signum: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        self.signum = signum

    def wait(self) -> None:
        while self.signum is None:
            time.sleep(self.interval)


def write_env_file(path: Path, lines: list[str]) -> None:
    """Put ``lines`` into ``path``: earlier sandbox lines replaced, others kept.

    The file holds secrets, so a new one is created readable by its owner only.
    """
    try:
        kept = [
            line
            for line in (path.read_text().splitlines() if path.exists() else [])
            if line.split("=", 1)[0].strip() not in ENV_KEYS
        ]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join([*kept, *lines]) + "\n")
    except OSError as exc:
        raise CommandError(f"Cannot write the env file {path}: {exc.strerror}.") from None


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
