"""The sandbox's in-memory PluginLab state, safe to use from many threads.

Members sit in an append-only ordered list (deleted slots become ``None``)
plus a dict index, so a page costs O(page size) and the order is stable
across pages. The list call is served as bytes (``page_json``) built from
each member's encoded JSON (made when the members are loaded, or on first
listing after a change), kept until that member changes: a page is then
a join of 100 cached strings instead of a deep copy and a fresh encode of
every member, which made the sandbox a visible share of a benchmarked sync.
Quota state outlives a member: PluginLab keys it by the id, which is derived
from the email, so re-creating a member keeps its usage.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from . import seeding

PATCHABLE = ("name", "givenName", "familyName", "pictureUrl", "metadata", "isVerified")

Notify = Callable[[str, dict[str, Any]], None]


def encode_json(value: Any) -> bytes:
    """JSON exactly as ``wire.Response`` sends it (compact, ASCII)."""
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"p{position}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not raw.startswith("p") or not raw[1:].isdigit():
        return None
    return int(raw[1:])


class MemberStore:
    """Members, identities and quotas; ``notify`` hears every change."""

    def __init__(self, notify: Notify | None = None) -> None:
        self.lock = threading.RLock()
        self.notify: Notify = notify or (lambda event, member: None)
        self.load(seeding.SeedData())

    def load(self, data: seeding.SeedData) -> None:
        with self.lock:
            self._order: list[str | None] = [m["id"] for m in data.members]
            self._position = {mid: i for i, mid in enumerate(self._order)}
            self._members = {m["id"]: m for m in data.members}
            #: Encoded member JSON by id, made here rather than while a page
            #: is being answered; dropped whenever the member changes.
            self._encoded: dict[str, bytes] = {m["id"]: encode_json(m) for m in data.members}
            self._emails = {m["email"].lower(): m["id"] for m in data.members}
            self._identities = data.identities
            self._quotas = data.quotas
            self._revoked = set(data.revoked_refresh)
            self.seeded_ids = [m["id"] for m in data.members]

    # --- members -------------------------------------------------------
    def page(self, limit: int, start_after: str | None) -> dict[str, Any] | None:
        """One page of the list call; ``None`` when the cursor is unusable."""
        body = self.page_json(limit, start_after)
        return None if body is None else json.loads(body)

    def page_json(self, limit: int, start_after: str | None) -> bytes | None:
        """The list call's response body (``{"items", "total", "nextPageToken"}``,
        the bytes ``wire.Response`` would send for it); ``None`` when the cursor
        is unusable."""
        with self.lock:
            start = 0
            if start_after:
                position = decode_cursor(start_after)
                if position is None and start_after in self._position:
                    position = self._position[start_after] + 1
                if position is None:
                    return None
                start = position
            items: list[bytes] = []
            i = start
            while i < len(self._order) and len(items) < limit:
                mid = self._order[i]
                if mid is not None:
                    items.append(self._encoded_member(mid))
                i += 1
            while i < len(self._order) and self._order[i] is None:
                i += 1
            token = encode_cursor(i) if i < len(self._order) else None
            return b"".join(
                (
                    b'{"items":[',
                    b",".join(items),
                    b'],"total":',
                    str(len(self._members)).encode(),
                    b',"nextPageToken":',
                    encode_json(token),
                    b"}",
                )
            )

    def _encoded_member(self, member_id: str) -> bytes:
        encoded = self._encoded.get(member_id)
        if encoded is None:
            encoded = self._encoded[member_id] = encode_json(self._members[member_id])
        return encoded

    def get(self, member_id: str) -> dict[str, Any] | None:
        with self.lock:
            member = self._members.get(member_id)
            return copy.deepcopy(member) if member else None

    def get_by_email(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            mid = self._emails.get(email.strip().lower())
            return self.get(mid) if mid else None

    def create(
        self, email: str, *, is_verified: bool = False, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The new member, or ``None`` when the email is taken."""
        with self.lock:
            if email.strip().lower() in self._emails:
                return None
            member = seeding.new_member(
                email.strip(), now_ms=now_ms(), is_verified=is_verified, metadata=metadata
            )
            mid = member["id"]
            self._members[mid] = member
            self._emails[email.strip().lower()] = mid
            self._position[mid] = len(self._order)
            self._order.append(mid)
            self._quotas.setdefault(mid, seeding.new_quota())
            result = copy.deepcopy(member)
        self.notify("member.created", result)
        return result

    def update(self, member_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Patch: only known fields; ``metadata`` replaced whole."""
        with self.lock:
            member = self._members.get(member_id)
            if member is None:
                return None
            for name in PATCHABLE:
                if name not in fields:
                    continue
                if name == "isVerified":
                    member["auth"]["isVerified"] = bool(fields[name])
                elif name == "metadata":
                    member["metadata"] = copy.deepcopy(fields[name] or {})
                else:
                    member[name] = fields[name]
            member["updatedAtMs"] = max(now_ms(), member["updatedAtMs"] + 1)
            self._encoded.pop(member_id, None)
            result = copy.deepcopy(member)
        self.notify("member.updated", result)
        return result

    def delete(self, member_id: str) -> bool:
        with self.lock:
            member = self._members.pop(member_id, None)
            if member is None:
                return False
            self._encoded.pop(member_id, None)
            self._order[self._position.pop(member_id)] = None
            self._emails.pop(member["email"].lower(), None)
            self._identities.pop(member_id, None)
        self.notify("member.deleted", member)
        return True

    # --- identities ----------------------------------------------------
    def identities(self, member_id: str) -> dict[str, Any] | None:
        with self.lock:
            if member_id not in self._members:
                return None
            return copy.deepcopy(self._identities.get(member_id, {}))

    def refresh(self, member_id: str, provider: str) -> tuple[str, dict[str, Any] | None]:
        """("ok", identity) or an outcome name: missing / unsupported / revoked."""
        with self.lock:
            identity = self._identities.get(member_id, {}).get(provider)
            if member_id not in self._members or provider not in seeding.OAUTH_PROVIDERS:
                return "missing", None
            if provider not in seeding.REFRESHABLE:
                return "unsupported", None
            if identity is None:
                return "missing", None
            if not identity.get("refreshToken"):
                return "revoked", None
            if (member_id, provider) in self._revoked:
                return "revoked", None
            stamp = now_ms()
            identity["accessToken"] = f"{provider}_at_{secrets.token_hex(8)}"
            identity["accessTokenExpiresAtMs"] = stamp + 3600 * 1000
            identity["lastUsedAtMs"] = stamp
            result, member = copy.deepcopy(identity), copy.deepcopy(self._members[member_id])
        self.notify("identity.refreshed", member)
        return "ok", result

    def member_ids(self) -> list[str]:
        """Live members in list order (seeded first, then created ones)."""
        with self.lock:
            return [mid for mid in self._order if mid is not None]

    def revoked_refresh_ids(self) -> list[str]:
        with self.lock:
            ids = {mid for mid, _ in self._revoked if mid in self._members}
            return [mid for mid in self._order if mid in ids]

    # --- quota and events ------------------------------------------------
    def quota(self, member_id: str) -> dict[str, Any] | None:
        with self.lock:
            if member_id not in self._members:
                return None
            return quota_json(self._quotas.setdefault(member_id, seeding.new_quota()))

    def count_event(self, member_id: str) -> None:
        """One more use; crossing the limit sends ``quota.exceeded``."""
        with self.lock:
            quota = self._quotas.setdefault(member_id, seeding.new_quota())
            was_over = quota_json(quota)["isOverLimit"]
            quota["usageCount"] += 1
            crossed = not was_over and quota_json(quota)["isOverLimit"]
            member = copy.deepcopy(self._members.get(member_id))
        if crossed and member:
            self.notify("quota.exceeded", member)

    def exists(self, member_id: str) -> bool:
        with self.lock:
            return member_id in self._members


def quota_json(quota: dict[str, Any]) -> dict[str, Any]:
    unlimited = quota["isUnlimited"]
    return {
        "interval": quota["interval"],
        "isOverLimit": (not unlimited) and quota["usageCount"] >= quota["usageLimit"],
        "isUnlimited": unlimited,
        "resetInDays": quota["resetInDays"],
        "usageCount": quota["usageCount"],
        "usageLimit": quota["usageLimit"],
    }
