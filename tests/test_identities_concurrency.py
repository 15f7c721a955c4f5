"""Single flight across processes: 20 separate processes (spawned, each with
its own Django and database connection, on the same test database) ask for
one member's expired token at once; the sandbox sees exactly one refresh and
every process gets the same token. Runs on SQLite and on PostgreSQL (the two
legs of ``make test``).

Project imports happen inside functions: the child processes import this
module before they have set Django up.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import pytest

PROCESSES = 20


def fetch_token(
    database: dict[str, Any], pluginlab: dict[str, Any], member_id: str, barrier: Any, queue: Any
) -> None:
    """One caller process: set Django up on the parent's test database, wait
    for the others, then ask for the token."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.conf import settings

    settings.DATABASES["default"].update(database)
    settings.PLUGINLAB = pluginlab
    from django.db import connection

    from pluginlab_django.models import Identity
    from pluginlab_django.services.identities import get_access_token

    try:
        assert connection.settings_dict["NAME"] == database["NAME"]
        Identity.objects.exists()  # connected before the start line
        barrier.wait(timeout=180)
        queue.put(("ok", get_access_token(member_id, "google")))
    except BaseException as exc:  # reported to the parent, which fails the test
        queue.put(("error", repr(exc)))
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_twenty_processes_cause_exactly_one_refresh(sandbox, settings):
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from pluginlab_django.models import Identity
    from tests.member_rows import mirrored_member_with

    member = mirrored_member_with(sandbox, "google")
    Identity.objects.filter(member=member, provider="google").update(
        access_token_expires_at=timezone.now() - timedelta(minutes=1)
    )
    old = Identity.objects.get(member=member, provider="google").access_token
    # A slow PluginLab keeps the winner in flight while the others arrive.
    sandbox.set_faults(latency_ms=400, path_prefix="/auth")
    before = sandbox.faults.stats()

    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(PROCESSES), ctx.Queue()
    database = {"NAME": connection.settings_dict["NAME"]}
    workers = [
        ctx.Process(
            target=fetch_token,
            args=(database, dict(settings.PLUGINLAB), member.remote_id, barrier, queue),
        )
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        results = [queue.get(timeout=240) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()

    errors = [value for status, value in results if status != "ok"]
    assert errors == []
    tokens = {value for _status, value in results}
    remote = sandbox.store.identities(member.remote_id)["google"]["accessToken"]
    assert tokens == {remote} and remote != old
    after = sandbox.faults.stats()
    refreshes = {
        path: after[path] - before.get(path, 0) for path in after if path.endswith("/refresh")
    }
    assert list(refreshes.values()) == [1], refreshes
    assert Identity.objects.get(member=member, provider="google").access_token == remote
