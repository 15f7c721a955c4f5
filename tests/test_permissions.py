"""HasPlan and IsWithinQuota on DRF views, with sandbox tokens."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.permissions import BasePermission
from rest_framework.test import APIClient

from pluginlab_django.models import Member, QuotaSnapshot
from pluginlab_django.permissions import HasPlan, IsWithinQuota

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_verifier")]


@pytest.fixture
def client():
    return APIClient()


def get(client, name, token):
    return client.get(reverse(name), HTTP_AUTHORIZATION=f"Bearer {token}")


def member_with_quota(member_id: str, **snapshot) -> Member:
    member = Member.objects.create(remote_id=member_id, email=f"{member_id}@example.com")
    if snapshot:
        member.latest_quota = QuotaSnapshot.objects.create(member=member, **snapshot)
        member.save(update_fields=["latest_quota"])
    return member


# --- HasPlan ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan_id", "status"),
    [
        ("plan_pro", 200),
        ("plan_team", 200),
        ("plan_free", 403),
        (None, 403),
    ],
)
def test_has_plan(sandbox, client, plan_id, status):
    token = sandbox.mint_token(sandbox.member_ids()[0], plan_id=plan_id)
    response = get(client, "auth-pro", token)
    assert response.status_code == status
    if status == 403:
        assert response.json()["detail"] == "Your plan does not give access to this resource."


def test_has_plan_reads_snake_case_tokens_too(sandbox, client):
    token = sandbox.mint_token(sandbox.member_ids()[0], plan_id="plan_pro", claim_style="snake")
    assert get(client, "auth-pro", token).status_code == 200


def test_has_plan_without_a_token_is_401_not_403(sandbox, client):
    assert client.get(reverse("auth-pro")).status_code == 401


def test_has_plan_builds_a_permission_class():
    permission = HasPlan("plan_a", "plan_b")
    assert isinstance(permission, type) and issubclass(permission, BasePermission)
    assert permission.plans == {"plan_a", "plan_b"}
    assert permission.__name__ == "HasPlan('plan_a', 'plan_b')"
    with pytest.raises(TypeError):
        HasPlan()
    with pytest.raises(TypeError):
        HasPlan("")


def test_has_plan_composes_with_drf_operators(sandbox, client):
    ids = sandbox.member_ids()
    member_with_quota(ids[1], usage_count=10, usage_limit=10, is_over_limit=True)
    over_quota_pro = sandbox.mint_token(ids[1], plan_id="plan_pro")
    over_quota_free = sandbox.mint_token(ids[1], plan_id="plan_free", expires_in=1800)
    assert get(client, "auth-pro-or-quota", over_quota_pro).status_code == 200
    assert get(client, "auth-pro-or-quota", over_quota_free).status_code == 403


# --- IsWithinQuota -----------------------------------------------------------


@pytest.mark.parametrize(
    ("snapshot", "status"),
    [
        ({"usage_count": 3, "usage_limit": 10}, 200),
        ({"usage_count": 10, "usage_limit": 10}, 403),
        ({"usage_count": 12, "usage_limit": 10, "is_over_limit": True}, 403),
        ({"usage_count": 5000, "usage_limit": 0, "is_unlimited": True}, 200),
    ],
)
def test_is_within_quota(sandbox, client, snapshot, status):
    member_id = sandbox.member_ids()[2]
    member_with_quota(member_id, **snapshot)
    response = get(client, "auth-quota", sandbox.mint_token(member_id))
    assert response.status_code == status
    if status == 403:
        assert response.json()["detail"] == IsWithinQuota.message


def test_the_newest_snapshot_decides(sandbox, client):
    member_id = sandbox.member_ids()[3]
    member = member_with_quota(member_id, usage_count=10, usage_limit=10, is_over_limit=True)
    member.latest_quota = QuotaSnapshot.objects.create(member=member, usage_count=0, usage_limit=10)
    member.save(update_fields=["latest_quota"])
    assert get(client, "auth-quota", sandbox.mint_token(member_id)).status_code == 200


@pytest.mark.parametrize(("setting", "status"), [("allow", 200), ("deny", 403)])
@pytest.mark.parametrize("mirrored", [True, False])
def test_no_snapshot_follows_the_setting(sandbox, client, settings, setting, status, mirrored):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "QUOTA_WHEN_NO_SNAPSHOT": setting}
    member_id = sandbox.member_ids()[4]
    if mirrored:
        member_with_quota(member_id)
    assert get(client, "auth-quota", sandbox.mint_token(member_id)).status_code == status


def test_quota_with_site_users(sandbox, client, settings):
    """With USER_RESOLVER mapping to Django users the member is looked up by uid."""
    settings.PLUGINLAB = {
        **settings.PLUGINLAB,
        "USER_RESOLVER": "pluginlab_django.authentication.get_or_create_user_by_email",
        "QUOTA_WHEN_NO_SNAPSHOT": "deny",
    }
    member_id = sandbox.member_ids()[5]
    member_with_quota(member_id, usage_count=1, usage_limit=10)
    # The resolver links verified members only: mirror what PluginLab says.
    email = sandbox.get_member(member_id)["email"]
    Member.objects.filter(remote_id=member_id).update(is_verified=True, email=email)
    response = get(client, "auth-quota", sandbox.mint_token(member_id))
    assert response.status_code == 200
    assert response.json()["user_class"] == "User"
