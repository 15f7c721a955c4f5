"""A real Celery worker for the tests (``celery -A tests.celery_app worker``,
prefork) on a throwaway Redis: started in its own process group, waited for
until it answers a ping, stopped with SIGTERM (SIGKILL to its group if it
hangs).

The worker is a separate process, so it must see the test database:

- PostgreSQL (``DATABASE_URL`` set): ``DATABASE_URL`` pointing at
  pytest-django's test database (``test_…``) on the same server;
- SQLite in a file (``PLUGINLAB_TEST_SQLITE`` set): the same file;
- SQLite in memory (the default): no other process can see it, so a worker
  test re-runs itself in a child pytest with ``PLUGINLAB_TEST_SQLITE``
  pointing at a temporary file (:func:`rerun_with_a_file_database`).

The ``redis_url`` fixture (``tests.shared_fixtures``) starts the Redis.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.db import connection

from tests.subprocess_env import subprocess_env

REPO = Path(__file__).resolve().parent.parent
#: How long a re-run in a child pytest may take (a hang guard).
RERUN_TIMEOUT_SECONDS = 360


def in_memory_sqlite() -> bool:
    """True when the test database is one no worker process can see."""
    name = str(connection.settings_dict["NAME"])
    return connection.vendor == "sqlite" and (name == ":memory:" or "mode=memory" in name)


def rerun_with_a_file_database(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Run the calling test again in a child pytest on a SQLite file; fail with it."""
    env = {**os.environ, "PLUGINLAB_TEST_SQLITE": str(tmp_path / "worker-test.sqlite3")}
    node = f"{Path(request.node.fspath).relative_to(REPO)}::{request.node.name}"
    child = subprocess.run(
        [sys.executable, "-m", "pytest", node, "-q", "-rA"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RERUN_TIMEOUT_SECONDS,
    )
    output = child.stdout[-6000:] + child.stderr[-2000:]
    assert child.returncode == 0, f"the file-database run failed:\n{output}"
    assert "1 passed" in child.stdout, f"the file-database run did not pass:\n{output}"


def worker_env(pluginlab: dict[str, Any], redis_url: str) -> dict[str, str]:
    """The worker's environment: the test database, these settings, this Redis."""
    return {**subprocess_env(pluginlab), "PLUGINLAB_TEST_REDIS_URL": redis_url}


def client_app(redis_url: str) -> Celery:
    """An app that only sends messages: never the app the other tests run eagerly."""
    return Celery("pluginlab_test_client", broker=redis_url, set_as_current=False)


def start_worker(
    env: dict[str, str], log_path: Path, *, name: str | None = None, concurrency: int = 2
) -> subprocess.Popen:
    """Start a worker in a new session (its own process group), logging to
    ``log_path`` (appended: two workers in turn can share one log)."""
    hostname = name or f"pluginlab-test-{os.getpid()}"
    command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker"]
    command += ["--pool=prefork", f"--concurrency={concurrency}", "--loglevel=INFO"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    command += [f"--hostname={hostname}@127.0.0.1"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_until_ready(client: Celery, worker: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert worker.poll() is None, f"worker exited:\n{log_path.read_text()[-4000:]}"
        if client.control.ping(timeout=0.5):
            return
    raise AssertionError(f"worker never answered a ping:\n{log_path.read_text()[-4000:]}")


def stop_worker(worker: subprocess.Popen, *, whole_group: bool = False, grace: float = 30) -> None:
    """SIGTERM (a warm shutdown) to the worker, or with ``whole_group`` to its
    process group as docker stop and systemd do; SIGKILL to the group after
    ``grace`` seconds."""
    if worker.poll() is None:
        if whole_group:
            os.killpg(worker.pid, signal.SIGTERM)
        else:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)  # the group started for it
            worker.wait(10)


@contextlib.contextmanager
def running_worker(
    pluginlab: dict[str, Any], redis_url: str, log_path: Path, *, concurrency: int = 2
) -> Iterator[tuple[Celery, subprocess.Popen]]:
    """A worker ready for tasks and a client app to send them: ``(client, worker)``.
    Stopped (and the client closed) on exit."""
    worker = start_worker(worker_env(pluginlab, redis_url), log_path, concurrency=concurrency)
    client = client_app(redis_url)
    try:
        wait_until_ready(client, worker, log_path)
        yield client, worker
    finally:
        stop_worker(worker)
        client.close()
