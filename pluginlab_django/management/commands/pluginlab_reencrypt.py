"""``manage.py pluginlab_reencrypt [--batch-size N] [--dry-run] [--json]``.

The middle step of a key rotation: put the new key first in
``PLUGINLAB["FIELD_ENCRYPTION_KEYS"]``, run this, then retire the old key.
Safe to interrupt and run again (see ``pluginlab_django.key_rotation``).
Prints the counts (rotated, already current, undecryptable); ``--json``
prints them as one JSON object. Exit status: 0 when done, 1 on bad input,
130 when interrupted (the batches done so far are kept).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...key_rotation import ReencryptResult, reencrypt_identities


class Command(BaseCommand):
    help = "Re-encrypt every stored identity token under the first FIELD_ENCRYPTION_KEYS key."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help="Rows per batch and transaction (default 1000).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would change; write nothing."
        )
        parser.add_argument("--json", action="store_true", help="Print the counts as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be a positive number of rows.")
        verbose = options["verbosity"] >= 2 and not options["json"]

        def on_batch(result: ReencryptResult) -> None:
            if verbose:
                self.stderr.write(f"batch {result.batches}: {result.rotated} rotated so far")

        progress = ReencryptResult()
        try:
            result = reencrypt_identities(
                batch_size=options["batch_size"],
                dry_run=options["dry_run"],
                on_batch=on_batch,
                result=progress,
            )
        except KeyboardInterrupt:
            raise CommandError(
                f"Interrupted after {progress.rotated} rotated row(s); they are kept. "
                "Run the command again to continue.",
                returncode=130,
            ) from None
        self._report(result, as_json=options["json"])

    def _report(self, result: ReencryptResult, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result.as_dict()))
            return
        verb = "would be re-encrypted" if result.dry_run else "re-encrypted"
        self.stdout.write(
            f"{result.rotated} identity row(s) {verb} under the first key; "
            f"{result.already_current} already current; "
            f"{result.undecryptable} undecryptable."
        )
        if result.changed_meanwhile:
            self.stdout.write(
                f"{result.changed_meanwhile} row(s) were rewritten by a sync meanwhile "
                "(already under the first key)."
            )
        if result.undecryptable:
            self.stderr.write(
                self.style.WARNING(
                    f"{result.undecryptable} row(s) cannot be decrypted with any configured "
                    "key: put the old key back (after the new one) and run this again, or "
                    "run `manage.py pluginlab_sync identities` to replace them from PluginLab."
                )
            )
