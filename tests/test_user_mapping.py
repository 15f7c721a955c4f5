"""``get_or_create_user_by_email`` against the sandbox: no account takeover by
email (unverified members, staff accounts, case tricks), inactive accounts
refused like ``ModelBackend`` does, username collisions without a 500, and
the member/uid/plan helpers whatever the resolver."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from pluginlab_django import tokens
from pluginlab_django.authentication import (
    PluginLabTokenAuthentication,
    UserNotLinked,
    get_or_create_user_by_email,
    pluginlab_member,
    pluginlab_user,
)
from pluginlab_django.decorators import pluginlab_token_required
from pluginlab_django.models import Member
from tests.auth_headers import bearer

WHOAMI = "/auth/whoami/"
RESOLVER = "pluginlab_django.authentication.get_or_create_user_by_email"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_verifier")]


@pytest.fixture
def resolver(settings, sandbox):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "USER_RESOLVER": RESOLVER}
    return settings


def whoami(token: str):
    return APIClient().get(WHOAMI, **bearer(token))


def new_member(sandbox, email: str, *, verified: bool) -> str:
    return sandbox.create_member(email, is_verified=verified)["id"]


def test_unverified_member_with_a_superusers_email_in_other_case_is_not_that_user(
    resolver, sandbox
):
    User = get_user_model()
    admin = User.objects.create_superuser("admin", "admin@mysite.test", "pw")
    member_id = new_member(sandbox, "ADMIN@mysite.test", verified=False)
    response = whoami(sandbox.mint_token(member_id))
    assert response.status_code == 401
    assert "not verified" in response.json()["detail"]
    assert list(User.objects.all()) == [admin]


def test_unverified_member_with_a_plain_users_email_is_not_linked(resolver, sandbox):
    User = get_user_model()
    User.objects.create_user("bob", "bob@mysite.test")
    member_id = new_member(sandbox, "bob@mysite.test", verified=False)
    assert whoami(sandbox.mint_token(member_id)).status_code == 401
    assert User.objects.count() == 1


def test_verified_member_with_a_staff_email_is_not_linked_unless_allowed(resolver, sandbox):
    User = get_user_model()
    staff = User.objects.create_user("ops", "ops@mysite.test", is_staff=True)
    member_id = new_member(sandbox, "OPS@mysite.test", verified=True)
    token = sandbox.mint_token(member_id)
    response = whoami(token)
    assert response.status_code == 401
    assert "staff" in response.json()["detail"]
    assert User.objects.count() == 1

    resolver.PLUGINLAB = {**resolver.PLUGINLAB, "LINK_STAFF_USERS_BY_EMAIL": True}
    response = whoami(token)
    assert response.status_code == 200, response.content
    assert response.json()["user_pk"] == staff.pk


def test_inactive_user_is_refused_with_401(resolver, sandbox):
    User = get_user_model()
    member_id = sandbox.member_ids()[4]  # verified
    email = sandbox.get_member(member_id)["email"]
    User.objects.create_user("tim", email, is_active=False)
    response = whoami(sandbox.mint_token(member_id))
    assert response.status_code == 401
    assert response.json()["detail"] == "User inactive or deleted."
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')


def test_username_collision_creates_a_user_with_a_derived_username(resolver, sandbox):
    User = get_user_model()
    member_id = sandbox.member_ids()[5]  # verified
    email = sandbox.get_member(member_id)["email"]
    squatter = User.objects.create_user(email, "someone-else@mysite.test")
    User.objects.create_user(f"{email.upper()}-2", "another@mysite.test")
    response = whoami(sandbox.mint_token(member_id))
    assert response.status_code == 200, response.content
    user = User.objects.get(pk=response.json()["user_pk"])
    assert user != squatter
    assert (user.username, user.email) == (f"{email}-3", email)
    # The next request finds the same user by email.
    assert whoami(sandbox.mint_token(member_id, expires_in=60)).json()["user_pk"] == user.pk


def test_a_member_not_mirrored_yet_is_fetched_once_and_mirrored(resolver, sandbox):
    member_id = sandbox.member_ids()[4]
    assert not Member.objects.filter(remote_id=member_id).exists()
    assert whoami(sandbox.mint_token(member_id)).status_code == 200
    member = Member.objects.get(remote_id=member_id)
    assert member.is_verified
    before = sandbox.request_count()
    assert whoami(sandbox.mint_token(member_id, expires_in=60)).status_code == 200
    assert sandbox.request_count() == before  # the mirror answers now


def test_the_mirror_decides_verification(resolver, sandbox):
    """A mirrored member marked unverified is refused even if the token is fine."""
    member_id = sandbox.member_ids()[4]
    token = sandbox.mint_token(member_id)
    assert whoami(token).status_code == 200
    Member.objects.filter(remote_id=member_id).update(is_verified=False)
    assert whoami(sandbox.mint_token(member_id, expires_in=60)).status_code == 401


def test_pluginlab_unreachable_while_checking_the_member_is_503(resolver, sandbox):
    member_id = sandbox.member_ids()[4]
    token = sandbox.mint_token(member_id)
    tokens.verify_token(token)  # warm the signing keys
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth/admin/plugins")
    response = whoami(token)
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]


def test_two_accounts_differing_only_in_case(resolver, sandbox):
    User = get_user_model()
    member_id = sandbox.member_ids()[4]
    email = sandbox.get_member(member_id)["email"]
    User.objects.create_user("upper", email.upper())
    exact = User.objects.create_user("exact", email)
    payload = tokens.verify_token(sandbox.mint_token(member_id))
    assert get_or_create_user_by_email(payload) == exact
    User.objects.filter(pk=exact.pk).update(email=email.title())
    with pytest.raises(UserNotLinked):
        get_or_create_user_by_email(payload)


class PlanView(APIView):
    authentication_classes = [PluginLabTokenAuthentication]

    def get(self, request):
        from rest_framework.response import Response

        light = pluginlab_user(request)
        member = pluginlab_member(request)
        return Response(
            {
                "user_class": type(request.user).__name__,
                "uid": light.uid,
                "plan_id": light.plan_id,
                "member_pk": member.pk if member else None,
                "auth_uid": request.auth.uid,
            }
        )


def test_helpers_give_member_uid_and_plan_with_a_resolver(resolver, sandbox):
    member_id = sandbox.member_ids()[4]
    token = sandbox.mint_token(member_id, plan_id="plan_pro")
    request = APIRequestFactory().get("/", **bearer(token))
    body = PlanView.as_view()(request).data
    member = Member.objects.get(remote_id=member_id)
    assert body == {
        "user_class": get_user_model().__name__,
        "uid": member_id,
        "plan_id": "plan_pro",
        "member_pk": member.pk,
        "auth_uid": member_id,
    }


def test_helpers_in_a_plain_view(resolver, sandbox):
    member_id = sandbox.member_ids()[4]
    seen = {}

    @pluginlab_token_required
    def view(request):
        from django.http import HttpResponse

        seen["user"] = pluginlab_user(request)
        seen["member"] = pluginlab_member(request)
        return HttpResponse("ok")

    request = RequestFactory().get("/", **bearer(sandbox.mint_token(member_id, plan_id="p1")))
    assert view(request).status_code == 200
    assert (seen["user"].uid, seen["user"].plan_id) == (member_id, "p1")
    assert seen["member"].remote_id == member_id
    # Without a token, no helper value.
    assert pluginlab_user(RequestFactory().get("/")) is None


def test_plain_view_refuses_unverified_member_with_401(resolver, sandbox):
    member_id = new_member(sandbox, "carol@mysite.test", verified=False)

    @pluginlab_token_required
    def view(request):  # pragma: no cover - never reached
        raise AssertionError

    request = RequestFactory().get("/", **bearer(sandbox.mint_token(member_id)))
    assert view(request).status_code == 401
