"""Admin layout at a 1,280 px window, in real headless Chromium: no changelist
cuts a column or scrolls sideways, forms use the admin's aligned layout, the
custom pages carry the full breadcrumb. Screenshots of every admin page go to
tests/artifacts/ (gitignored)."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from pluginlab_django import sync
from pluginlab_django.models import ApiKey, CustomEvent, Member, SyncRun, WebhookDelivery
from tests.admin_browser import ARTIFACTS, browser, signed_in_page  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1280
ADMIN = "/admin/pluginlab_django"
CHANGELISTS = ("member", "apikey", "customevent", "webhookdelivery", "syncrun")

OVERFLOW = """() => {
  const box = document.querySelector('#changelist .results') || document.querySelector('#content');
  const table = document.querySelector('#result_list');
  return {
    table: table ? table.scrollWidth : 0,
    box: box.clientWidth,
    boxScroll: box.scrollWidth,
    page: document.documentElement.scrollWidth,
    window: window.innerWidth,
  };
}"""

TABLES_OVERFLOW = """() => Array.from(document.querySelectorAll('#content table')).map(t => {
  let box = t.parentElement;
  while (box && getComputedStyle(box).overflowX === 'visible' && box.id !== 'content') {
    box = box.parentElement;
  }
  return {id: t.id || t.className, table: t.scrollWidth, box: box.clientWidth};
})"""


def seed_rows(admin_user) -> None:
    """At least one row in every changelist, with long realistic values."""
    member = Member.objects.order_by("pk").first()
    CustomEvent.objects.create(
        member=member,
        member_remote_id=member.remote_id,
        event_source="API",
        country_code="NL",
        status=CustomEvent.Status.FAILED,
        error="PluginLab is unavailable",
        attempts=3,
        sent_by=admin_user,
    )
    WebhookDelivery.objects.create(
        delivery_id="dlv_0123456789abcdef0123456789abcdef",
        hook_id="hook_1",
        event="member.quota.updated",
        body=json.dumps({"member": {"id": member.remote_id}}),
        status=WebhookDelivery.Status.PROCESSED,
        attempts=1,
        processed_at=timezone.now(),
    )


@pytest.fixture
def page(browser, live_server, sandbox, django_user_model):  # noqa: F811
    sync.sync_members()
    sync.sync_identities()
    sync.snapshot_quotas()
    sync.sync_api_keys()
    admin_user = django_user_model.objects.create_superuser(
        "admin", "admin@example.com", "pw-admin-1"
    )
    seed_rows(admin_user)
    ARTIFACTS.mkdir(exist_ok=True)
    with signed_in_page(browser, live_server.url, width=WIDTH, height=900) as page:
        yield page


def shoot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{WIDTH}-{name}.png"), full_page=True)


def assert_no_sideways_scroll(page, what: str) -> None:
    sizes = page.evaluate(OVERFLOW)
    assert sizes["window"] == WIDTH
    assert sizes["table"] <= sizes["box"], f"{what}: results table cut: {sizes}"
    assert sizes["boxScroll"] <= sizes["box"], f"{what}: results scroll sideways: {sizes}"
    assert sizes["page"] <= WIDTH, f"{what}: the page scrolls sideways: {sizes}"


def change_page_row(model: str):
    """A row of each model to open its change page (a member with identities,
    so the inline table is measured too)."""
    return {
        "member": lambda: Member.objects.filter(identities__isnull=False).order_by("pk").first(),
        "apikey": lambda: ApiKey.objects.order_by("pk").first(),
        "customevent": CustomEvent.objects.first,
        "webhookdelivery": WebhookDelivery.objects.first,
        "syncrun": lambda: SyncRun.objects.order_by("pk").first(),
    }[model]()


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelist_and_change_page_fit_1280(page, live_server, model):
    page.goto(f"{live_server.url}{ADMIN}/{model}/")
    page.wait_for_selector("#result_list")
    assert page.query_selector_all("#result_list tbody tr"), f"{model}: no rows to measure"
    shoot(page, f"{model}-changelist")
    assert_no_sideways_scroll(page, model)

    page.goto(f"{live_server.url}{ADMIN}/{model}/{change_page_row(model).pk}/change/")
    page.wait_for_selector("#content-main")
    shoot(page, f"{model}-change")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH, model
    for table in page.evaluate(TABLES_OVERFLOW):
        assert table["table"] <= table["box"], f"{model}: table cut: {table}"
    assert page.query_selector_all("fieldset.aligned .form-row label"), model


def assert_full_breadcrumb(page, *trail: str) -> None:
    crumbs = page.inner_text("div.breadcrumbs")
    parts = [part.strip() for part in crumbs.split("›")]
    assert parts == ["Home", "PluginLab", *trail], crumbs
    links = page.query_selector_all("div.breadcrumbs a")
    assert len(links) == len(parts) - 1, crumbs


def assert_aligned_form(page) -> None:
    labels = page.query_selector_all("fieldset.aligned .form-row label:not(.vCheckboxLabel)")
    assert labels, "no aligned labels"
    lefts = {round(label.bounding_box()["x"]) for label in labels if label.is_visible()}
    fields = page.query_selector_all(
        "fieldset.aligned .form-row input:not([type=hidden]):not([type=checkbox]), "
        "fieldset.aligned .form-row select, fieldset.aligned .form-row textarea"
    )
    assert len(lefts) == 1, f"labels not in one column: {lefts}"
    label_box = labels[0].bounding_box()
    starts = {round(field.bounding_box()["x"]) for field in fields}
    # every field in one column beside the labels (Django's aligned layout), not under them
    assert len(starts) == 1, f"fields not in one column: {starts}"
    assert starts.pop() >= label_box["x"] + label_box["width"] - 1


def test_add_api_key_page(page, live_server):
    page.goto(f"{live_server.url}{ADMIN}/apikey/add/")
    shoot(page, "apikey-add")
    assert_full_breadcrumb(page, "API keys", "Add API key")
    assert_aligned_form(page)
    page.fill("#id_description", "layout key")
    page.click("input[name=_save]")
    page.wait_for_selector("code.pl-secret")
    shoot(page, "apikey-secret")
    assert_full_breadcrumb(page, "API keys", "API key created")
    assert page.query_selector("fieldset.aligned .form-row label[for=secret-1]")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


def test_send_event_form(page, live_server):
    page.goto(f"{live_server.url}{ADMIN}/customevent/add/")
    shoot(page, "customevent-send")
    assert_full_breadcrumb(page, "Custom events", "Send a custom usage event")
    assert_aligned_form(page)


def confirm_page(page, live_server, model: str, action: str, search: str = "") -> None:
    page.goto(f"{live_server.url}{ADMIN}/{model}/?q={search}")
    page.check("input.action-select")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    page.wait_for_selector("input[value='Yes, go ahead']")


def test_confirm_pages(page, live_server):
    member = Member.objects.order_by("pk").first()
    for action in ("sync_from_pluginlab", "create_custom_event"):
        confirm_page(page, live_server, "member", action, member.email)
        shoot(page, f"member-confirm-{action}")
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
        crumbs = page.inner_text("div.breadcrumbs")
        assert crumbs.startswith("Home") and "PluginLab" in crumbs and "Members" in crumbs
    assert_aligned_form(page)  # the custom event form on its confirmation page
    key = ApiKey.objects.filter(revoked_at__isnull=True).order_by("pk").first()
    confirm_page(page, live_server, "apikey", "rotate_keys", key.key_id)
    shoot(page, "apikey-confirm-rotate")
    assert_full_breadcrumb(page, "API keys", "Rotate API keys")
    assert_aligned_form(page)


def test_dashboard_fits_1280(page, live_server):
    page.goto(f"{live_server.url}{ADMIN}/dashboard/")
    page.wait_for_selector("svg.pl-chart")
    shoot(page, "dashboard")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    assert page.query_selector_all("svg.pl-chart .pl-axis text"), "no value axis"
    assert "Email and password" in page.inner_text("#content")
