"""``manage.py pluginlab_sync``: progress, summary, ``--async``, ``--resume``."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from pluginlab_django import sync
from pluginlab_django.models import ApiKey, Member, QuotaSnapshot, SyncRun

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _eager(celery_eager):
    """Every test here runs tasks in-process."""


def _run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("pluginlab_sync", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_members_with_plain_progress_lines_and_a_summary(sandbox):
    total = len(sandbox.member_ids())
    out, err = _run("members", "--page-size", "10")
    assert f"members: {total}/{total} (100%)" in err
    assert "\r" not in err  # no bar when not a terminal
    assert len(err.strip().splitlines()) <= 11
    assert f"members: {total} created, 0 updated, 0 unchanged, 0 marked deleted" in out
    assert "succeeded" in out
    assert Member.objects.count() == total


def test_all_syncs_every_kind(sandbox):
    out, _err = _run("all")
    for kind in ("members", "identities", "quotas", "apikeys"):
        assert re.search(rf"^  {kind}: .* — succeeded", out, re.MULTILINE), out
    assert QuotaSnapshot.objects.count() == Member.objects.count() > 0
    assert ApiKey.objects.exists()


def test_a_progress_bar_on_a_terminal(sandbox):
    out, err = io.StringIO(), Terminal()
    call_command("pluginlab_sync", "members", "--page-size", "10", stdout=out, stderr=err)
    total = len(sandbox.member_ids())
    assert "\r" in err.getvalue()  # tqdm redraws in place
    assert f"{total}/{total}" in err.getvalue()
    assert "Summary:" in out.getvalue()


def test_async_enqueues_tasks_and_prints_their_ids(sandbox):
    out, _err = _run("members", "apikeys", "--async")
    assert re.search(r"^members: enqueued task [0-9a-f-]{36}$", out, re.MULTILINE), out
    assert re.search(r"^apikeys: enqueued task [0-9a-f-]{36}$", out, re.MULTILINE), out
    assert "identities" not in out
    assert Member.objects.count() == len(sandbox.member_ids())  # eager here


def test_failure_exits_non_zero_with_a_summary(sandbox):
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="members"):
        call_command("pluginlab_sync", "members", stdout=out, stderr=err)
    assert "failed" in out.getvalue()
    assert sandbox.admin_secret not in out.getvalue() + err.getvalue()


def test_resume_continues_a_failed_run(sandbox):
    total = len(sandbox.member_ids())

    def progress(done, _total):
        if done == 20:
            sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth")

    # Fails with a cursor after 20 members.
    failed = sync.sync_members(page_size=10, progress=progress)
    assert failed.status == SyncRun.Status.FAILED
    sandbox.clear_faults()
    out, _err = _run("members", "--resume", "--page-size", "10")
    assert f"members: {total - failed.created} created" in out
    assert Member.objects.count() == total


def test_a_running_sync_is_reported(sandbox):
    SyncRun.objects.create(kind=SyncRun.Kind.MEMBERS, status=SyncRun.Status.RUNNING)
    with pytest.raises(CommandError, match="already running"):
        _run("members")


# Options are checked before anything runs ------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["members", "--page-size", "0"], "--page-size must be between 1 and 100 (got 0)"),
        (["members", "--page-size", "101"], "--page-size must be between 1 and 100 (got 101)"),
        (["identities", "--page-size", "10"], "--page-size applies to the members sync only"),
        (["quotas", "--resume"], "--resume applies to the members sync only"),
        (["members", "--async", "--page-size", "10"], "not available with --async"),
    ],
)
def test_bad_options_are_a_command_error_and_no_run(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        _run(*args)
    assert not SyncRun.objects.exists()


def test_async_without_a_reachable_broker_is_one_line_not_a_traceback():
    """No Celery app configured: Celery's default AMQP broker (localhost:5672)
    is not there. A real process, so the test's eager Celery set-up is not used."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        # An address nothing listens on, whatever runs on this machine.
        "CELERY_BROKER_URL": "amqp://guest:s3cret@127.0.0.1:9//",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "pluginlab_sync", "members", "--async"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "kombu" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("CommandError")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(
        "CommandError: Could not enqueue the members sync: the Celery broker"
    )
    assert "without --async" in errors[0]
    assert "s3cret" not in done.stderr  # the broker password is never shown
