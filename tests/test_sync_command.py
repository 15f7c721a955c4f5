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
