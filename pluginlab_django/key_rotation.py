"""Re-encrypting stored identity tokens under the first configured key.

``manage.py pluginlab_reencrypt`` is the adapter; the work is here so a
deploy script or a task can call it too. Rotation is ``FieldCipher.rotate``
on the stored ciphertext (no plaintext leaves this function), in batches of
rows ordered by primary key, one transaction per batch:

- **resumable**: a row rewritten carries the current key's fingerprint and is
  skipped by the next run, so an interrupted run loses at most one batch's
  work and running again finishes the job;
- **safe beside syncs**: each row is written only if its ciphertext is still
  what was read (a sync that stored a new token meanwhile wins; it wrote
  under the current key anyway);
- **undecryptable** rows are counted and left as they are (put the old key
  back, or let an identities sync replace them); a legacy row without a
  fingerprint is marked ``fields.UNKNOWN_KEY`` so check W012 sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.fernet import InvalidToken
from django.db import connection, transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from .fields import UNKNOWN_KEY, current_fingerprint, get_fernet
from .models import Identity


@dataclass
class ReencryptResult:
    rotated: int = 0
    already_current: int = 0
    undecryptable: int = 0
    changed_meanwhile: int = 0
    batches: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows_to_rotate(current: str) -> Any:
    return (
        Identity.objects.exclude(key_fingerprint=current)
        .filter(Q(access_token__gt="") | Q(refresh_token__gt=""))
        .annotate(raw_access=Cast("access_token", TextField()))
        .annotate(raw_refresh=Cast("refresh_token", TextField()))
        .order_by("pk")
    )


def _write_rows(updates: list[tuple[Any, ...]]) -> int:
    """Write (new access, new refresh, fingerprint, pk, old access, old refresh)
    rows whose ciphertext is unchanged; the number written.

    PostgreSQL: one ``UPDATE … FROM unnest(arrays)`` per batch (a thousand
    single-row UPDATEs cost the server far more). SQLite: ``executemany``.
    """
    table = connection.ops.quote_name(Identity._meta.db_table)
    # The table name and operators are ours; every value is a parameter.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            columns = [list(column) for column in zip(*updates, strict=True)]
            access, refresh, fingerprint, pks, old_access, old_refresh = columns
            cursor.execute(
                f"UPDATE {table} AS t SET access_token = v.a, refresh_token = v.r, "  # noqa: S608
                "key_fingerprint = %s FROM unnest(%s::bigint[], %s::text[], %s::text[], "
                "%s::text[], %s::text[]) AS v(id, a, r, oa, o_r) "
                "WHERE t.id = v.id AND t.access_token IS NOT DISTINCT FROM v.oa "
                "AND t.refresh_token IS NOT DISTINCT FROM v.o_r",
                [fingerprint[0], pks, access, refresh, old_access, old_refresh],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET access_token = %s, refresh_token = %s, "  # noqa: S608
                "key_fingerprint = %s WHERE id = %s AND access_token IS %s AND refresh_token IS %s",
                updates,
            )
        return cursor.rowcount


def reencrypt_identities(
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    on_batch: Callable[[ReencryptResult], None] | None = None,
    result: ReencryptResult | None = None,
) -> ReencryptResult:
    """Re-encrypt every identity token not yet under the first key.

    Counts go into ``result`` (a new one by default) as each batch commits,
    so a caller that is interrupted still knows how far it got.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    fernet = get_fernet()
    current = current_fingerprint()
    result = result if result is not None else ReencryptResult()
    result.dry_run = dry_run
    result.already_current = (
        Identity.objects.filter(key_fingerprint=current)
        .filter(Q(access_token__gt="") | Q(refresh_token__gt=""))
        .count()
    )
    after = 0
    while True:
        batch = list(
            _rows_to_rotate(current)
            .filter(pk__gt=after)
            .values_list("pk", "raw_access", "raw_refresh", "key_fingerprint")[:batch_size]
        )
        if not batch:
            return result
        after = batch[-1][0]
        updates: list[tuple[Any, ...]] = []
        unknown: list[int] = []
        for pk, access, refresh, fingerprint in batch:
            try:
                new_access = fernet.rotate(access.encode()).decode() if access else access
                new_refresh = fernet.rotate(refresh.encode()).decode() if refresh else refresh
            except InvalidToken:
                result.undecryptable += 1
                if not fingerprint:
                    unknown.append(pk)
                continue
            updates.append((new_access, new_refresh, current, pk, access, refresh))
        result.batches += 1
        if dry_run:
            result.rotated += len(updates)
        else:
            written = _write(updates, unknown)
            result.rotated += written
            result.changed_meanwhile += len(updates) - written
        if on_batch is not None:
            on_batch(result)


def _write(updates: list[tuple[Any, ...]], unknown: list[int]) -> int:
    with transaction.atomic():
        written = _write_rows(updates) if updates else 0
        if unknown:
            Identity.objects.filter(pk__in=unknown, key_fingerprint="").update(
                key_fingerprint=UNKNOWN_KEY
            )
    return written
