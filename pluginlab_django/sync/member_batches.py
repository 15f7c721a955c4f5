"""Walking the local members a per-member sync (identities, quotas) covers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db.models import QuerySet

from ..models import Member

#: Rows loaded per query while walking members.
BATCH_SIZE = 500


def members_to_sync(member_ids: Iterable[str] | None) -> tuple[Iterator[Member], int, list[str]]:
    """``(members, total, unknown_ids)`` for a per-member sync.

    ``member_ids=None``: every member PluginLab still lists, walked by
    primary key in batches (memory stays flat). Otherwise those members
    (deleted-remotely ones included: the caller asked for them); ids with no
    local row are returned in ``unknown_ids``.
    """
    queryset = Member.objects.defer("remote_data").order_by("pk")
    if member_ids is None:
        queryset = queryset.active()
        return _walk(queryset), queryset.count(), []
    wanted = list(dict.fromkeys(member_ids))
    found = {row.remote_id: row for row in queryset.filter(remote_id__in=wanted)}
    unknown = [remote_id for remote_id in wanted if remote_id not in found]
    rows = [found[remote_id] for remote_id in wanted if remote_id in found]
    return iter(rows), len(rows), unknown


def _walk(queryset: QuerySet[Member]) -> Iterator[Member]:
    last_pk = 0
    while batch := list(queryset.filter(pk__gt=last_pk)[:BATCH_SIZE]):
        yield from batch
        last_pk = batch[-1].pk


def active_member_id_chunks(chunk_size: int) -> Iterator[list[str]]:
    """Remote ids of active members in chunks (for fanning out over Celery)."""
    queryset = Member.objects.active().order_by("pk").values_list("pk", "remote_id")
    last_pk = 0
    while batch := list(queryset.filter(pk__gt=last_pk)[:chunk_size]):
        yield [remote_id for _pk, remote_id in batch]
        last_pk = batch[-1][0]
