"""The doctor's items for what issues 6 and 13 added: the usage-event outbox
(pending, stuck ``sending``, failed) and API key revocations a rotation
scheduled. Local checks: no remote host is needed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pluginlab_django.health import registered_checks, run_check
from pluginlab_django.models import ApiKey, CustomEvent

pytestmark = pytest.mark.django_db

MEMBER = "mem_" + "1" * 40


def result(name: str):
    (check,) = [c for c in registered_checks() if c.name == name]
    assert check.remote is False  # --local and the health backends run it
    return run_check(check)


def event(status: str, *, claimed_minutes_ago: float | None = None) -> CustomEvent:
    claimed = None
    if claimed_minutes_ago is not None:
        claimed = timezone.now() - timedelta(minutes=claimed_minutes_ago)
    return CustomEvent.objects.create(
        member_remote_id=MEMBER, event_source="API", status=status, claimed_at=claimed
    )


def test_an_empty_outbox_is_ok():
    outcome = result("events.outbox")
    assert outcome.status.value == "ok"
    assert outcome.details == {"pending": 0, "sending": 0, "stuck_sending": 0, "failed": 0}


def test_a_fresh_claim_and_fresh_pending_events_are_ok():
    event("pending")
    event("sending", claimed_minutes_ago=0)
    outcome = result("events.outbox")
    assert outcome.status.value == "ok", outcome.summary
    assert "1 pending, 1 sending (0 stuck)" in outcome.summary


def test_an_event_left_sending_by_a_dead_worker_is_a_warning_that_says_what_to_do(settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "EVENT_SENDING_STALE_SECONDS": 60}
    event("sending", claimed_minutes_ago=10)
    outcome = result("events.outbox")
    assert outcome.status.value == "warn"
    assert outcome.details["stuck_sending"] == 1
    assert "status Sending" in outcome.summary and "resend" in outcome.summary


def test_failed_events_are_a_warning():
    event("failed")
    outcome = result("events.outbox")
    assert outcome.status.value == "warn" and "1 refused by PluginLab" in outcome.summary


def api_key(n: int, *, revoke_in: timedelta | None, revoked: bool = False) -> ApiKey:
    now = timezone.now()
    return ApiKey.objects.create(
        record_id=f"rec_{n}",
        key_id=f"key_{n}",
        revoke_scheduled_at=None if revoke_in is None else now + revoke_in,
        revoked_at=now if revoked else None,
    )


def test_no_scheduled_revocation_is_ok():
    api_key(1, revoke_in=None)
    api_key(2, revoke_in=-timedelta(hours=1), revoked=True)  # done: not waiting
    outcome = result("apikeys.revocations")
    assert outcome.status.value == "ok"
    assert outcome.details == {"scheduled": 0, "overdue": 0}


def test_scheduled_revocations_name_the_next_one():
    api_key(1, revoke_in=timedelta(hours=2, minutes=1))
    api_key(2, revoke_in=timedelta(days=3))
    outcome = result("apikeys.revocations")
    assert outcome.status.value == "ok"
    assert outcome.details == {"scheduled": 2, "overdue": 0}
    assert "2 API key revocation(s) scheduled, the next in 2 hours" in outcome.summary


def test_an_overdue_revocation_is_a_warning_naming_the_command():
    api_key(1, revoke_in=-timedelta(hours=1))
    api_key(2, revoke_in=-timedelta(minutes=1))  # due, within the beat's interval
    outcome = result("apikeys.revocations")
    assert outcome.status.value == "warn"
    assert outcome.details == {"scheduled": 2, "overdue": 1}
    assert "pluginlab_apikeys revoke-due" in outcome.summary
