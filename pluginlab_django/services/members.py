"""Member changes that write through to PluginLab: the remote first, then the
mirror (through ``sync.store_member``), so a remote failure leaves the local
row exactly as it was."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import signals, sync
from ..clients import PluginLabError, get_pluginlab_client
from ..clients.exceptions import MemberNotFound
from ..models import Member

#: Fields an admin may change, and the client argument each maps to.
EDITABLE_FIELDS: tuple[str, ...] = (
    "name",
    "given_name",
    "family_name",
    "picture_url",
    "metadata",
    "is_verified",
)
_CLEARABLE_TEXT = {"name", "given_name", "family_name", "picture_url"}


def update_member(member: Member, changes: Mapping[str, Any]) -> Member:
    """PATCH the given fields on PluginLab, then store what it answered.

    Raises ``RemoteError`` (nothing local changes then) or ``ValueError`` for a
    field that cannot be edited. Empty text clears the field remotely.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Cannot edit {', '.join(sorted(unknown))} through PluginLab.")
    patch = {
        name: (None if name in _CLEARABLE_TEXT and value == "" else value)
        for name, value in changes.items()
    }
    remote = get_pluginlab_client().update_member(member.remote_id, **patch)
    return sync.store_member(remote).row


def create_member(
    *,
    email: str,
    password: str,
    is_verified: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> Member:
    """Create the member on PluginLab, then mirror it."""
    remote = get_pluginlab_client().create_member(
        email, password, is_verified=is_verified, metadata=dict(metadata or {})
    )
    return sync.store_member(remote).row


@dataclass
class DeleteResult:
    """Which members were deleted (remote ids) and which failed, with why."""

    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[Member, str]] = field(default_factory=list)


def delete_members(members: Iterable[Member]) -> DeleteResult:
    """Delete each member on PluginLab first, then its local row.

    A member PluginLab says it does not know (404 ``auth/member-not-found``)
    counts as deleted; any other 404 (a wrong URL, a proxy) is a failure. A
    failure keeps that member's row and is reported; the others go on.
    """
    client = get_pluginlab_client()
    result = DeleteResult()
    for member in members:
        try:
            client.delete_member(member.remote_id)
        except MemberNotFound:
            pass  # already gone remotely: drop the local row too
        except PluginLabError as exc:
            result.failed.append((member, str(exc)))
            continue
        except Exception as exc:  # RemoteUnavailable and friends
            result.failed.append((member, str(exc)))
            continue
        remote_id = member.remote_id
        sync.forget_member(remote_id)
        result.deleted.append(remote_id)
        signals.member_deleted.send(sender=Member, member_id=remote_id)
    return result
