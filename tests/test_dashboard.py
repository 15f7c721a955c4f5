"""The dashboard: linked from the index, aggregate queries only, briefly cached."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from pluginlab_django.models import ApiKey, Member, SyncRun, WebhookDelivery
from tests.member_rows import make_members

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:pluginlab_django_dashboard_changelist")


@pytest.fixture(autouse=True)
def empty_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


def test_linked_from_the_admin_index(admin_client):
    assert DASHBOARD in admin_client.get(reverse("admin:index")).content.decode()


def test_figures_and_charts(admin_client):
    make_members(9)  # every third over its limit; odd ones verified
    ApiKey.objects.create(
        record_id="apk_1", key_id="pk_test_1", mode="test", created_at=timezone.now()
    )
    ApiKey.objects.create(
        record_id="apk_2",
        key_id="pk_test_2",
        mode="test",
        created_at=timezone.now(),
        revoked_at=timezone.now(),
    )
    SyncRun.objects.create(kind="members", status="failed", error="PluginLab was down")
    WebhookDelivery.objects.create(
        delivery_id="d1", event="member.updated", body="{}", status="processed"
    )
    response = admin_client.get(DASHBOARD)
    page = response.content.decode()
    figures = response.context["figures"]
    assert figures["members"]["total"] == 9
    assert figures["members"]["verified"] == 4
    assert figures["members"]["over_limit"] == 3
    assert (figures["api_keys"]["active"], figures["api_keys"]["revoked"]) == (1, 1)
    assert dict(figures["webhooks"]) == {"processed": 1}
    assert page.count("<svg") >= 6
    assert "PluginLab was down" in page
    assert dict(figures["members"]["usage"])["over limit"] == 3


def test_queries_do_not_depend_on_the_member_count(admin_client):
    counts = {}
    for total in (20, 200):
        Member.objects.all().delete()
        make_members(total)
        caches["default"].clear()
        admin_client.get(reverse("admin:index"))
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(DASHBOARD)
        counts[total] = len(queries)
    assert counts[20] == counts[200]


def test_a_second_render_within_the_cache_period_runs_no_aggregate(admin_client):
    make_members(5)
    admin_client.get(DASHBOARD)
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(DASHBOARD)
    touched = " ".join(q["sql"] for q in queries.captured_queries)
    assert "pluginlab_django_member" not in touched


def test_needs_the_view_member_permission(client, django_user_model):
    user = django_user_model.objects.create_user("s", "s@example.com", "pw", is_staff=True)
    client.force_login(user)
    assert client.get(DASHBOARD).status_code == 403
