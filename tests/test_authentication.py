"""DRF authentication with sandbox tokens: accepted tokens, the forged corpus
answered 401 with an RFC 6750 challenge (never 500), 503 when no key can be
had, the user resolvers, and the member's plan kept current from tokens."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from pluginlab_django import tokens
from pluginlab_django.authentication import PluginLabUser, get_or_create_user_by_email
from pluginlab_django.services.plans import record_plan_from_token
from tests.auth_headers import bearer
from tests.forged_tokens import CERT_PATH, CORPUS, forged_tokens
from tests.member_rows import mirror

WHOAMI = "/auth/whoami/"  # tests/urls.py mounts tests.views under auth/
CHALLENGE = re.compile(
    r'^Bearer realm="api", error="invalid_token", error_description="(?P<description>[^"]+)"$'
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_verifier")]


@pytest.fixture
def client():
    return APIClient()


# --- Accepted ----------------------------------------------------------------


@pytest.mark.parametrize("claim_style", ["camel", "snake"])
def test_sandbox_token_authenticates(sandbox, client, claim_style):
    member_id = sandbox.member_ids()[0]
    token = sandbox.mint_token(
        member_id, plan_id="plan_pro", price_id="price_m", claim_style=claim_style
    )
    response = client.get(WHOAMI, **bearer(token))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user_class"] == "PluginLabUser"
    assert body["uid"] == body["user_pk"] == member_id
    assert body["plan_id"] == "plan_pro"
    assert body["price_id"] == "price_m"
    assert body["email"]


def test_light_user_loads_its_member_lazily(sandbox, django_assert_num_queries):
    member_id = sandbox.member_ids()[1]
    member = mirror(member_id)
    payload = tokens.verify_token(sandbox.mint_token(member_id))
    user = PluginLabUser(payload)
    assert user.is_authenticated and not user.is_anonymous and not user.is_staff
    assert not user.has_perm("pluginlab_django.view_member")
    with django_assert_num_queries(1):
        assert user.member == member
        assert user.member == member  # cached
    assert (
        PluginLabUser(tokens.verify_token(sandbox.mint_token(sandbox.member_ids()[2]))).member
        is None
    )


def test_echo_views_answer_the_same_with_and_without_authentication(sandbox, client):
    """The benchmark's pair (benchmarks/drf_requests.py): only authentication differs."""
    member_id = sandbox.member_ids()[0]
    assert client.get("/auth/echo-open/").json() == {"ok": True, "uid": None}
    token = sandbox.mint_token(member_id)
    assert client.get("/auth/echo-token/", **bearer(token)).json() == {"ok": True, "uid": member_id}
    assert client.get("/auth/echo-token/").status_code == 401


# --- Rejected ----------------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS)
def test_forged_tokens_get_401_with_a_challenge(sandbox, client, name):
    client.get(WHOAMI, **bearer(sandbox.mint_token(sandbox.member_ids()[0])))  # warm the keys
    token, expected = forged_tokens(sandbox)[name]
    response = client.get(WHOAMI, **bearer(token))
    assert response.status_code == 401
    match = CHALLENGE.match(response["WWW-Authenticate"])
    assert match, response["WWW-Authenticate"]
    expected_types = expected if isinstance(expected, tuple) else (expected,)
    descriptions = {str(t.description) for t in expected_types}
    if name in ("missing uid", "uid not a string"):
        descriptions = {"The token has no valid 'uid' claim."}
    if name == "missing exp":
        descriptions = {"The token has no valid 'exp' claim."}
    assert match["description"] in descriptions
    # The token is never echoed back.
    for part in token.split("."):
        if len(part) > 8:
            assert part not in response["WWW-Authenticate"]
            assert part not in response.content.decode()
    assert response.json()["detail"] == match["description"]


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNzd29yZA==", "Token abc.def.ghi", "Digest username=x", "JWT abc"],
)
def test_other_scheme_is_not_ours_and_the_view_answers_401(sandbox, client, authorization):
    response = client.get(WHOAMI, HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_no_header_answers_401_with_a_plain_challenge(sandbox, client):
    response = client.get(WHOAMI)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "bearer    "])
def test_empty_bearer_answers_401(sandbox, client, authorization):
    response = client.get(WHOAMI, HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert (
        CHALLENGE.match(response["WWW-Authenticate"])["description"] == "The bearer token is empty."
    )


def test_cert_down_from_cold_answers_503_not_401(sandbox, client):
    sandbox.set_cert_down(True)
    response = client.get(WHOAMI, **bearer(sandbox.mint_token(sandbox.member_ids()[0])))
    assert response.status_code == 503
    assert response.json()["detail"].startswith("Token verification is temporarily unavailable")
    assert int(response["Retry-After"]) > 0
    assert "WWW-Authenticate" not in response


def test_cert_down_after_warm_up_still_authenticates(sandbox, client):
    ids = sandbox.member_ids()
    assert client.get(WHOAMI, **bearer(sandbox.mint_token(ids[0]))).status_code == 200
    sandbox.set_cert_down(True)
    assert client.get(WHOAMI, **bearer(sandbox.mint_token(ids[1]))).status_code == 200


def test_key_rotation_through_the_view(sandbox, client):
    ids = sandbox.member_ids()
    assert client.get(WHOAMI, **bearer(sandbox.mint_token(ids[0]))).status_code == 200
    sandbox.rotate_signing_key()
    assert client.get(WHOAMI, **bearer(sandbox.mint_token(ids[1]))).status_code == 200
    assert sandbox.request_count(CERT_PATH) == 2


# --- Property: whatever the header, never a 500 --------------------------------


def header_values(sb):
    valid = sb.mint_token(sb.member_ids()[0])

    @st.composite
    def mutated(draw):
        position = draw(st.integers(0, len(valid)))
        cut = draw(st.integers(0, 40))
        insert = draw(st.text(max_size=20))
        return "Bearer " + valid[:position] + insert + valid[position + cut :]

    bearer_garbage = st.text(max_size=300).map(lambda s: f"Bearer {s}")
    dotted = st.lists(
        st.text(alphabet="ABCDEFabcdef0123456789-_=+/.", max_size=80), min_size=1, max_size=5
    ).map(lambda parts: "Bearer " + ".".join(parts))
    return st.one_of(
        st.text(max_size=300),
        bearer_garbage,
        dotted,
        mutated(),
        st.just(f"Bearer {valid}"),
        st.just(f"bearer {valid}"),
    )


def test_arbitrary_authorization_headers_never_cause_a_500(sandbox):
    client = APIClient(raise_request_exception=False)
    values = header_values(sandbox)

    @hypothesis_settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(value=values)
    def check(value):
        response = client.get(WHOAMI, HTTP_AUTHORIZATION=value)
        assert response.status_code in (200, 401), (value, response.status_code)
        if response.status_code == 401:
            assert response["WWW-Authenticate"].startswith('Bearer realm="api"')

    check()


# --- User resolvers -------------------------------------------------------------


def test_user_resolver_maps_tokens_to_site_users(sandbox, client, settings):
    settings.PLUGINLAB = {
        **settings.PLUGINLAB,
        "USER_RESOLVER": "pluginlab_django.authentication.get_or_create_user_by_email",
    }
    User = get_user_model()
    member_id = sandbox.member_ids()[4]
    token = sandbox.mint_token(member_id)
    response = client.get(WHOAMI, **bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["user_class"] == User.__name__
    user = User.objects.get(pk=body["user_pk"])
    assert user.email == body["email"]
    assert not user.has_usable_password()
    # The same email (in any case) maps to the same user.
    again = client.get(WHOAMI, **bearer(sandbox.mint_token(member_id, expires_in=1800)))
    assert again.json()["user_pk"] == user.pk
    assert User.objects.count() == 1


def test_get_or_create_user_by_email_matches_case_insensitively(sandbox):
    User = get_user_model()
    payload = tokens.verify_token(sandbox.mint_token(sandbox.member_ids()[5]))
    existing = User.objects.create_user(username="someone", email=payload.user.email.upper())
    assert get_or_create_user_by_email(payload) == existing


# --- The member's plan, kept current from tokens -----------------------------------


def test_plan_is_written_only_when_it_changes(sandbox, client, django_assert_num_queries):
    member_id = sandbox.member_ids()[6]
    member = mirror(member_id, plan_id="plan_free", price_id="")
    pro = sandbox.mint_token(member_id, plan_id="plan_pro", price_id="price_1")
    with django_assert_num_queries(1):  # the conditional UPDATE
        assert client.get(WHOAMI, **bearer(pro)).status_code == 200
    member.refresh_from_db()
    assert (member.plan_id, member.price_id) == ("plan_pro", "price_1")
    with django_assert_num_queries(0):  # same plan: no query at all
        assert client.get(WHOAMI, **bearer(pro)).status_code == 200
        pro_again = sandbox.mint_token(
            member_id, plan_id="plan_pro", price_id="price_1", expires_in=99
        )
        assert client.get(WHOAMI, **bearer(pro_again)).status_code == 200
    team = sandbox.mint_token(member_id, plan_id="plan_team", price_id="price_2")
    with django_assert_num_queries(1):
        assert client.get(WHOAMI, **bearer(team)).status_code == 200
    member.refresh_from_db()
    assert (member.plan_id, member.price_id) == ("plan_team", "price_2")


def test_unchanged_plan_is_not_rewritten(sandbox):
    member_id = sandbox.member_ids()[7]
    mirror(member_id, plan_id="plan_pro", price_id="price_1")
    payload = tokens.verify_token(
        sandbox.mint_token(member_id, plan_id="plan_pro", price_id="price_1")
    )
    assert record_plan_from_token(payload) is False  # the UPDATE matched no row
