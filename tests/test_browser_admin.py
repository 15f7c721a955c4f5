"""The admin in real headless Chromium (Debian's), driven by Playwright,
against a live server and the sandbox. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import pytest

from pluginlab_django import sync
from pluginlab_django.models import Member
from tests.admin_browser import ARTIFACTS, browser, signed_in_page  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser, live_server, sandbox, django_user_model):  # noqa: F811
    sync.sync_members()
    sync.sync_identities()
    sync.snapshot_quotas()
    sync.sync_api_keys()
    django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-1")
    with signed_in_page(browser, live_server.url, width=1400, height=1000) as page:
        yield page


def google_member(sandbox) -> Member:
    revoked = set(sandbox.revoked_refresh_member_ids())
    return next(
        m
        for m in Member.objects.filter(sign_in_method="google").order_by("pk")
        if m.remote_id not in revoked and m.identities.filter(provider="google").exists()
    )


def messages(page) -> str:
    return page.inner_text("ul.messagelist")


def run_action(page, live_server, changelist: str, search: str, action: str) -> None:
    page.goto(f"{live_server.url}{changelist}?q={search}")
    page.check("input.action-select")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    page.click("input[value='Yes, go ahead']")


def test_search_edit_and_save_writes_through(page, live_server, sandbox):
    member = Member.objects.order_by("pk").first()
    page.goto(f"{live_server.url}/admin/pluginlab_django/member/")
    page.fill("#searchbar", member.email)
    page.press("#searchbar", "Enter")
    page.click(f"text={member.email}")
    page.fill("#id_name", "Edited In Chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "member.png"), full_page=True)
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    assert "was changed successfully" in messages(page)
    assert sandbox.get_member(member.remote_id)["name"] == "Edited In Chromium"


def test_refresh_identity_action(page, live_server, sandbox):
    member = google_member(sandbox)
    run_action(
        page,
        live_server,
        "/admin/pluginlab_django/member/",
        member.email,
        "refresh_identity_tokens",
    )
    assert "Google: token refreshed." in messages(page)


def test_api_key_secret_is_shown_once_then_revoked(page, live_server, sandbox):
    page.goto(f"{live_server.url}/admin/pluginlab_django/apikey/add/")
    page.fill("#id_description", "browser key")
    page.click("input[name=_save]")
    secret = page.inner_text("code.pl-secret")
    assert secret.startswith("sk_test_")
    assert page.is_visible("button.pl-copy")
    page.goto(f"{live_server.url}/admin/pluginlab_django/apikey/")
    assert secret not in page.content()
    run_action(page, live_server, "/admin/pluginlab_django/apikey/", "browser", "revoke_keys")
    assert "revoked." in messages(page)
    assert secret not in page.content()


def test_dashboard_charts_render(page, live_server):
    page.goto(f"{live_server.url}/admin/")
    page.click("a:has-text('Dashboard')")
    page.wait_for_selector("svg.pl-chart")
    charts = page.query_selector_all("svg.pl-chart")
    assert len(charts) >= 5
    for chart in charts:
        box = chart.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0
    assert int(page.inner_text("#pl-members-total")) == Member.objects.count()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
