"""``manage.py pluginlab_doctor`` and the django-health-check backends
(issue 14, item 2), against the sandbox over real HTTP."""

from __future__ import annotations

import importlib.util
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pluginlab_django import sync
from pluginlab_django.health import Result, doctor_check, registered_checks
from pluginlab_django.health import registry as health_registry
from pluginlab_django.management.commands.pluginlab_doctor import Command
from pluginlab_django.models import WebhookDelivery
from pluginlab_django.testing import Sandbox

pytestmark = pytest.mark.django_db


def doctor(*args: str) -> tuple[int, str, str]:
    """Run the command as manage.py would: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    command = Command(stdout=out, stderr=err)
    try:
        command.run_from_argv(["manage.py", "pluginlab_doctor", "--no-color", *args])
        status = 0
    except SystemExit as exc:
        status = exc.code
    return status, out.getvalue(), err.getvalue()


def line(output: str, name: str) -> str:
    (found,) = [row for row in output.splitlines() if row.split()[1:2] == [name]]
    return found


def test_healthy_sandbox_exits_0_with_one_line_per_item(sandbox):
    sync.sync_members()
    status, out, err = doctor()
    assert status == 0, out + err
    names = [c.name for c in registered_checks()]
    assert len(out.splitlines()) == len(names)
    for name in ("pluginlab.auth", "pluginlab.cert", "pluginlab.monetization", "plugipay.apikeys"):
        row = line(out, name)
        assert row.startswith("ok ") and " ms" in row, row
    assert "mem_" not in line(out, "pluginlab.auth")  # no member data in the report
    assert sandbox.keyring.current[0] in line(out, "pluginlab.cert")
    assert line(out, "sync.members").startswith("ok ")
    assert line(out, "settings").startswith("ok ")


def test_wrong_auth_url_path_fails_naming_host_and_why(sandbox, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "AUTH_URL": f"{sandbox.url}/wrong"}
    status, out, err = doctor()
    assert status == 1
    row = line(out, "pluginlab.auth")
    assert row.startswith("fail") and f"{sandbox.url}/wrong" in row
    assert "404" in row and "AUTH_URL's path" in row
    assert "pluginlab.auth" in err  # CommandError: 1 of N items failed: …


def test_wrong_secret_fails_as_refused_credentials(sandbox, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "ADMIN_SECRET": "not-the-secret"}
    status, out, _ = doctor()
    assert status == 1
    row = line(out, "pluginlab.auth")
    assert row.startswith("fail") and "refused the credentials" in row and "401" in row
    assert "not-the-secret" not in out


def test_wrong_plugipay_secret_fails(sandbox, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "PLUGIPAY_SECRET": "sk_test_wrong"}
    status, out, _ = doctor()
    assert status == 1
    assert line(out, "plugipay.apikeys").startswith("fail")
    assert "refused the credentials" in line(out, "plugipay.apikeys")


def test_stopped_sandbox_exits_1_and_says_which_host(settings):
    with Sandbox(members=3, seed=3) as stopped:
        settings.PLUGINLAB = {**settings.PLUGINLAB, **stopped.pluginlab_settings()}
    status, out, _ = doctor()
    assert status == 1
    for name, setting in (
        ("pluginlab.auth", "AUTH_URL"),
        ("pluginlab.cert", "CERT_URL"),
        ("plugipay.apikeys", "PLUGIPAY_BASE_URL"),
    ):
        row = line(out, name)
        assert row.startswith("fail") and setting in row and "cannot be reached" in row, row
    assert stopped.url in line(out, "pluginlab.auth")


def test_json_shape(sandbox):
    WebhookDelivery.objects.create(delivery_id="d1", event="member.updated", body="{}")
    status, out, _ = doctor("--json")
    assert status == 0
    document = json.loads(out)
    assert document["healthy"] is True
    by_name = {item["name"]: item for item in document["checks"]}
    assert set(by_name) == {c.name for c in registered_checks()}
    for item in document["checks"]:
        assert set(item) == {"name", "status", "summary", "remote", "latency_ms", "details"}
        assert item["status"] in ("ok", "warn", "fail")
    assert by_name["pluginlab.auth"]["remote"] is True
    assert by_name["pluginlab.auth"]["latency_ms"] > 0
    assert by_name["pluginlab.cert"]["details"]["kids"]
    assert by_name["webhooks.deliveries"]["details"] == {"waiting": 1, "failed": 0, "stuck": 0}


def test_json_when_failing_still_prints_the_document(settings):
    with Sandbox(members=3, seed=3) as stopped:
        settings.PLUGINLAB = {**settings.PLUGINLAB, **stopped.pluginlab_settings()}
    status, out, _ = doctor("--json")
    assert status == 1 and json.loads(out)["healthy"] is False


def test_local_only_never_calls_the_remote(settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "AUTH_URL": "http://127.0.0.1:9/auth"}
    status, out, _ = doctor("--local")
    assert "pluginlab.auth" not in out and status == 0


def test_invalid_settings_are_an_item_not_a_traceback(settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "TOKEN_LEEWAY": "30"}
    status, out, _ = doctor("--local")
    assert status == 1
    assert line(out, "settings").startswith("fail") and "TOKEN_LEEWAY" in line(out, "settings")


def test_a_new_check_is_one_decorator(monkeypatch):
    monkeypatch.setattr(health_registry, "_registry", dict(health_registry._registry))

    @doctor_check("tests.broken")
    def broken() -> Result:
        raise RuntimeError("boom")

    with pytest.raises(CommandError, match=r"tests\.broken"):
        call_command("pluginlab_doctor", "--local", stdout=io.StringIO())


# django-health-check ---------------------------------------------------------

#: The extra is installed by requirements/dev.txt (the main CI leg, where these
#: run); django-health-check 4 needs Django >= 5, so the Django 4.2 leg has none.
needs_health_check = pytest.mark.skipif(
    importlib.util.find_spec("health_check") is None,
    reason="django-health-check is not installed (it needs Django >= 5)",
)


@needs_health_check
@pytest.mark.urls("tests.urls_health")
def test_health_check_views(sandbox, client):
    ready = client.get("/readyz/", {"format": "json"})
    assert ready.status_code == 200, ready.content
    assert list(ready.json().values()) == ["OK"]
    assert client.get("/livez/", {"format": "json"}).status_code == 200
    assert client.get("/ht/cert/", {"format": "json"}).json() == {
        "PluginLabDoctor(item='pluginlab.cert')": "OK"
    }


@needs_health_check
@pytest.mark.urls("tests.urls_health")
def test_health_check_views_with_the_remote_down(client, settings):
    with Sandbox(members=3, seed=3) as stopped:
        settings.PLUGINLAB = {**settings.PLUGINLAB, **stopped.pluginlab_settings()}
    ready = client.get("/readyz/", {"format": "json"})
    assert ready.status_code == 500
    (message,) = ready.json().values()
    assert "pluginlab.auth" in message and "cannot be reached" in message
    # Liveness never calls the remote: still alive.
    assert client.get("/livez/", {"format": "json"}).status_code == 200


@needs_health_check
@pytest.mark.urls("tests.urls_health")
def test_liveness_fails_on_invalid_settings(client, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "SYNC_PAGE_SIZE": 500}
    live = client.get("/livez/", {"format": "json"})
    assert live.status_code == 500 and "SYNC_PAGE_SIZE" in str(live.json())
