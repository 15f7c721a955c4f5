"""The sandbox's member list served from cached member JSON (``MemberStore.page_json``).

Pages are joined from each member's encoded JSON, kept until the member
changes. These tests pin what that cache must never change: the bytes on the
wire are those of the page as a JSON object, and an update, a deletion or a
reseed shows in the very next page.
"""

from __future__ import annotations

import json

import pytest

from pluginlab_django.testing import Sandbox
from tests.sandbox_support import members_url

pytestmark = pytest.mark.no_db


def wire_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def list_page(sandbox: Sandbox, admin_http, **params) -> dict:
    response = admin_http.get(members_url(sandbox), params={"limit": 100, **params}, timeout=10)
    assert response.status_code == 200
    return response.json()


def test_the_page_body_is_the_page_object_as_compact_json(sandbox, admin_http):
    ids = sandbox.member_ids()
    response = admin_http.get(members_url(sandbox), params={"limit": 7}, timeout=10)
    page = response.json()
    assert [m["id"] for m in page["items"]] == ids[:7]
    assert page["items"] == [sandbox.get_member(member_id) for member_id in ids[:7]]
    assert response.content == wire_bytes(page)
    assert response.headers["Content-Type"] == "application/json"
    last = sandbox.store.page_json(100, page["nextPageToken"])
    assert last is not None
    assert json.loads(last)["nextPageToken"] is None
    assert last.endswith(b',"nextPageToken":null}')


def test_an_update_shows_in_the_next_page(sandbox, admin_http):
    member_id = sandbox.member_ids()[3]
    before = list_page(sandbox, admin_http)["items"][3]  # now cached
    updated = sandbox.update_member(member_id, name="Renamed Member", metadata={"k": "v"})
    after = list_page(sandbox, admin_http)["items"][3]
    assert after == updated == sandbox.get_member(member_id)
    assert after["name"] == "Renamed Member" and after["metadata"] == {"k": "v"}
    assert after["updatedAtMs"] > before["updatedAtMs"]


def test_a_deletion_and_a_creation_show_in_the_next_page(sandbox, admin_http):
    gone = sandbox.member_ids()[0]
    list_page(sandbox, admin_http)
    assert sandbox.delete_member(gone)
    created = sandbox.create_member("late.joiner@example.com")
    page = list_page(sandbox, admin_http)
    ids = [m["id"] for m in page["items"]]
    assert gone not in ids
    assert ids[-1] == created["id"] and page["items"][-1] == created
    assert page["total"] == len(sandbox.member_ids())


def test_a_reset_forgets_the_cached_members(sandbox, admin_http):
    member_id = sandbox.member_ids()[0]
    sandbox.update_member(member_id, name="Changed Before Reset")
    list_page(sandbox, admin_http)
    sandbox.reset()
    first = list_page(sandbox, admin_http)["items"][0]
    assert first == sandbox.get_member(member_id)
    assert first["name"] != "Changed Before Reset"


def test_a_cursor_that_is_not_a_token_is_still_400(sandbox, admin_http):
    response = admin_http.get(
        members_url(sandbox), params={"limit": 10, "startAfter": "not-a-token"}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["code"] == "auth/invalid-page-token"
