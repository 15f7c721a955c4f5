"""Concurrent metered calls for one member, through a live server.

The bound (see ``pluginlab_django.metering``): the quota check and the
recording of a use are not one atomic step, so calls in flight at the same
moment may all pass the check. With R uses left and K calls at once, at most
R + K - 1 uses are recorded — never more, however many calls are made.
"""

from __future__ import annotations

import threading

import pytest
import requests

from pluginlab_django import sync
from pluginlab_django.models import CustomEvent, Member, QuotaSnapshot

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_verifier")]

THREADS = 8
CALLS_PER_THREAD = 10


def test_concurrent_calls_never_exceed_the_limit_by_more_than_the_calls_in_flight(
    sandbox, live_server, transactional_db, celery_eager
):
    member_id = sandbox.member_ids()[0]
    member = sync.sync_member(member_id)
    remaining = 10
    snapshot = QuotaSnapshot.objects.create(
        member=member, usage_count=100 - remaining, usage_limit=100, interval="month"
    )
    Member.objects.filter(pk=member.pk).update(latest_quota=snapshot)
    token = sandbox.mint_token(member_id)
    url = f"{live_server.url}/metering/drf/"
    start = threading.Barrier(THREADS)
    statuses: list[int] = []
    lock = threading.Lock()

    def caller():
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            start.wait()
            for _ in range(CALLS_PER_THREAD):
                status = session.get(url, timeout=30).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=caller) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert len(statuses) == THREADS * CALLS_PER_THREAD
    assert set(statuses) <= {200, 403}
    recorded = CustomEvent.objects.filter(member_remote_id=member_id).count()
    assert recorded == statuses.count(200)  # one use per successful call
    # Every remaining use was taken, and at most THREADS - 1 beyond the limit.
    assert remaining <= recorded <= remaining + THREADS - 1
