"""The sandbox's members: admin authentication (§1.1), the member list and its pagination
(§1.2), members by id and email, create, update and delete, identities and
refresh, and 100k members paged completely.

Raw HTTP with ``requests``, no project client: these files check the sandbox
itself against ``wire-protocol.md``, so a mistake cannot hide in the sandbox
and the clients at once.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
import requests

from pluginlab_django.testing import Sandbox
from tests.sandbox_support import (
    UNKNOWN_ID,
    admin_headers,
    event_url,
    first_member_with,
    members_url,
    quota_url,
)

pytestmark = pytest.mark.no_db

# Admin authentication (§1.1) ------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-PluginLab-Plugin-Id": "PLUGIN"},
        {"X-PluginLab-Plugin-Id": "PLUGIN", "X-PluginLab-Admin-Sdk-Secret": "wrong"},
        {"X-PluginLab-Plugin-Id": "plg_other", "X-PluginLab-Admin-Sdk-Secret": "SECRET"},
    ],
    ids=["none", "missing-secret", "wrong-secret", "wrong-plugin"],
)
def test_admin_calls_without_the_right_headers_are_401(sandbox, headers):
    headers = {
        name: value.replace("PLUGIN", sandbox.plugin_id).replace("SECRET", sandbox.admin_secret)
        for name, value in headers.items()
    }
    member_id = sandbox.member_ids()[0]
    calls = [
        ("GET", members_url(sandbox), None),
        ("GET", members_url(sandbox, f"/members/{member_id}"), None),
        ("GET", quota_url(sandbox, member_id), None),
        ("POST", event_url(sandbox), {"eventSource": "chat"}),
    ]
    for method, url, body in calls:
        response = requests.request(method, url, json=body, headers=headers, timeout=10)
        assert response.status_code == 401, url
        assert response.json()["code"] == "auth/unauthorized"
        assert sandbox.admin_secret not in response.text


# Member list and pagination (§1.2) ------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", ""])
def test_limit_outside_1_to_100_is_400(sandbox, admin_http, limit):
    response = admin_http.get(members_url(sandbox), params={"limit": limit}, timeout=10)
    assert response.status_code == 400
    assert response.json()["code"] == "auth/invalid-limit"


@pytest.mark.parametrize(("limit", "count"), [(1, 1), (100, 50)])
def test_limit_bounds_are_accepted(sandbox, admin_http, limit, count):
    response = admin_http.get(members_url(sandbox), params={"limit": limit}, timeout=10)
    assert response.status_code == 200
    assert len(response.json()["items"]) == count


@pytest.mark.parametrize("query", ["", "&startAfter=", "&startAfter=null", "&startAfter=None"])
def test_first_page_quirks_all_start_from_the_beginning(sandbox, admin_http, query):
    response = admin_http.get(f"{members_url(sandbox)}?limit=5{query}", timeout=10)
    assert response.status_code == 200
    page = response.json()
    assert [m["id"] for m in page["items"]] == sandbox.member_ids()[:5]
    assert page["total"] == 50
    assert page["nextPageToken"]


def walk_pages(sb: Sandbox, session: requests.Session, limit: int) -> list[dict]:
    pages, token = [], None
    while True:
        query = f"?limit={limit}" + (f"&startAfter={token}" if token else "")
        response = session.get(members_url(sb) + query, timeout=10)
        assert response.status_code == 200
        pages.append(response.json())
        token = pages[-1]["nextPageToken"]
        if token is None:
            return pages
        assert re.fullmatch(r"[A-Za-z0-9_.~-]+", token), "token must be URL-safe"


def test_pagination_covers_every_member_once_in_a_stable_order(sandbox, admin_http):
    pages = walk_pages(sandbox, admin_http, limit=7)
    ids = [m["id"] for page in pages for m in page["items"]]

    assert len(pages) == 8
    assert [len(page["items"]) for page in pages] == [7] * 7 + [1]
    assert ids == sandbox.member_ids()
    assert len(set(ids)) == 50
    assert all(page["total"] == 50 for page in pages)
    assert pages[-1]["nextPageToken"] is None
    again = [m["id"] for page in walk_pages(sandbox, admin_http, limit=7) for m in page["items"]]
    assert again == ids


def test_a_page_boundary_survives_a_deletion(sandbox, admin_http):
    first = admin_http.get(members_url(sandbox), params={"limit": 10}, timeout=10).json()
    sandbox.delete_member(first["items"][-1]["id"])
    rest = admin_http.get(
        members_url(sandbox),
        params={"limit": 100, "startAfter": first["nextPageToken"]},
        timeout=10,
    ).json()
    assert [m["id"] for m in rest["items"]] == sandbox.member_ids()[9:]


def test_unusable_page_token_is_400(sandbox, admin_http):
    response = admin_http.get(
        members_url(sandbox), params={"limit": 5, "startAfter": "!!garbage"}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["code"] == "auth/invalid-page-token"


# Members by id, by email, 404s ----------------------------------------------


def test_member_by_id_has_the_wire_shape(sandbox, admin_http):
    member_id = first_member_with(sandbox, "google")
    member = admin_http.get(members_url(sandbox, f"/members/{member_id}"), timeout=10).json()
    assert re.fullmatch(r"mem_[0-9a-f]{40}", member["id"])
    assert set(member) == {
        "id",
        "email",
        "name",
        "givenName",
        "familyName",
        "pictureUrl",
        "auth",
        "customFields",
        "metadata",
        "createdAtMs",
        "updatedAtMs",
    }
    assert member["auth"]["signInMethod"] == "google"
    assert member["auth"]["providerUserId"]
    assert {"email", "isVerified", "hasPassword"} <= set(member["auth"])


@pytest.mark.parametrize("email", ["plus+tag@example.com", "o'neil@example.com"])
def test_member_by_url_encoded_email(sandbox, admin_http, email):
    created = sandbox.create_member(email)
    response = admin_http.get(members_url(sandbox, f"/member/byEmail/{quote(email, safe='')}"))
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]


def test_member_by_plain_email(sandbox, admin_http):
    member = sandbox.get_member(sandbox.member_ids()[3])
    response = admin_http.get(
        members_url(sandbox, f"/member/byEmail/{member['email']}"), timeout=10
    )
    assert response.json()["id"] == member["id"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/members/UNKNOWN", None),
        ("PATCH", "/members/UNKNOWN", {"name": "x"}),
        ("DELETE", "/members/UNKNOWN", None),
        ("GET", "/members/UNKNOWN/identities", None),
        ("GET", "/member/byEmail/nobody%40example.com", None),
    ],
)
def test_unknown_member_is_404_with_a_code(sandbox, admin_http, method, path, body):
    url = members_url(sandbox, path.replace("UNKNOWN", UNKNOWN_ID))
    response = admin_http.request(method, url, json=body, timeout=10)
    assert response.status_code == 404
    assert response.json()["code"] == "auth/member-not-found"
    assert response.json()["message"]


def test_unknown_member_quota_is_404(sandbox, admin_http):
    response = admin_http.get(quota_url(sandbox, UNKNOWN_ID), timeout=10)
    assert response.status_code == 404
    assert response.json()["code"] == "auth/member-not-found"


# Create, delete, update -----------------------------------------------------


def test_create_is_201_and_the_id_comes_from_the_email(sandbox, admin_http):
    body = {"email": "New.Person@example.com", "password": "pw", "metadata": {"k": "v"}}
    created = admin_http.post(members_url(sandbox), json=body, timeout=10)
    assert created.status_code == 201
    member = created.json()
    assert re.fullmatch(r"mem_[0-9a-f]{40}", member["id"])
    assert member["metadata"] == {"k": "v"}
    assert member["auth"]["hasPassword"] is True
    assert member["auth"]["isVerified"] is False

    duplicate = admin_http.post(members_url(sandbox), json=body, timeout=10)
    assert duplicate.status_code == 409
    assert duplicate.json()["code"]

    admin_http.post(event_url(sandbox), json={"eventSource": "chat", "memberId": member["id"]})
    usage = admin_http.get(quota_url(sandbox, member["id"]), timeout=10).json()["usageCount"]
    deleted = admin_http.delete(members_url(sandbox, f"/members/{member['id']}"), timeout=10)
    assert 200 <= deleted.status_code < 300
    assert admin_http.get(members_url(sandbox, f"/members/{member['id']}")).status_code == 404

    recreated = admin_http.post(members_url(sandbox), json=body, timeout=10)
    assert recreated.status_code == 201
    assert recreated.json()["id"] == member["id"]
    assert admin_http.get(quota_url(sandbox, member["id"])).json()["usageCount"] == usage


@pytest.mark.parametrize(
    "body",
    [{"password": "pw"}, {"email": "no-at-sign", "password": "pw"}, {"email": "a@example.com"}],
)
def test_create_validates_email_and_password(sandbox, admin_http, body):
    response = admin_http.post(members_url(sandbox), json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["code"].startswith("auth/")


def test_patch_replaces_metadata_whole_and_leaves_other_fields(sandbox, admin_http):
    member_id = first_member_with(sandbox, "github")
    url = members_url(sandbox, f"/members/{member_id}")
    admin_http.patch(url, json={"metadata": {"a": 1, "b": 2}}, timeout=10)
    before = admin_http.get(url, timeout=10).json()

    response = admin_http.patch(url, json={"metadata": {"c": 3}}, timeout=10)

    assert response.status_code == 200
    after = response.json()
    assert after["metadata"] == {"c": 3}
    assert after["updatedAtMs"] > before["updatedAtMs"]
    untouched = {k: v for k, v in before.items() if k not in ("metadata", "updatedAtMs")}
    assert {k: v for k, v in after.items() if k not in ("metadata", "updatedAtMs")} == untouched
    assert admin_http.get(url, timeout=10).json() == after


def test_patch_of_names_keeps_metadata_and_sets_verified(sandbox, admin_http):
    member_id = first_member_with(sandbox, "email-and-password")
    url = members_url(sandbox, f"/members/{member_id}")
    before = admin_http.patch(url, json={"metadata": {"keep": True}}, timeout=10).json()

    after = admin_http.patch(
        url, json={"name": "Ada L", "givenName": "Ada", "isVerified": True}, timeout=10
    ).json()

    assert (after["name"], after["givenName"]) == ("Ada L", "Ada")
    assert after["auth"]["isVerified"] is True
    assert after["metadata"] == {"keep": True}
    assert after["familyName"] == before["familyName"]
    assert after["email"] == before["email"]


# Identities and refresh -----------------------------------------------------


def test_identities_shape_and_empty_object(sandbox, admin_http):
    google_id = first_member_with(sandbox, "google")
    identities = admin_http.get(members_url(sandbox, f"/members/{google_id}/identities")).json()
    assert list(identities) == ["google"]
    assert set(identities["google"]) == {
        "provider",
        "providerUserId",
        "accessToken",
        "accessTokenExpiresAtMs",
        "refreshToken",
        "refreshTokenExpiresAtMs",
        "lastUsedAtMs",
    }
    email_id = first_member_with(sandbox, "magic-email-code")
    assert admin_http.get(members_url(sandbox, f"/members/{email_id}/identities")).json() == {}


def test_refresh_gives_a_fresh_access_token(sandbox, admin_http):
    member_id = first_member_with(sandbox, "google")
    old = admin_http.get(members_url(sandbox, f"/members/{member_id}/identities")).json()["google"]

    response = admin_http.post(
        members_url(sandbox, f"/members/{member_id}/identities/google/refresh")
    )

    assert response.status_code == 200
    fresh = response.json()
    assert fresh["provider"] == "google"
    assert fresh["accessToken"] and fresh["accessToken"] != old["accessToken"]
    assert fresh["accessTokenExpiresAtMs"] > old["accessTokenExpiresAtMs"]


def test_refresh_of_github_is_400_not_supported(sandbox, admin_http):
    member_id = first_member_with(sandbox, "github")
    response = admin_http.post(
        members_url(sandbox, f"/members/{member_id}/identities/github/refresh")
    )
    assert response.status_code == 400
    assert response.json()["code"] == "auth/refresh-not-supported"


def test_refresh_of_a_revoked_token_is_422(sandbox, admin_http):
    member_id = sandbox.revoked_refresh_member_ids()[0]
    provider = sandbox.get_member(member_id)["auth"]["signInMethod"]
    response = admin_http.post(
        members_url(sandbox, f"/members/{member_id}/identities/{provider}/refresh")
    )
    assert response.status_code == 422
    assert response.json()["code"] == "auth/refresh-token-failed"
    assert response.json()["message"]


# Scale ----------------------------------------------------------------------


@pytest.mark.slow
def test_100k_members_seed_and_page_completely():
    with Sandbox(members=100_000, seed=7) as sb, requests.Session() as session:
        session.headers.update(admin_headers(sb))
        seen: list[str] = []
        token = None
        while True:
            params = {"limit": 100, **({"startAfter": token} if token else {})}
            page = session.get(members_url(sb), params=params, timeout=30).json()
            assert page["total"] == 100_000
            seen += [member["id"] for member in page["items"]]
            token = page["nextPageToken"]
            if token is None:
                break
        assert len(seen) == 100_000
        assert len(set(seen)) == 100_000
        assert seen == sb.member_ids()
