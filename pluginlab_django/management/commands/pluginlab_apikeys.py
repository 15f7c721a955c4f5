"""``manage.py pluginlab_apikeys``: Plugipay API keys from a terminal or CI.

Subcommands: ``list``, ``audit``, ``create``, ``revoke``, ``rotate``,
``revoke-due``, ``cancel-revocation``; each takes ``--json`` for scripts.
Every one talks to Plugipay and updates the mirror as it goes (except
``cancel-revocation``, which only takes back a local schedule).

Exit status: 0 success, 1 when Plugipay refuses or fails (its code and request
id in the message) or an audit finds keys too old, 2 for a usage error.

A secret is printed only by ``create`` and ``rotate``, and only into a JSON
object on stdout (``--json``) or an env file created with mode 0600
(``--env-file PATH``); without either they refuse, so a secret never lands in
a terminal's scrollback by accident.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ...clients import RemoteError
from ...conf import pluginlab_settings
from ...models import ApiKey
from ...services import apikeys as service

USAGE = 2
REFUSED = 1


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=USAGE)


def remote_error(exc: RemoteError, doing: str) -> CommandError:
    request_id = getattr(exc, "request_id", None)
    detail = f" (request id {request_id})" if request_id else ""
    return CommandError(f"Plugipay refused or failed to {doing}: {exc}{detail}", returncode=REFUSED)


def key_json(row: ApiKey) -> dict[str, Any]:
    """A key record as JSON: never a secret (the mirror holds none)."""
    iso = lambda value: value.isoformat() if value else None  # noqa: E731
    return {
        "id": row.record_id,
        "keyId": row.key_id,
        "description": row.description or None,
        "scope": row.scope,
        "mode": row.mode or None,
        "createdAt": iso(row.created_at),
        "revokedAt": iso(row.revoked_at),
        "revocationScheduledAt": iso(row.revoke_scheduled_at),
        "goneAt": iso(row.gone_at),
        "ageDays": row.age_days,
        "state": row.state,
    }


class SecretOutput:
    """Where a new secret goes: ``--json`` (stdout) or ``--env-file PATH``.

    The env file is reserved *before* Plugipay is called (created empty with
    mode 0600, or a 0600 temporary file beside it with ``--force``), so a
    path that cannot be written is refused without minting a key.
    """

    def __init__(self, command: BaseCommand, options: dict[str, Any]) -> None:
        self.command = command
        self.as_json = options["json"]
        self.path = Path(options["env_file"]) if options.get("env_file") else None
        self.force = options.get("force", False)
        self._fd: int | None = None
        self._temp: str | None = None
        if not self.as_json and self.path is None:
            raise usage_error(
                "Refusing to print a secret into the terminal: pass --json (for a script "
                "that stores it) or --env-file PATH (written with mode 0600)."
            )
        if self.as_json and self.path is not None:
            raise usage_error("Pass either --json or --env-file, not both.")

    def reserve(self) -> None:
        if self.path is None:
            return
        if self.path.is_dir():
            raise usage_error(f"{self.path} is a directory, not an env file.")
        try:
            if self.path.exists():
                if not self.force:
                    raise usage_error(f"{self.path} exists; pass --force to replace it.")
                self._fd, self._temp = tempfile.mkstemp(
                    dir=self.path.parent, prefix=f".{self.path.name}.", text=True
                )
                os.chmod(self._temp, 0o600)
            else:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise usage_error(f"Cannot create {self.path}: {exc.strerror}.") from None

    def release(self) -> None:
        """Undo ``reserve`` (no key was minted)."""
        if self._fd is None or self.path is None:  # (a descriptor comes with a path)
            return
        os.close(self._fd)
        os.unlink(self._temp or self.path)
        self._fd = self._temp = None

    def write(self, created: service.CreatedApiKey, extra: dict[str, Any]) -> None:
        if self.as_json:
            self.command.stdout.write(json.dumps({**created.as_json(), **extra}, indent=2))
            return
        text = f"PLUGIPAY_KEY_ID={created.record.key_id}\nPLUGIPAY_SECRET={created.secret}\n"
        assert self._fd is not None and self.path is not None, "reserve() opens the file"
        with os.fdopen(self._fd, "w") as handle:
            handle.write(text)
        self._fd = None
        if self._temp:
            os.replace(self._temp, self.path)
        self.command.stdout.write(
            f"Created {created.record.key_id} ({created.record.record_id}); its id and "
            f"secret are in {self.path} (mode 0600). The secret is not shown again."
        )


class Command(BaseCommand):
    help = "Manage Plugipay API keys: list, audit, create, revoke, rotate with overlap."

    def add_arguments(self, parser: Any) -> None:
        called_from_command_line = parser.called_from_command_line

        # Whatever parser class Django passed: a base mypy cannot check.
        class SubcommandParser(type(parser)):  # type: ignore[misc]
            """Usage errors of a subcommand: exit 2 from a terminal, CommandError
            from call_command (Django < 5.1 does not pass this on by itself)."""

            def __init__(self, **kwargs: Any) -> None:
                kwargs.setdefault("called_from_command_line", called_from_command_line)
                super().__init__(**kwargs)

        sub = parser.add_subparsers(
            dest="subcommand",
            metavar="SUBCOMMAND",
            required=True,
            parser_class=SubcommandParser,
        )

        def add(name: str, help_text: str) -> Any:
            p = sub.add_parser(name, help=help_text, description=help_text)
            p.add_argument("--json", action="store_true", help="Print JSON for scripts.")
            self._add_common_options(p)
            return p

        p = add("list", "List every key Plugipay has, with age and state.")
        state = p.add_mutually_exclusive_group()
        state.add_argument("--active", action="store_true", help="Only active keys.")
        state.add_argument("--revoked", action="store_true", help="Only revoked keys.")

        p = add("audit", "The active keys with their ages; exit 1 if any is too old.")
        p.add_argument("--older-than", type=int, metavar="DAYS", help="Alarm threshold.")

        p = add("create", "Mint a key; its secret is printed once (--json or --env-file).")
        p.add_argument("--description", required=True)
        p.add_argument("--scope", default="*", help="'*' or space-separated permissions.")
        self._add_secret_output(p)

        p = add("revoke", "Revoke a key now (apk_… record id or pk_… key id).")
        p.add_argument("key", metavar="KEY")

        p = add("rotate", "Mint a successor, then revoke the old key after --overlap.")
        p.add_argument("key", metavar="KEY")
        p.add_argument(
            "--overlap", required=True, metavar="DURATION", help="30m, 24h, 7d; 0 = now."
        )
        self._add_secret_output(p)

        add("revoke-due", "Revoke the keys whose scheduled revocation time has come.")

        p = add("cancel-revocation", "Take back a key's scheduled revocation.")
        p.add_argument("key", metavar="KEY")

    @staticmethod
    def _add_common_options(parser: Any) -> None:
        """Django's own options, accepted after the subcommand too
        (``pluginlab_apikeys list --settings=…``); they default to nothing so
        the values given before the subcommand stand."""
        hidden = {"default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
        parser.add_argument("-v", "--verbosity", type=int, choices=[0, 1, 2, 3], **hidden)
        for name in ("--settings", "--pythonpath"):
            parser.add_argument(name, **hidden)
        for name in ("--traceback", "--no-color", "--force-color", "--skip-checks"):
            parser.add_argument(name, action="store_true", **hidden)

    @staticmethod
    def _add_secret_output(parser: Any) -> None:
        parser.add_argument("--env-file", metavar="PATH", help="Write the KEY_ID/SECRET here.")
        parser.add_argument("--force", action="store_true", help="Replace an existing env file.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["subcommand"].replace("-", "_")
        if not pluginlab_settings.plugipay_configured:
            raise usage_error(
                "Plugipay is not configured: set PLUGINLAB['PLUGIPAY_KEY_ID'] and "
                "['PLUGIPAY_SECRET'] to a key with the plugipay:apikey:write scope."
            )
        try:
            getattr(self, f"do_{name}")(options)
        except service.ApiKeyError as exc:
            raise CommandError(str(exc), returncode=REFUSED) from None
        except ValueError as exc:
            raise usage_error(str(exc)) from None

    def _emit(self, options: dict[str, Any], data: Any, lines: list[str]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
        else:
            for line in lines:
                self.stdout.write(line)

    def _refresh(self) -> None:
        try:
            service.refresh_api_keys()
        except RemoteError as exc:
            raise remote_error(exc, "list the API keys") from None

    def _find(self, key: str, *, refresh: bool = True) -> ApiKey:
        if not key.startswith(("apk_", "pk_")):
            raise usage_error(f"{key!r} is neither a record id (apk_…) nor a key id (pk_…).")
        if refresh:
            self._refresh()
        return service.find_api_key(key, refresh=False)

    # Subcommands -----------------------------------------------------------------

    def do_list(self, options: dict[str, Any]) -> None:
        self._refresh()
        rows = ApiKey.objects.order_by("created_at", "pk")
        if options["active"]:
            rows = rows.active()
        elif options["revoked"]:
            rows = rows.filter(revoked_at__isnull=False)
        keys = list(rows)
        lines = [
            f"{r.record_id}  {r.key_id}  {r.mode or '?':4}  "
            f"{'?' if r.age_days is None else r.age_days:>4}d  {r.state}  {r.scope}  "
            f"{r.description or '(no description)'}"
            for r in keys
        ] or ["No API keys."]
        self._emit(options, [key_json(r) for r in keys], lines)

    def do_audit(self, options: dict[str, Any]) -> None:
        days = options["older_than"]
        if days is not None and days < 0:
            raise usage_error("--older-than must be 0 or more days.")
        self._refresh()
        active = list(ApiKey.objects.active().order_by("created_at", "pk"))
        # A key already rotated (revocation scheduled) is being dealt with.
        too_old = [
            r
            for r in active
            if days is not None
            and r.age_days is not None
            and r.age_days > days
            and r.revoke_scheduled_at is None
        ]
        lines = [f"{len(active)} active keys:"] + [
            f"  {r.key_id} — {r.description or '(none)'} — {r.age_days}d old"
            + (" — TOO OLD" if r in too_old else "")
            + (f" — {r.state}" if r.revoke_scheduled_at else "")
            for r in active
        ]
        data = {
            "olderThan": days,
            "active": [key_json(r) for r in active],
            "tooOld": [r.key_id for r in too_old],
        }
        self._emit(options, data, lines)
        if too_old:
            raise CommandError(
                f"{len(too_old)} active key(s) older than {days} days: "
                + ", ".join(r.key_id for r in too_old)
                + ". Rotate them (pluginlab_apikeys rotate KEY --overlap 24h ...).",
                returncode=REFUSED,
            )

    def do_create(self, options: dict[str, Any]) -> None:
        if len(options["description"]) > service.DESCRIPTION_MAX:
            raise usage_error(f"--description is longer than {service.DESCRIPTION_MAX} characters.")
        output = SecretOutput(self, options)
        output.reserve()
        try:
            created = service.create_api_key(
                description=options["description"], scope=options["scope"]
            )
        except RemoteError as exc:
            output.release()
            raise remote_error(exc, "create the key") from None
        output.write(created, {})

    def do_revoke(self, options: dict[str, Any]) -> None:
        row = self._find(options["key"])
        try:
            result = service.revoke_api_key(row)
        except RemoteError as exc:
            raise remote_error(exc, f"revoke {row.key_id}") from None
        message = f"{row.key_id} ({row.record_id}): " + (
            "was already revoked." if result.already_revoked else "revoked."
        )
        data = {**key_json(result.record), "alreadyRevoked": result.already_revoked}
        self._emit(options, data, [message])

    def do_rotate(self, options: dict[str, Any]) -> None:
        overlap = service.parse_duration(options["overlap"])
        output = SecretOutput(self, options)
        row = self._find(options["key"])
        if service.is_own_key(row):
            raise service.OwnKeyProtected(row.key_id, "rotate")
        output.reserve()
        try:
            rotation = service.rotate_api_key(row, overlap)
        except service.RotationIncomplete as exc:
            output.write(exc.created, {"replaces": key_json(row)})
            raise remote_error(exc, f"revoke {row.key_id} after minting its successor") from None
        except (RemoteError, service.ApiKeyError) as exc:
            output.release()
            if isinstance(exc, RemoteError):
                raise remote_error(exc, f"rotate {row.key_id}") from None
            raise
        rotation.old.refresh_from_db()
        output.write(rotation.created, {"replaces": key_json(rotation.old)})
        when = (
            "revoked now"
            if not overlap
            else f"will be revoked at {rotation.revoke_at.isoformat(timespec='seconds')}"
        )
        self.stderr.write(f"The old key {row.key_id} {when}.")

    def do_revoke_due(self, options: dict[str, Any]) -> None:
        outcomes = service.revoke_due(timezone.now())
        lines = [
            f"{o.record.key_id}: " + ("revoked." if o.revoked else f"NOT revoked: {o.error}")
            for o in outcomes
        ] or ["No revocation is due."]
        data = [{**key_json(o.record), "revoked": o.revoked, "error": o.error} for o in outcomes]
        self._emit(options, data, lines)
        failed = [o for o in outcomes if not o.revoked]
        if failed:
            raise CommandError(
                f"{len(failed)} scheduled revocation(s) failed and stay scheduled: "
                + "; ".join(f"{o.record.key_id}: {o.error}" for o in failed),
                returncode=REFUSED,
            )

    def do_cancel_revocation(self, options: dict[str, Any]) -> None:
        row = self._find(options["key"], refresh=False)
        cancelled = service.cancel_revocation(row)
        message = (
            f"{row.key_id}: scheduled revocation cancelled."
            if cancelled
            else f"{row.key_id}: no revocation was scheduled ({row.state})."
        )
        self._emit(options, {**key_json(row), "cancelled": cancelled}, [message])
