"""One statement that inserts or updates a page of members by ``remote_id``.

Generic backends use ``bulk_create(update_conflicts=True)``. On PostgreSQL
the page travels as **one JSON parameter** expanded server-side by
``jsonb_to_recordset``: the same ``INSERT ... ON CONFLICT DO UPDATE``, but
without Django compiling ~20 values per member into placeholders and psycopg
quoting each one client-side — about 3× faster, which is what lets a full
sync keep up with the API (see benchmarks/sync_members.py). Column names
and types come from the model, so the two paths cannot drift apart.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connections, router

from ..models import Member

#: Columns given on insert only: a sync never overwrites what tokens and
#: webhooks told us (plan, price).
INSERT_ONLY_DEFAULTS: dict[str, Any] = {"plan_id": "", "price_id": ""}


def upsert_members(rows: list[dict[str, Any]], update_fields: tuple[str, ...]) -> dict[str, int]:
    """Insert or update ``rows`` (dicts of field values with ``remote_id``);
    on conflict only ``update_fields`` are written. Returns ``{remote_id: pk}``."""
    if not rows:
        return {}
    connection = connections[router.db_for_write(Member)]
    if connection.vendor == "postgresql":
        return _upsert_postgresql(connection, rows, update_fields)
    objs = [Member(**row) for row in rows]
    Member.objects.bulk_create(
        objs, update_conflicts=True, unique_fields=["remote_id"], update_fields=list(update_fields)
    )
    if any(obj.pk is None for obj in objs):  # backends that cannot return ids
        return dict(
            Member.objects.filter(remote_id__in=[row["remote_id"] for row in rows]).values_list(
                "remote_id", "pk"
            )
        )
    return {obj.remote_id: obj.pk for obj in objs}


def _upsert_postgresql(connection, rows, update_fields) -> dict[str, int]:
    sql = _postgresql_sql(connection.alias, update_fields)
    payload = json.dumps(
        [{**INSERT_ONLY_DEFAULTS, **row} for row in rows], default=_json_value, ensure_ascii=False
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [payload])
        return dict((remote_id, pk) for pk, remote_id in cursor.fetchall())


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()  # timestamptz parses it, microseconds kept
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@lru_cache(maxsize=8)
def _postgresql_sql(alias: str, update_fields: tuple[str, ...]) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    opts = Member._meta
    names = ("remote_id", *update_fields, *INSERT_ONLY_DEFAULTS)
    fields = [opts.get_field(name) for name in names]
    columns = ", ".join(quote(f.column) for f in fields)
    record = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in fields)
    updates = ", ".join(
        f"{quote(f.column)} = EXCLUDED.{quote(f.column)}" for f in fields if f.name in update_fields
    )
    table = quote(opts.db_table)
    # Only quoted identifiers from the model's metadata; the data is a parameter.
    return (
        f"INSERT INTO {table} ({columns}) "  # noqa: S608
        f"SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS r({record}) "
        f"ON CONFLICT ({quote(opts.get_field('remote_id').column)}) DO UPDATE SET {updates} "
        f"RETURNING {quote(opts.pk.column)}, {quote(opts.get_field('remote_id').column)}"
    )
