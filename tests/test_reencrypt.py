"""``manage.py pluginlab_reencrypt``: the README's key rotation (new key first,
run the command, retire the old key) loses no token, even interrupted."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.management import CommandError, call_command

from pluginlab_django import key_rotation
from pluginlab_django.fields import UNKNOWN_KEY, current_fingerprint
from pluginlab_django.models import Identity, Member
from tests.member_rows import make_members

pytestmark = pytest.mark.django_db

ROWS = 3000


def use_keys(settings, *keys: str) -> None:
    settings.PLUGINLAB = {**settings.PLUGINLAB, "FIELD_ENCRYPTION_KEYS": list(keys)}


def make_identities(count: int, *, fingerprint: str | None = None) -> dict[int, tuple]:
    """``count`` identities under the current first key; {pk: (access, refresh)}."""
    members = make_members(count, over_every=10**9)
    Identity.objects.bulk_create(
        Identity(
            member=m,
            provider="google",
            provider_user_id=f"g-{i}",
            access_token=f"at-{i}",
            refresh_token=f"rt-{i}" if i % 3 else None,
            key_fingerprint=current_fingerprint() if fingerprint is None else fingerprint,
        )
        for i, m in enumerate(members)
    )
    return dict(
        (pk, (a, r))
        for pk, a, r in Identity.objects.values_list("pk", "access_token", "refresh_token")
    )


def reencrypt(*args: str) -> dict:
    out = StringIO()
    call_command("pluginlab_reencrypt", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_rotation_interrupted_resumed_then_old_key_retired(settings, monkeypatch):
    old_key, new_key = (
        settings.PLUGINLAB["FIELD_ENCRYPTION_KEYS"][0],
        Fernet.generate_key().decode(),
    )
    expected = make_identities(ROWS)
    use_keys(settings, new_key, old_key)  # step 1: the new key first

    real_write, writes = key_rotation._write, []

    def write_then_die(*args):
        if len(writes) == 2:
            raise KeyboardInterrupt
        writes.append(real_write(*args))
        return writes[-1]

    monkeypatch.setattr(key_rotation, "_write", write_then_die)
    with pytest.raises(CommandError, match="Interrupted after 1000 rotated") as info:
        call_command("pluginlab_reencrypt", "--batch-size", "500")
    assert info.value.returncode == 130
    monkeypatch.setattr(key_rotation, "_write", real_write)

    assert reencrypt("--dry-run") == {
        "rotated": ROWS - 1000,
        "already_current": 1000,
        "undecryptable": 0,
        "changed_meanwhile": 0,
        "batches": 2,
        "dry_run": True,
    }
    summary = reencrypt("--batch-size", "500")  # step 2, resumed
    assert (summary["rotated"], summary["already_current"]) == (ROWS - 1000, 1000)
    assert reencrypt()["rotated"] == 0  # nothing left

    use_keys(settings, new_key)  # step 3: retire the old key
    rows = Identity.objects.values_list("pk", "access_token", "refresh_token")
    assert {pk: (a, r) for pk, a, r in rows} == expected
    assert not [m for m in run_checks(databases=["default"]) if m.id.startswith("pluginlab.W01")]


def test_undecryptable_and_legacy_rows_are_counted_and_marked(settings):
    lost_key = Fernet.generate_key().decode()
    keep_key = settings.PLUGINLAB["FIELD_ENCRYPTION_KEYS"][0]
    use_keys(settings, lost_key)
    lost = make_identities(2, fingerprint="")  # legacy rows: no fingerprint yet
    use_keys(settings, keep_key)
    Identity.objects.filter(pk=max(lost)).update(key_fingerprint="", access_token=None)
    legacy = Identity.objects.create(
        member=Member.objects.create(remote_id="mem_legacy", email="legacy@example.com"),
        provider="gitlab",
        access_token="legacy-at",
    )
    Identity.objects.filter(pk=legacy.pk).update(key_fingerprint="")
    assert {m.id for m in run_checks(databases=["default"])} >= {"pluginlab.W013"}

    out, err = StringIO(), StringIO()
    call_command("pluginlab_reencrypt", stdout=out, stderr=err)
    assert "1 identity row(s) re-encrypted" in out.getvalue()
    assert "2 undecryptable" in out.getvalue() and "cannot be decrypted" in err.getvalue()
    assert Identity.objects.get(pk=legacy.pk).key_fingerprint == current_fingerprint()
    assert set(Identity.objects.filter(pk__in=lost).values_list("key_fingerprint", flat=True)) == {
        UNKNOWN_KEY
    }
    assert "pluginlab.W012" in {m.id for m in run_checks(databases=["default"])}


def test_bad_batch_size_is_a_sentence_not_a_traceback():
    with pytest.raises(CommandError, match="positive number"):
        call_command("pluginlab_reencrypt", "--batch-size", "0")


def test_a_row_a_sync_rewrote_meanwhile_is_not_overwritten(settings, monkeypatch):
    old_key = settings.PLUGINLAB["FIELD_ENCRYPTION_KEYS"][0]
    make_identities(3)
    use_keys(settings, Fernet.generate_key().decode(), old_key)
    target = Identity.objects.order_by("pk").first()
    real_write = key_rotation._write

    def sync_meanwhile(*args):
        target.access_token = "fresh-from-pluginlab"
        target.save(update_fields=["access_token"])
        return real_write(*args)

    monkeypatch.setattr(key_rotation, "_write", sync_meanwhile)
    summary = reencrypt()
    assert (summary["rotated"], summary["changed_meanwhile"]) == (2, 1)
    assert Identity.objects.get(pk=target.pk).access_token == "fresh-from-pluginlab"
