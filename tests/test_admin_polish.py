"""Admin polish (issue 14 item 8), with Django's test client: messages keep an
email or key id as written, the dashboard names sign-in methods for humans
and draws value axes, the custom pages carry the full breadcrumb and the
admin's aligned form rows."""

from __future__ import annotations

import re

import pytest
from django.core.cache import caches
from django.urls import reverse

from pluginlab_django import sync
from pluginlab_django.admin import charts
from pluginlab_django.models import WebhookDelivery
from pluginlab_django.services import apikeys as apikey_service
from tests.member_rows import make_members

pytestmark = pytest.mark.django_db

MEMBERS = reverse("admin:pluginlab_django_member_changelist")
API_KEYS = reverse("admin:pluginlab_django_apikey_changelist")
DELIVERIES = reverse("admin:pluginlab_django_webhookdelivery_changelist")
DASHBOARD = reverse("admin:pluginlab_django_dashboard_changelist")


@pytest.fixture(autouse=True)
def empty_cache():
    caches["default"].clear()
    yield
    caches["default"].clear()


def message_items(html: str) -> list[str]:
    """The rendered text of each ``ul.messagelist`` item, as the operator sees it."""
    match = re.search(r'<ul class="messagelist">(.*?)</ul>', html, re.S)
    assert match, "no messages rendered"
    return [item.strip() for item in re.findall(r"<li[^>]*>(.*?)</li>", match.group(1), re.S)]


# Messages: an email or key id at the start is not capitalised ------------------


def test_member_action_message_keeps_the_email_lower_case(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    assert member.email[0].islower()
    data = {"action": "sync_from_pluginlab", "_selected_action": [member.pk], "confirm": "yes"}
    done = admin_client.post(MEMBERS, data, follow=True)
    assert message_items(done.content.decode()) == [f"{member.email}: synced."]


def test_api_key_message_keeps_the_key_id_as_written(admin_client, sandbox):
    key = apikey_service.create_api_key(description="polish").record
    assert key.key_id[0].islower()
    data = {"action": "revoke_keys", "_selected_action": [key.pk], "confirm": "yes"}
    done = admin_client.post(API_KEYS, data, follow=True)
    assert message_items(done.content.decode()) == [f"{key.key_id}: revoked."]


def test_webhook_message_keeps_the_event_name_as_written(admin_client):
    delivery = WebhookDelivery.objects.create(
        delivery_id="dlv_polish", event="unknown.event", body="{}", status="failed"
    )
    data = {"action": "reprocess", "_selected_action": [delivery.pk]}
    done = admin_client.post(DELIVERIES, data, follow=True)
    (text,) = message_items(done.content.decode())
    assert text.startswith("unknown.event dlv_polish: "), text


# Dashboard: human sign-in method labels and value axes ---------------------------


def test_sign_in_labels():
    from pluginlab_django.admin.dashboard import sign_in_label

    assert sign_in_label("google") == "Google"
    assert sign_in_label("email-and-password") == "Email and password"
    assert sign_in_label("email") == "Email and password"
    assert sign_in_label("magic-email-code") == "Magic email code"
    assert sign_in_label("magic-link") == "Magic link"
    assert sign_in_label("github") == "GitHub"
    assert sign_in_label("unknown") == "Unknown"


def chart(page: str, title: str) -> str:
    match = re.search(
        rf'<svg class="pl-chart" role="img" aria-label="{title}".*?</svg>', page, re.S
    )
    assert match, f"no {title} chart"
    return match.group(0)


def test_dashboard_names_sign_in_methods_for_humans(admin_client):
    make_members(6)  # google and email-and-password
    methods = chart(admin_client.get(DASHBOARD).content.decode(), "Sign-in methods")
    assert ">Google<" in methods and ">Email and password<" in methods
    assert ">google<" not in methods and "email-and-password" not in methods


def axis_numbers(svg: str) -> list[int]:
    axis = re.search(r'<g class="pl-axis[^"]*">(.*?)</g>', svg, re.S)
    assert axis, "no value axis"
    return [int(n) for n in re.findall(r"<text[^>]*>(\d+)</text>", axis.group(1))]


def test_every_dashboard_chart_has_a_value_axis(admin_client):
    make_members(9)
    WebhookDelivery.objects.create(delivery_id="d1", event="member.updated", body="{}")
    page = admin_client.get(DASHBOARD).content.decode()
    for title in ("Sign-ups per week", "Sign-in methods", "Plans", "Quota usage", "API keys"):
        numbers = axis_numbers(chart(page, title))
        assert numbers[0] == 0 and len(numbers) >= 2, (title, numbers)
        assert numbers == sorted(numbers), (title, numbers)
    # 9 members, 5 with email and password: the axis reaches at least 5
    assert max(axis_numbers(chart(page, "Sign-in methods"))) >= 5


def test_chart_axes_cover_the_peak_with_round_ticks():
    svg = charts.horizontal_bars([("a", 7), ("b", 3)], title="t")
    assert axis_numbers(svg) == [0, 2, 4, 6, 8]
    svg = charts.columns([("w1", 0), ("w2", 23)], title="c")
    assert axis_numbers(svg) == [0, 10, 20, 30]
    assert axis_numbers(charts.horizontal_bars([], title="empty")) == [0, 1]


# Breadcrumbs and aligned forms on the custom pages -------------------------------


def breadcrumb_links(page: str) -> list[str]:
    match = re.search(r'<div class="breadcrumbs">(.*?)</div>', page, re.S)
    assert match, "no breadcrumbs"
    return re.findall(r'href="([^"]+)"', match.group(1))


def test_add_api_key_page_has_the_full_breadcrumb_and_aligned_rows(admin_client, sandbox):
    page = admin_client.get(reverse("admin:pluginlab_django_apikey_add")).content.decode()
    assert breadcrumb_links(page) == [
        reverse("admin:index"),
        reverse("admin:app_list", args=["pluginlab_django"]),
        API_KEYS,
    ]
    assert "admin/css/forms.css" in page  # the aligned layout's own stylesheet
    assert re.search(r'<fieldset class="module aligned">\s*<div class="form-row', page)
    assert '<label for="id_description"' in page


def test_send_event_page_has_the_full_breadcrumb(admin_client):
    page = admin_client.get(reverse("admin:pluginlab_django_customevent_add")).content.decode()
    assert breadcrumb_links(page) == [
        reverse("admin:index"),
        reverse("admin:app_list", args=["pluginlab_django"]),
        reverse("admin:pluginlab_django_customevent_changelist"),
    ]
    assert "admin/css/forms.css" in page


def test_secret_page_has_the_full_breadcrumb_and_aligned_rows(admin_client, sandbox):
    add = reverse("admin:pluginlab_django_apikey_add")
    once = admin_client.get(add).context["form"]["once"].value()
    page = admin_client.post(
        add, {"description": "crumbs", "scope": "*", "once": once}
    ).content.decode()
    assert breadcrumb_links(page) == [
        reverse("admin:index"),
        reverse("admin:app_list", args=["pluginlab_django"]),
        API_KEYS,
    ]
    assert '<fieldset class="module aligned pl-secret-box">' in page
    assert '<label for="secret-1">' in page
