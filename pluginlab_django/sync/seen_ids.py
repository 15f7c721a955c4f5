"""A compact record of the member ids a full sync has seen."""

from __future__ import annotations

import hashlib
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable


def _digest_fingerprint(remote_id: str) -> int:
    digest = hashlib.blake2b(remote_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


#: ``hash`` where it is 64 bits wide (see ``SeenIds``), else a digest.
_fingerprint = hash if sys.hash_info.width >= 64 else _digest_fingerprint


class SeenIds:
    """Member ids seen during a run, 8 bytes each.

    A full sync must remember every id it saw to find the members PluginLab
    stopped listing. A ``set`` of id strings costs ~100 bytes per member
    (10 MB at 100k); 64-bit fingerprints in an ``array`` cost 8. A
    fingerprint collision can only make a vanished member look seen — it is
    then not marked by this run (the safe side: nothing is ever wrongly
    marked), with odds around n² / 2⁶⁵.

    The fingerprint is Python's own ``hash`` of the id (SipHash, keyed per
    process, 64 bits on 64-bit builds; a BLAKE2 digest elsewhere): ids are
    added and looked up within one run, in one process, so it need not be
    stable across processes, and it is several times cheaper than a digest
    on every member of every page.
    """

    def __init__(self) -> None:
        self._fingerprints = array("q")
        self._frozen = False

    def add_many(self, remote_ids: Iterable[str]) -> None:
        if self._frozen:
            raise RuntimeError("SeenIds is frozen")
        self._fingerprints.extend(_fingerprint(remote_id) for remote_id in remote_ids)

    def freeze(self) -> None:
        """Sort for lookups; no more ids may be added."""
        if not self._frozen:
            self._fingerprints = array("q", sorted(self._fingerprints))
            self._frozen = True

    def __contains__(self, remote_id: object) -> bool:
        if not isinstance(remote_id, str):
            return False
        self.freeze()
        fingerprint = _fingerprint(remote_id)
        index = bisect_left(self._fingerprints, fingerprint)
        return index < len(self._fingerprints) and self._fingerprints[index] == fingerprint

    def __len__(self) -> int:
        return len(self._fingerprints)
