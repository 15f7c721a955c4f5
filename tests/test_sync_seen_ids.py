"""``SeenIds``: the ids a full sync saw, as 8-byte fingerprints (Python's
``hash`` on 64-bit builds, a BLAKE2 digest elsewhere)."""

from __future__ import annotations

import pytest

from pluginlab_django.sync import seen_ids
from pluginlab_django.sync.seen_ids import SeenIds

pytestmark = pytest.mark.no_db

IDS = [f"mem_{n:040x}" for n in range(5000)]


@pytest.fixture(params=["hash", "digest"])
def fingerprint(request, monkeypatch):
    if request.param == "digest":
        monkeypatch.setattr(seen_ids, "_fingerprint", seen_ids._digest_fingerprint)
    return request.param


def test_seen_ids_are_found_and_others_are_not(fingerprint):
    seen = SeenIds()
    seen.add_many(IDS[::2])
    seen.add_many(iter(IDS[1::4]))
    assert len(seen) == 2500 + 1250
    assert all(member_id in seen for member_id in IDS[::2])
    assert all(member_id in seen for member_id in IDS[1::4])
    assert not any(member_id in seen for member_id in IDS[3::4])
    assert "" not in seen and 42 not in seen


def test_no_ids_may_be_added_once_looked_up(fingerprint):
    seen = SeenIds()
    seen.add_many(IDS[:3])
    assert IDS[0] in seen
    with pytest.raises(RuntimeError):
        seen.add_many(IDS[3:4])


def test_fingerprints_fit_the_8_byte_array():
    assert seen_ids._fingerprint is hash  # this machine is a 64-bit build
    seen = SeenIds()
    seen.add_many(IDS)
    seen.freeze()
    assert seen._fingerprints.itemsize == 8
    assert all(-(2**63) <= seen_ids._digest_fingerprint(m) < 2**63 for m in IDS[:100])
