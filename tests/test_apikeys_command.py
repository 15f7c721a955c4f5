"""``manage.py pluginlab_apikeys``: every subcommand against the sandbox over
real HTTP, run as from a terminal (exit status, stdout, stderr)."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import timedelta

import pytest
from django.core.management import call_command, execute_from_command_line
from django.db import connections
from django.utils import timezone

from pluginlab_django.clients.plugipay import PlugipayClient
from pluginlab_django.models import ApiKey
from pluginlab_django.services import apikeys as apikey_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(capsys, monkeypatch):
    """Run the command as ``manage.py`` would: (exit status, stdout, stderr).

    In this process, so it sees the test database: ``run_from_argv`` would
    close the connections at the end, as a terminal run may.
    """
    monkeypatch.setattr(connections, "close_all", lambda: None)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            execute_from_command_line(["manage.py", "pluginlab_apikeys", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


def records(sandbox) -> dict:
    return sandbox.plugipay.records


def client_for(sandbox, key_id: str, secret: str) -> PlugipayClient:
    return PlugipayClient(key_id=key_id, secret=secret, base_url=f"{sandbox.url}/plugipay")


def created_json(run, *args: str) -> dict:
    code, out, err = run("create", *args, "--json")
    assert code == 0, err
    return json.loads(out)


# list / audit ---------------------------------------------------------------------


def test_list_shows_every_key_with_age_and_state(run, sandbox):
    code, out, err = run("list", "--json")
    assert code == 0, err
    keys = json.loads(out)
    assert {k["id"] for k in keys} == set(records(sandbox))
    assert {"id", "keyId", "description", "scope", "mode", "createdAt", "revokedAt"} <= set(keys[0])
    assert {k["state"] for k in keys} == {"active", "revoked"}
    assert all(isinstance(k["ageDays"], int) for k in keys)
    assert ApiKey.objects.count() == len(keys)  # the mirror was updated on the way

    code, out, _ = run("list", "--active", "--json")
    assert code == 0 and {k["state"] for k in json.loads(out)} == {"active"}
    code, out, _ = run("list", "--revoked", "--json")
    assert code == 0 and {k["state"] for k in json.loads(out)} == {"revoked"}
    code, out, _ = run("list")
    assert code == 0 and sandbox.plugipay_key_id in out
    assert run("list", "--active", "--revoked")[0] == 2
    # Django's own options are accepted after the subcommand too.
    code, out, err = run("list", "--json", "-v", "0", "--no-color", "--skip-checks")
    assert code == 0 and json.loads(out), err


def test_list_shows_a_scheduled_revocation(run, sandbox):
    key = apikey_service.create_api_key(description="soon").record
    apikey_service.schedule_revocation(key, timezone.now() + timedelta(hours=2))
    _code, out, _ = run("list", "--json")
    (row,) = [k for k in json.loads(out) if k["id"] == key.record_id]
    assert row["state"].startswith("revocation scheduled ")
    assert row["revocationScheduledAt"]


def test_audit_exits_1_when_an_active_key_is_too_old(run, sandbox):
    code, out, err = run("audit", "--json")
    assert code == 0, err
    active = json.loads(out)["active"]
    assert {k["keyId"] for k in active} == {
        r["keyId"] for r in records(sandbox).values() if not r["revokedAt"]
    }
    with sandbox.plugipay.lock:  # every key minted today but one, 400 days ago
        for other in records(sandbox).values():
            other["createdAt"] = timezone.now().isoformat()
        record = next(
            r for r in records(sandbox).values() if r["description"] == "Checkout backend"
        )
        record["createdAt"] = (timezone.now() - timedelta(days=400)).isoformat()
    code, out, err = run("audit", "--older-than", "90", "--json")
    assert code == 1
    assert json.loads(out)["tooOld"] == [record["keyId"]]
    assert record["keyId"] in err and "older than 90 days" in err
    code, out, _ = run("audit", "--older-than", "500")
    assert code == 0 and "400d old" in out
    assert run("audit", "--older-than", "-1")[0] == 2
    assert run("audit", "--older-than", "many")[0] == 2


# create ---------------------------------------------------------------------------


def test_create_prints_the_secret_once_as_json(run, sandbox):
    data = created_json(run, "--description", "ci: billing", "--scope", "plugipay:checkout:*")
    assert set(data) == {"id", "keyId", "secret", "scope", "description"}
    assert data["secret"].startswith("sk_test_") and data["keyId"].startswith("pk_test_")
    assert records(sandbox)[data["id"]]["secret"] == data["secret"]
    assert (data["scope"], data["description"]) == ("plugipay:checkout:*", "ci: billing")
    client_for(sandbox, data["keyId"], data["secret"]).list_api_keys()  # it works


def test_create_refuses_to_print_a_secret_into_the_terminal(run, sandbox):
    before = len(records(sandbox))
    code, out, err = run("create", "--description", "oops")
    assert code == 2 and "--env-file" in err and "--json" in err
    assert out == "" and len(records(sandbox)) == before


def test_create_writes_an_env_file_0600_and_refuses_to_overwrite(run, sandbox, tmp_path):
    path = tmp_path / "billing.env"
    code, out, err = run("create", "--description", "billing", "--env-file", str(path))
    assert code == 0, err
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert set(lines) == {"PLUGIPAY_KEY_ID", "PLUGIPAY_SECRET"}
    assert (
        records(sandbox)[ApiKey.objects.get(key_id=lines["PLUGIPAY_KEY_ID"]).record_id]["secret"]
        == lines["PLUGIPAY_SECRET"]
    )
    assert lines["PLUGIPAY_SECRET"] not in out + err and lines["PLUGIPAY_KEY_ID"] in out

    before, content = len(records(sandbox)), path.read_text()
    code, out, err = run("create", "--description", "again", "--env-file", str(path))
    assert code == 2 and "--force" in err
    assert path.read_text() == content and len(records(sandbox)) == before

    os.chmod(path, 0o644)
    code, _, err = run("create", "--description", "again", "--env-file", str(path), "--force")
    assert code == 0, err
    assert path.read_text() != content
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["billing.env"]  # no temporary left


def test_create_into_a_missing_directory_mints_nothing(run, sandbox, tmp_path):
    before = len(records(sandbox))
    code, _, err = run("create", "--description", "x", "--env-file", str(tmp_path / "no/a.env"))
    assert code == 2 and "Cannot create" in err
    assert len(records(sandbox)) == before


def test_create_refused_by_plugipay_exits_1_with_code_and_request_id(run, sandbox, tmp_path):
    path = tmp_path / "bad.env"
    code, _out, err = run("create", "--description", "x", "--scope", "bad", "--env-file", str(path))
    assert code == 1
    assert "validation_error" in err and "request id req_" in err
    assert not path.exists()  # the reserved file is removed again


def test_a_key_without_apikey_write_is_refused(run, sandbox, settings):
    data = created_json(run, "--description", "reader", "--scope", "plugipay:customer:read")
    settings.PLUGINLAB = {
        **settings.PLUGINLAB,
        "PLUGIPAY_KEY_ID": data["keyId"],
        "PLUGIPAY_SECRET": data["secret"],
    }
    before = len(records(sandbox))
    code, _, err = run("create", "--description", "nope", "--json")
    assert code == 1 and "forbidden" in err and "request id req_" in err
    assert len(records(sandbox)) == before
    victim = next(r for r in records(sandbox).values() if r["description"] == "Checkout backend")
    code, _, err = run("revoke", victim["id"])
    assert code == 1 and "forbidden" in err
    assert victim["revokedAt"] is None


def test_plugipay_down_exits_1_and_changes_nothing(run, sandbox, tmp_path):
    sandbox.set_faults(drop_rate=1.0, path_prefix="/plugipay")
    for args in (
        ("list",),
        ("audit",),
        ("create", "--description", "x", "--env-file", str(tmp_path / "x.env")),
        ("revoke", "apk_whatever"),
        ("rotate", "apk_whatever", "--overlap", "1h", "--json"),
    ):
        code, _out, err = run(*args)
        assert code == 1, args
        assert "unreachable" in err, args
    assert not (tmp_path / "x.env").exists()


# revoke -----------------------------------------------------------------------------


def test_revoke_by_record_id_then_again(run, sandbox):
    data = created_json(run, "--description", "tmp")
    code, out, err = run("revoke", data["id"])
    assert code == 0 and "revoked." in out, err
    assert records(sandbox)[data["id"]]["revokedAt"] is not None
    code, out, err = run("revoke", data["id"], "--json")
    assert code == 0, err
    assert json.loads(out)["alreadyRevoked"] is True and json.loads(out)["state"] == "revoked"


def test_revoke_by_public_key_id(run, sandbox):
    data = created_json(run, "--description", "tmp")
    code, out, err = run("revoke", data["keyId"], "--json")
    assert code == 0, err
    assert json.loads(out)["id"] == data["id"] and json.loads(out)["alreadyRevoked"] is False
    assert records(sandbox)[data["id"]]["revokedAt"] is not None


def test_revoke_unknown_exits_1_and_bad_ids_are_usage_errors(run, sandbox):
    code, _, err = run("revoke", "apk_doesnotexist")
    assert code == 1 and "no API key apk_doesnotexist" in err
    code, _, err = run("revoke", "pk_test_nope")
    assert code == 1 and "pk_test_nope" in err
    assert run("revoke", "sk_test_secret")[0] == 2
    assert run("revoke")[0] == 2


def test_the_sites_own_key_is_refused(run, sandbox):
    own = sandbox.plugipay_key_id
    for args in (("revoke", own), ("rotate", own, "--overlap", "24h", "--json")):
        before = len(records(sandbox))
        code, out, err = run(*args)
        assert code == 1, args
        assert "own key" in err and "mint a successor" in err and "sk_" not in out
        assert len(records(sandbox)) == before
    assert all(not r["revokedAt"] for r in records(sandbox).values() if r["keyId"] == own)
    assert ApiKey.objects.get(key_id=own).revoke_scheduled_at is None


# rotate / revoke-due / cancel-revocation -------------------------------------------------


def test_rotate_mints_a_successor_and_schedules_the_old_key(run, sandbox):
    old = created_json(run, "--description", "svc", "--scope", "plugipay:checkout:*")
    code, out, err = run("rotate", old["keyId"], "--overlap", "24h", "--json")
    assert code == 0, err
    new = json.loads(out)
    assert new["secret"].startswith("sk_test_") and new["scope"] == "plugipay:checkout:*"
    today = timezone.now().strftime("%Y-%m-%d")
    assert new["description"] == f"svc (rotation {today})"
    assert new["replaces"]["id"] == old["id"] and "secret" not in new["replaces"]
    row = ApiKey.objects.get(record_id=old["id"])
    assert row.revoked_at is None
    assert timedelta(hours=23, minutes=59) < row.revoke_scheduled_at - timezone.now()
    assert "will be revoked at" in err
    # Both keys work during the overlap.
    client_for(sandbox, new["keyId"], new["secret"]).list_api_keys()
    client_for(sandbox, old["keyId"], old["secret"]).list_api_keys()

    code, out, _ = run("revoke-due", "--json")
    assert code == 0 and json.loads(out) == []  # not due yet
    ApiKey.objects.filter(pk=row.pk).update(revoke_scheduled_at=timezone.now())
    code, out, err = run("revoke-due", "--json")
    assert code == 0, err
    assert [(k["id"], k["revoked"]) for k in json.loads(out)] == [(old["id"], True)]
    assert records(sandbox)[old["id"]]["revokedAt"] is not None
    assert records(sandbox)[new["id"]]["revokedAt"] is None


def test_rotate_with_no_overlap_revokes_at_once(run, sandbox, tmp_path):
    old = created_json(run, "--description", "svc (rotation 2020-01-01)")
    path = tmp_path / "svc.env"
    code, _out, err = run("rotate", old["id"], "--overlap", "0", "--env-file", str(path))
    assert code == 0, err
    assert "revoked now" in err and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert records(sandbox)[old["id"]]["revokedAt"] is not None
    new_id = path.read_text().splitlines()[0].split("=", 1)[1]
    new = ApiKey.objects.get(key_id=new_id)
    assert new.description.count("(rotation") == 1  # the old suffix is replaced


def test_rotate_usage_errors_mint_nothing(run, sandbox, tmp_path):
    old = created_json(run, "--description", "svc")
    before = len(records(sandbox))
    assert run("rotate", old["id"], "--json")[0] == 2  # --overlap is required
    code, _, err = run("rotate", old["id"], "--overlap", "soon", "--json")
    assert code == 2 and "not a duration" in err
    code, _, err = run("rotate", old["id"], "--overlap", "1h")
    assert code == 2 and "--env-file" in err
    run("revoke", old["id"])
    code, _, err = run("rotate", old["id"], "--overlap", "1h", "--json")
    assert code == 1 and "only active keys rotate" in err
    assert len(records(sandbox)) == before


def test_cancel_revocation(run, sandbox):
    old = created_json(run, "--description", "svc")
    assert run("rotate", old["id"], "--overlap", "7d", "--json")[0] == 0
    code, out, err = run("cancel-revocation", old["keyId"], "--json")
    assert code == 0, err
    assert json.loads(out)["cancelled"] is True and json.loads(out)["state"] == "active"
    code, out, _ = run("cancel-revocation", old["id"])
    assert code == 0 and "no revocation was scheduled" in out
    ApiKey.objects.filter(record_id=old["id"]).update(revoke_scheduled_at=timezone.now())
    ApiKey.objects.filter(record_id=old["id"]).update(revoke_scheduled_at=None)
    assert json.loads(run("revoke-due", "--json")[1]) == []
    assert records(sandbox)[old["id"]]["revokedAt"] is None
    assert run("cancel-revocation", "apk_unknown")[0] == 1


def test_revoke_due_failure_exits_1_and_keeps_the_schedule(run, sandbox):
    old = created_json(run, "--description", "svc")
    run("rotate", old["id"], "--overlap", "1m", "--json")
    ApiKey.objects.filter(record_id=old["id"]).update(revoke_scheduled_at=timezone.now())
    sandbox.set_faults(drop_rate=1.0, path_prefix="/plugipay")
    code, _out, err = run("revoke-due")
    assert code == 1 and "stay scheduled" in err
    assert ApiKey.objects.get(record_id=old["id"]).revoke_scheduled_at is not None
    sandbox.clear_faults()
    assert run("revoke-due")[0] == 0
    assert records(sandbox)[old["id"]]["revokedAt"] is not None


# secrets ----------------------------------------------------------------------------


def test_no_secret_in_the_database_logs_or_other_json(run, sandbox, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    created = created_json(run, "--description", "a")
    _code, out, _ = run("rotate", created["id"], "--overlap", "1h", "--json")
    rotated = json.loads(out)
    secrets = {created["secret"], rotated["secret"]}
    others = [
        run(*args)
        for args in (
            ("list", "--json"),
            ("audit", "--json"),
            ("revoke-due", "--json"),
            ("cancel-revocation", created["id"], "--json"),
            ("revoke", created["id"], "--json"),
            ("list",),
        )
    ]
    dump = tmp_path / "dump.json"
    call_command("dumpdata", "pluginlab_django", output=str(dump))
    haystacks = [caplog.text, dump.read_text()] + [out + err for _, out, err in others]
    for secret in secrets:
        assert all(secret not in text for text in haystacks)
    assert "sk_test_" not in dump.read_text()
