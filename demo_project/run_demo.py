"""``make demo``: the whole demo in one process tree, stopped by one Ctrl-C.

0. checks that both ports are free (``DEMO_PORT``/``--port``, 8000, and
   ``SANDBOX_PORT``/``--sandbox-port``, 8765) before starting anything, and
   starts from a fresh demo database (the sandbox reseeds on each start, so
   yesterday's rows would no longer match);
1. starts the sandbox (``manage.py pluginlab_sandbox``) with webhooks pointed
   at the demo site, and reads the settings it prints;
2. migrates, runs a full sync (with a progress bar) and creates a local
   admin user, all with those settings in the environment;
3. prints the admin's credentials, a ready token and curl lines;
4. serves http://127.0.0.1:8000/ until Ctrl-C (or SIGTERM), then stops
   everything it started. On Linux its children also die with it when it is
   killed outright (SIGKILL): they ask the kernel for a SIGTERM when their
   parent dies (``PR_SET_PDEATHSIG``).

Run it with ``python -m demo_project.run_demo --help`` for the options (ports,
member count, database); the tests use them to run it on temporary ones.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pluginlab_django.testing import ENV_KEYS

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]
ADMIN_USERNAME = "admin"

ENSURE_ADMIN = """
from django.contrib.auth import get_user_model
User = get_user_model()
user, _ = User.objects.get_or_create(
    username={username!r}, defaults={{"email": "admin@example.com"}}
)
user.is_staff = user.is_superuser = True
user.set_password({password!r})
user.save()
"""


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which."""


class DemoRunner:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.children: list[subprocess.Popen] = []
        self.env = dict(os.environ)
        self.env.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
        self.env["PYTHONUNBUFFERED"] = "1"
        if options.db:
            self.env["DATABASE_URL"] = f"sqlite:///{Path(options.db).resolve()}"
        self.parent_pid = os.getpid()

    # Steps ---------------------------------------------------------------

    def run(self) -> int:
        try:
            self.check_ports()
            fresh = self.remove_sqlite_database()
            self.start_sandbox()
            self.manage("migrate", "--noinput", quiet=True)
            if not fresh:  # not SQLite: empty the tables instead
                self.manage("flush", "--noinput", quiet=True)
            self.say("Syncing members, identities, quota and API keys from the sandbox…")
            self.manage("pluginlab_sync", "all")
            self.manage(
                "shell",
                "-c",
                ENSURE_ADMIN.format(username=ADMIN_USERNAME, password=self.options.admin_password),
                quiet=True,
            )
            server = self.start_server()
            self.print_banner()
            server.wait()
            return server.returncode or 0
        except KeyboardInterrupt:
            self.say("\nStopping the demo…")
            return 0
        except DemoError as exc:
            self.say(f"demo: {exc}")
            return 1
        finally:
            self.stop_all()

    def check_ports(self) -> None:
        """Refuse to start anything when a port is taken, saying which and how to move."""
        wanted = [
            ("the demo site", self.options.port, "DEMO_PORT", "--port"),
            ("the sandbox", self.options.sandbox_port, "SANDBOX_PORT", "--sandbox-port"),
        ]
        if self.options.port == self.options.sandbox_port:
            raise DemoError(
                f"the demo site and the sandbox cannot share port {self.options.port}: "
                "set DEMO_PORT or SANDBOX_PORT to another one"
            )
        for what, port, variable, option in wanted:
            if not 0 < port < 65536:
                raise DemoError(f"port {port} for {what} is not a TCP port ({variable}, {option})")
            problem = _port_problem(port)
            if problem:
                raise DemoError(
                    f"port {port}, for {what}, is {problem}: free it, or pick another one "
                    f"with {variable}=<port> (e.g. `{variable}={port + 1} make demo`) "
                    f"or {option}"
                )

    def remove_sqlite_database(self) -> bool:
        """Delete the demo's SQLite file (and its WAL); False when the database is not SQLite."""
        url = self.env.get("DATABASE_URL")
        if url is None:
            path = ROOT / "demo_project" / "db.sqlite3"
        elif url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
        else:
            return False
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()
        return True

    def start_sandbox(self) -> None:
        port = self.options.port
        webhook_url = f"http://127.0.0.1:{port}/pluginlab/webhook/"
        proc = self.spawn(
            [
                *MANAGE,
                "pluginlab_sandbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.options.sandbox_port),
                "--members",
                str(self.options.members),
                "--seed",
                "1",
                "--webhook-url",
                webhook_url,
            ],
            stdout=subprocess.PIPE,
        )
        values: dict[str, str] = {}
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while len(values) < len(ENV_KEYS):
            line = proc.stdout.readline()
            if not line:
                raise DemoError(f"the sandbox exited early (status {proc.wait()})")
            key, sep, value = line.strip().partition("=")
            if sep and key in ENV_KEYS:
                values[key] = value
            if time.monotonic() > deadline:
                raise DemoError("the sandbox printed no settings within 120 s")
        # Keep draining its output so it never blocks on a full pipe.
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        self.env.update(values)

    def start_server(self) -> subprocess.Popen:
        address = f"127.0.0.1:{self.options.port}"
        server = self.spawn([*MANAGE, "runserver", address, "--noreload"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise DemoError(f"the web server exited (status {server.returncode})")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.options.port), 0.5),
            ):
                return server
            time.sleep(0.2)
        raise DemoError(f"the web server did not listen on {address}")

    def print_banner(self) -> None:
        base = f"http://127.0.0.1:{self.options.port}"
        token = self.env["PLUGINLAB_DEMO_TOKEN"]
        auth = '-H "Authorization: Bearer $PLUGINLAB_DEMO_TOKEN"'
        self.say(
            f"""
The demo is running: {base}/
  Admin:      {base}/admin/   user: {ADMIN_USERNAME}   password: {self.options.admin_password}
  Dashboard:  {base}/admin/pluginlab_django/dashboard/
  API docs:   {base}/api/docs/

A token for a seeded member (valid 24 h):
export PLUGINLAB_DEMO_TOKEN={token}

curl {auth} {base}/api/me
curl {auth} {base}/api/premium
curl -X POST {auth} {base}/api/usage
curl {auth} {base}/api/report

Press Ctrl-C to stop the site and the sandbox."""
        )

    # Processes -----------------------------------------------------------

    def manage(self, *args: str, quiet: bool = False) -> None:
        result = subprocess.run(
            [*MANAGE, *args],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL if quiet else None,
            check=False,
        )
        if result.returncode:
            raise DemoError(f"manage.py {args[0]} failed with status {result.returncode}")

    def spawn(self, command: list[str], **kwargs) -> subprocess.Popen:
        # Each child leads its own process group, so stop_all() reaches its
        # children too, and a terminal's Ctrl-C reaches only this runner.
        proc = subprocess.Popen(
            command,
            env=self.env,
            cwd=ROOT,
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent(self.parent_pid),
            **kwargs,
        )
        self.children.append(proc)
        return proc

    def stop_all(self) -> None:
        # One deadline for all children (not 10 s each): Ctrl-C returns within
        # about 15 s whatever number of children is slow to exit.
        for proc in reversed(self.children):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in reversed(self.children):
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
        for proc in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.children.clear()

    @staticmethod
    def say(text: str) -> None:
        print(text, flush=True)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _port_problem(port: int) -> str | None:
    """Why ``port`` cannot be listened on at 127.0.0.1, or None when it can."""
    with socket.socket() as sock:
        # As the servers do: a port left in TIME_WAIT by the last run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except PermissionError:
            return "not allowed to this user"
        except OSError:
            return "taken by another program"
    return None


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int):
    """A ``preexec_fn`` making the child get SIGTERM when this runner dies, even
    by SIGKILL (Linux ``prctl``); elsewhere (or without libc) nothing."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the runner died before prctl took effect
            os._exit(1)

    return preexec


def _drain(stream) -> None:
    for line in stream:
        sys.stdout.write(line)


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo_project.run_demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # String defaults go through type=int too: a bad variable is a usage error.
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("DEMO_PORT", "8000"),
        help="the demo site's port (default: $DEMO_PORT or 8000)",
    )
    parser.add_argument(
        "--sandbox-port",
        type=int,
        default=os.environ.get("SANDBOX_PORT", "8765"),
        help="the sandbox's port (default: $SANDBOX_PORT or 8765)",
    )
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--db", help="SQLite file (default: demo_project/db.sqlite3)")
    parser.add_argument(
        "--admin-password", default=os.environ.get("DEMO_ADMIN_PASSWORD", "pluginlab-demo")
    )
    options = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    return DemoRunner(options).run()


if __name__ == "__main__":
    sys.exit(main())
