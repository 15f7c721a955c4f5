"""The outbox in the admin (status filter with stuck events, "Send pending
events now", "Resend", dashboard counts) and ``pluginlab_events``."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from pluginlab_django.models import CustomEvent
from pluginlab_django.services.events import record_usage

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:pluginlab_django_customevent_changelist")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def make_stuck(event: CustomEvent) -> None:
    CustomEvent.objects.filter(pk=event.pk).update(
        status="sending", claimed_at=timezone.now() - timedelta(hours=1)
    )


# --- admin ---------------------------------------------------------------------


def test_send_pending_now_needs_no_selection_and_reports(admin_client, sandbox):
    ids = sandbox.member_ids()
    for i in range(4):
        record_usage(ids[i % 2], "API")
    response = admin_client.post(
        CHANGELIST, {"action": "send_pending_now", "index": "0"}, follow=True
    )
    assert messages_of(response) == ["Sent 4, failed 0, still pending 0."]
    assert set(CustomEvent.objects.values_list("status", flat=True)) == {"sent"}


def test_send_pending_now_says_when_pluginlab_is_down(admin_client, sandbox):
    record_usage(sandbox.member_ids()[0], "API")
    sandbox.set_faults(path_prefix="/event", error_rate=1.0, error_status=503)
    response = admin_client.post(
        CHANGELIST, {"action": "send_pending_now", "index": "0"}, follow=True
    )
    (text,) = messages_of(response)
    assert text.startswith("Sent 0, failed 0, still pending 1. PluginLab is unavailable")
    assert CustomEvent.objects.get().status == "pending"


def test_status_filter_shows_stuck_events_and_resend_sends_them(admin_client, sandbox):
    stuck = record_usage(sandbox.member_ids()[0], "API")
    make_stuck(stuck)
    recent = record_usage(sandbox.member_ids()[0], "API")
    CustomEvent.objects.filter(pk=recent.pk).update(status="sending", claimed_at=timezone.now())
    listed = admin_client.get(CHANGELIST, {"status": "stuck"})
    assert [e.pk for e in listed.context["cl"].result_list] == [stuck.pk]
    for status in ("pending", "sending", "sent", "failed"):
        assert admin_client.get(CHANGELIST, {"status": status}).status_code == 200

    response = admin_client.post(
        CHANGELIST,
        {"action": "resend_selected", "index": "0", "_selected_action": [stuck.pk]},
        follow=True,
    )
    assert messages_of(response)[0] == "1 event(s) queued again."
    stuck.refresh_from_db()
    assert stuck.status == "sent"
    recent.refresh_from_db()
    assert recent.status == "sending"  # not selected: left alone


def test_outbox_actions_need_the_create_event_permission(client, django_user_model, sandbox):
    user = django_user_model.objects.create_user("staff", "s@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_customevent"))
    client.force_login(user)
    record_usage(sandbox.member_ids()[0], "API")
    page = client.get(CHANGELIST)
    assert page.status_code == 200 and "send_pending_now" not in page.content.decode()
    client.post(CHANGELIST, {"action": "send_pending_now", "index": "0"})
    assert CustomEvent.objects.get().status == "pending"


def test_dashboard_shows_pending_sending_and_failed_counts(admin_client, sandbox):
    caches["default"].clear()
    ids = sandbox.member_ids()
    record_usage(ids[0], "API")
    make_stuck(record_usage(ids[0], "API"))
    CustomEvent.objects.create(member_remote_id=ids[1], event_source="API", status="failed")
    response = admin_client.get(reverse("admin:pluginlab_django_dashboard_changelist"))
    events = response.context["figures"]["events"]
    assert (events["pending"], events["sending"], events["failed"]) == (1, 1, 1)
    assert events["stuck_sending"] == 1
    html = response.content.decode()
    assert 'id="pl-events-pending">1<' in html and "1 stuck: sender died" in html


# --- pluginlab_events ----------------------------------------------------------


def run(*args: str) -> tuple[str, str, int]:
    out, err = StringIO(), StringIO()
    code = 0
    try:
        call_command("pluginlab_events", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        code = int(exc.code)
    return out.getvalue(), err.getvalue(), code


def test_send_pending_prints_a_summary(sandbox):
    for _ in range(3):
        record_usage(sandbox.member_ids()[0], "API")
    out, _, code = run("send-pending")
    assert (out.split("\n"), code) == (["sent: 3", "failed: 0", "still pending: 0", ""], 0)


def test_send_pending_json_and_exit_status_when_down(sandbox):
    record_usage(sandbox.member_ids()[0], "API")
    sandbox.set_faults(path_prefix="/event", drop_rate=1.0)
    out, _, code = run("send-pending", "--json")
    summary = json.loads(out)
    assert (summary["sent"], summary["still_pending"], code) == (0, 1, 2)
    assert summary["unavailable"]
    sandbox.clear_faults()
    out, _, code = run("send-pending", "--json")
    assert (json.loads(out)["sent"], code) == (1, 0)


def test_send_pending_exit_status_when_refused(sandbox):
    CustomEvent.objects.create(member_remote_id="mem_" + "0" * 40, event_source="API")
    out, _, code = run("send-pending")
    assert "failed: 1" in out and code == 3


def test_list_by_status(sandbox):
    stuck = record_usage(sandbox.member_ids()[0], "API")
    make_stuck(stuck)
    record_usage(sandbox.member_ids()[1], "WEB_UI")
    out, _, _ = run("list", "--status", "pending")
    assert "WEB_UI" in out and "API " not in out
    out, _, _ = run("list", "--status", "stuck", "--json")
    assert [row["pk"] for row in json.loads(out)] == [stuck.pk]
    out, _, _ = run("list", "--status", "failed")
    assert out.strip() == "No events."


def test_bad_arguments_are_a_sentence_not_a_traceback():
    with pytest.raises(CommandError, match="positive"):
        call_command("pluginlab_events", "list", "--limit", "0")
    with pytest.raises(CommandError):
        call_command("pluginlab_events", "list", "--status", "bogus")


def test_send_pending_without_credentials_is_a_command_error(settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "PLUGIN_ID": None}
    with pytest.raises(CommandError, match="PLUGIN_ID"):
        call_command("pluginlab_events", "send-pending")
