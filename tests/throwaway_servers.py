"""Throwaway PostgreSQL and Redis servers for the tests and the benchmarks.

Each server runs from a fresh temporary directory on a free loopback port and
is stopped (and its directory removed) on exit, so a test run never depends
on, or disturbs, a server the machine already has.

As context managers::

    with postgres_server() as database_url, redis_server() as redis_url:
        ...

As a launcher (what ``make test`` uses)::

    python -m tests.throwaway_servers --postgres --redis -- pytest -m "not browser"

runs the command with ``DATABASE_URL`` and ``PLUGINLAB_TEST_REDIS_URL``
exported and exits with the command's status.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

POSTGRES_USER = "postgres"


class ServiceError(RuntimeError):
    """A server could not be started; the message says what to install."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"server exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listened on 127.0.0.1:{port} after {timeout:.0f}s")


def _postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not candidates and shutil.which("pg_ctl"):
        # Not Debian's layout: follow the link to the real bin directory.
        candidates = [os.path.realpath(shutil.which("pg_ctl"))]
    if not candidates:
        raise ServiceError("PostgreSQL is not installed (no pg_ctl): apt-get install postgresql")
    return Path(candidates[0]).parent


def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: drop to the postgres user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(POSTGRES_USER)
    except KeyError as exc:
        raise ServiceError("running as root but there is no 'postgres' OS user") from exc
    return ["runuser", "-u", POSTGRES_USER, "--"]


@contextlib.contextmanager
def postgres_server(*, fsync: bool = False) -> Iterator[str]:
    """Start PostgreSQL in a temporary data directory; yield its URL.

    ``fsync`` is off by default: the data is thrown away, and the tests and
    benchmarks measure our code, not the disk.
    """
    bindir = _postgres_bindir()
    prefix = _as_postgres_user()
    tmp = Path(tempfile.mkdtemp(prefix="pluginlab-pg-"))
    data = tmp / "data"
    if prefix:
        shutil.chown(tmp, user=POSTGRES_USER)
    port = free_port()
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    options = [
        "-c",
        f"port={port}",
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={tmp}",
        "-c",
        "max_connections=200",
        "-c",
        f"fsync={'on' if fsync else 'off'}",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "shared_buffers=256MB",
    ]
    proc = subprocess.Popen(
        [*prefix, str(bindir / "postgres"), "-D", str(data), *options],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "postgres.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    try:
        _wait_for_port(port, 30, proc)
        _wait_until_accepting(bindir, port)
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_until_accepting(bindir: Path, port: int) -> None:
    pg_isready = bindir / "pg_isready"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ok = subprocess.run(
            [str(pg_isready), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if ok.returncode == 0:
            return
        time.sleep(0.1)
    raise ServiceError("PostgreSQL did not accept connections within 30s")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Start redis-server without persistence on a free port; yield its URL."""
    binary = shutil.which("redis-server")
    if not binary:
        raise ServiceError("Redis is not installed (no redis-server): apt-get install redis-server")
    tmp = Path(tempfile.mkdtemp(prefix="pluginlab-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, 15, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.throwaway_servers",
        description="Run a command with throwaway PostgreSQL and/or Redis servers.",
    )
    parser.add_argument("--postgres", action="store_true", help="export DATABASE_URL")
    parser.add_argument("--redis", action="store_true", help="export PLUGINLAB_TEST_REDIS_URL")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if args.postgres:
            env["DATABASE_URL"] = stack.enter_context(postgres_server())
        if args.redis:
            env["PLUGINLAB_TEST_REDIS_URL"] = stack.enter_context(redis_server())
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
