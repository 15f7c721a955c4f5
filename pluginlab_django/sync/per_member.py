"""The loop shared by per-member syncs (identities, quota snapshots).

One remote call per member. A member-specific failure (a 404, a 4xx) is
counted in ``run.failed`` and the loop goes on; the service being
unreachable (``RemoteUnavailable``, after the transport's own retries) ends
the run as failed, because every following member would fail the same way —
the Celery task then retries the chunk later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..clients.exceptions import RemoteError, RemoteUnavailable
from ..models import Member, SyncRun
from .member_batches import members_to_sync
from .runs import (
    Progress,
    describe_error,
    fail_run,
    finish_run,
    save_progress,
    start_run,
)

logger = logging.getLogger("pluginlab_django.sync")

#: Counters are saved every this many members, so a long run shows progress.
SAVE_EVERY = 100
#: Per-member errors quoted in ``SyncRun.error``.
ERRORS_QUOTED = 5


@dataclass
class MemberOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


class MemberFailed(Exception):
    """A per-member problem found locally (e.g. a 404 answered as ``None``)."""


def run_per_member(
    kind: str,
    member_ids: Iterable[str] | None,
    handle: Callable[[Member], MemberOutcome],
    progress: Progress | None = None,
) -> SyncRun:
    run = start_run(kind, complete=member_ids is None)
    errors: list[str] = []
    try:
        members, total, unknown = members_to_sync(member_ids)
        for remote_id in unknown:
            run.failed += 1
            errors.append(f"{remote_id}: not mirrored locally")
        for done, member in enumerate(members, start=1):
            try:
                outcome = handle(member)
            except RemoteUnavailable:
                raise
            except (RemoteError, MemberFailed) as exc:
                run.failed += 1
                errors.append(f"{member.remote_id}: {describe_error(exc)}")
                logger.warning("%s sync of member %s failed: %s", kind, member.remote_id, exc)
            else:
                run.created += outcome.created
                run.updated += outcome.updated
                run.unchanged += outcome.unchanged
                run.marked_deleted += outcome.removed
            if done % SAVE_EVERY == 0:
                save_progress(run)
            if progress is not None:
                progress(done, total)
    except Exception as exc:
        return fail_run(run, exc, detail=_summarise(errors))
    run.error = _summarise(errors)
    return finish_run(run)


def _summarise(errors: list[str]) -> str:
    if not errors:
        return ""
    quoted = "\n".join(errors[:ERRORS_QUOTED])
    more = len(errors) - ERRORS_QUOTED
    tail = f"\n(and {more} more)" if more > 0 else ""
    return f"{len(errors)} member(s) failed:\n{quoted}{tail}"
