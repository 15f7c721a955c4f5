"""A member's plan from their token: written after the response, through sync,
newest token first; the memo that spares the database expires."""

from __future__ import annotations

import time

import pytest
import requests
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import RequestFactory
from rest_framework.test import APIClient

from pluginlab_django import tokens
from pluginlab_django.authentication import PluginLabTokenAuthentication
from pluginlab_django.models import Member
from pluginlab_django.services import plans
from tests.member_rows import mirror

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_verifier")]

WHOAMI = "/auth/whoami/"


def plan_of(member_id: str) -> tuple[str, str]:
    return tuple(Member.objects.filter(remote_id=member_id).values_list("plan_id", "price_id")[0])


class Clock:
    """A ``time`` stand-in for ``services.plans`` whose monotonic clock we move."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now


def test_authenticate_makes_no_query_and_the_plan_lands_after_the_response(
    sandbox, django_assert_num_queries
):
    member_id = sandbox.member_ids()[0]
    mirror(member_id, plan_id="plan_free")
    token = sandbox.mint_token(member_id, plan_id="plan_pro", price_id="price_1")
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
    tokens.verify_token(token)  # keys fetched and token verified outside the count
    with django_assert_num_queries(0):
        _user, payload = PluginLabTokenAuthentication().authenticate(request)
    assert payload.uid == member_id
    assert plan_of(member_id) == ("plan_free", "")  # not yet: after the response
    # As Django's test client does: keep the test's connection open.
    request_finished.disconnect(close_old_connections)
    try:
        request_finished.send(sender=None)
    finally:
        request_finished.connect(close_old_connections)
    assert plan_of(member_id) == ("plan_pro", "price_1")


@pytest.mark.django_db(transaction=True)
def test_the_plan_lands_after_a_real_http_request(sandbox, live_server):
    """A real WSGI server: Django closes the connection at request_finished
    (CONN_MAX_AGE = 0) before the flush runs; the flush opens its own."""
    member_id = sandbox.member_ids()[7]
    mirror(member_id)
    token = sandbox.mint_token(member_id, plan_id="plan_live", price_id="price_9")
    response = requests.get(
        live_server.url + WHOAMI, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200
    deadline = time.monotonic() + 5  # request_finished runs after the body was sent
    while plan_of(member_id) != ("plan_live", "price_9") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert plan_of(member_id) == ("plan_live", "price_9")


def test_a_drf_request_records_the_plan(sandbox):
    member_id = sandbox.member_ids()[1]
    mirror(member_id)
    token = sandbox.mint_token(member_id, plan_id="plan_team", price_id="price_2")
    response = APIClient().get(WHOAMI, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert plan_of(member_id) == ("plan_team", "price_2")


def test_of_two_tokens_the_one_issued_last_wins(sandbox):
    member_id = sandbox.member_ids()[2]
    mirror(member_id)
    now = int(time.time())
    later = tokens.verify_token(sandbox.mint_token(member_id, plan_id="plan_new", iat=now - 10))
    earlier = tokens.verify_token(sandbox.mint_token(member_id, plan_id="plan_old", iat=now - 60))
    plans.defer_plan_from_token(later)
    plans.defer_plan_from_token(earlier)  # arrives second, issued first: ignored
    assert plans.flush_recorded_plans() == 1
    assert plan_of(member_id) == ("plan_new", "")


def test_a_backlog_is_written_without_waiting_for_a_response(sandbox, monkeypatch):
    monkeypatch.setattr(plans, "PENDING_LIMIT", 2)
    first, second = sandbox.member_ids()[3:5]
    mirror(first)
    mirror(second)
    plans.defer_plan_from_token(tokens.verify_token(sandbox.mint_token(first, plan_id="p1")))
    assert plan_of(first) == ("", "")
    plans.defer_plan_from_token(tokens.verify_token(sandbox.mint_token(second, plan_id="p2")))
    assert (plan_of(first), plan_of(second)) == (("p1", ""), ("p2", ""))


def test_the_memo_spares_the_database_until_it_expires(sandbox, monkeypatch):
    """Red if the expiry check is removed: the row would stay wrong for good."""
    clock = Clock()
    monkeypatch.setattr(plans, "time", clock)
    member_id = sandbox.member_ids()[5]
    mirror(member_id)
    payload = tokens.verify_token(sandbox.mint_token(member_id, plan_id="plan_pro"))
    assert plans.record_plan_from_token(payload) is True
    # Changed behind the memo's back (another process, an admin).
    Member.objects.filter(remote_id=member_id).update(plan_id="plan_other")
    clock.now += plans.MEMO_SECONDS - 1
    assert plans.defer_plan_from_token(payload) is False  # trusted: no note, no query
    assert plans.flush_recorded_plans() == 0
    assert plan_of(member_id) == ("plan_other", "")
    clock.now += 2  # past MEMO_SECONDS
    assert plans.defer_plan_from_token(payload) is True
    assert plans.flush_recorded_plans() == 1
    assert plan_of(member_id) == ("plan_pro", "")


def test_a_member_mirrored_after_their_first_request_gets_the_plan_later(sandbox, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(plans, "time", clock)
    member_id = sandbox.member_ids()[6]
    payload = tokens.verify_token(sandbox.mint_token(member_id, plan_id="plan_pro"))
    plans.defer_plan_from_token(payload)
    assert plans.flush_recorded_plans() == 0  # no row yet
    mirror(member_id)
    clock.now += plans.MEMO_SECONDS + 1
    plans.defer_plan_from_token(payload)
    assert plans.flush_recorded_plans() == 1
    assert plan_of(member_id) == ("plan_pro", "")


def test_changing_the_settings_forgets_the_memo(sandbox, settings):
    """The memo subscribes to ``conf.on_settings_change``: plans seen under
    other settings (another remote) must not hide this one's members."""
    member_id = sandbox.member_ids()[8]
    mirror(member_id)
    payload = tokens.verify_token(sandbox.mint_token(member_id, plan_id="plan_pro"))
    assert plans.record_plan_from_token(payload) is True
    assert plans.defer_plan_from_token(payload) is False  # remembered
    settings.PLUGINLAB = {**settings.PLUGINLAB}
    assert plans.defer_plan_from_token(payload) is True
