"""A compact record of the member ids a full sync has seen."""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable


def _fingerprint(remote_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(remote_id.encode(), digest_size=8).digest(), "big")


class SeenIds:
    """Member ids seen during a run, 8 bytes each.

    A full sync must remember every id it saw to find the members PluginLab
    stopped listing. A ``set`` of id strings costs ~100 bytes per member
    (10 MB at 100k); 64-bit fingerprints in an ``array`` cost 8. A
    fingerprint collision can only make a vanished member look seen — it is
    then not marked by this run (the safe side: nothing is ever wrongly
    marked), with odds around n² / 2⁶⁵.
    """

    def __init__(self) -> None:
        self._fingerprints = array("Q")
        self._frozen = False

    def add_many(self, remote_ids: Iterable[str]) -> None:
        if self._frozen:
            raise RuntimeError("SeenIds is frozen")
        self._fingerprints.extend(_fingerprint(remote_id) for remote_id in remote_ids)

    def freeze(self) -> None:
        """Sort for lookups; no more ids may be added."""
        if not self._frozen:
            self._fingerprints = array("Q", sorted(self._fingerprints))
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
