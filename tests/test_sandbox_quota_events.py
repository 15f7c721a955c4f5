"""The sandbox's quota usage and custom events (§1.3, §1.4).

Raw HTTP with ``requests``, no project client: these files check the sandbox
itself against ``wire-protocol.md``, so a mistake cannot hide in the sandbox
and the clients at once.
"""

from __future__ import annotations

import pytest

from tests.sandbox_support import (
    event_url,
    quota_url,
)

pytestmark = pytest.mark.no_db

# Quota and custom events (§1.3, §1.4) ----------------------------------------


def test_custom_event_counts_once_and_only_in_quota(sandbox, admin_http):
    member_id = sandbox.member_ids()[0]
    before = admin_http.get(quota_url(sandbox, member_id), timeout=10).json()
    assert set(before) == {
        "interval",
        "isOverLimit",
        "isUnlimited",
        "resetInDays",
        "usageCount",
        "usageLimit",
    }

    event = {
        "eventSource": "ChatGPT-10",
        "memberId": member_id,
        "location": {"countryCode": "FR", "subdivisionCode": None},
    }
    assert 200 <= admin_http.post(event_url(sandbox), json=event, timeout=10).status_code < 300
    assert admin_http.post(event_url(sandbox), json={**event, "isInQuota": False}).ok
    assert admin_http.post(event_url(sandbox), json={"eventSource": "anonymous"}).ok

    after = admin_http.get(quota_url(sandbox, member_id), timeout=10).json()
    assert after["usageCount"] == before["usageCount"] + 1


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ({"eventSource": "x" * 11}, "event/invalid-event-source"),
        ({"eventSource": ""}, "event/invalid-event-source"),
        ({}, "event/invalid-event-source"),
        ({"eventSource": "ok", "location": {"countryCode": "FRA"}}, "event/invalid-country-code"),
        ({"eventSource": "ok", "location": {"countryCode": "1"}}, "event/invalid-country-code"),
        ({"eventSource": "ok", "location": {}}, "event/invalid-country-code"),
        ({"eventSource": "ok", "isInQuota": "yes"}, "event/invalid-is-in-quota"),
    ],
)
def test_custom_event_validation_is_400_with_a_code(sandbox, admin_http, event, code):
    response = admin_http.post(event_url(sandbox), json=event, timeout=10)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["message"]
