"""The page statement's plan: one remote_id index probe per incoming member,
never a pass over every stored member (a first sync of 100k members was
quadratic: PostgreSQL hashed the whole table for every page while its
statistics, not yet analyzed, still said the table was small)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.utils import timezone

from pluginlab_django.clients import types as remote
from pluginlab_django.models import Member
from pluginlab_django.sync import member_upsert
from pluginlab_django.sync.members import UPDATE_FIELDS, member_row_values

pytestmark = pytest.mark.django_db


def page_rows(start: int, count: int) -> list[dict]:
    now = timezone.now()
    wires = [
        {"id": f"mem_{n:040d}", "email": f"m{n}@example.com", "updatedAtMs": 1_700_000_000_000 + n}
        for n in range(start, start + count)
    ]
    return [
        {"remote_id": wire["id"], **member_row_values(remote.Member.from_json(wire), now)}
        for wire in wires
    ]


def test_the_page_statement_probes_the_index_whatever_the_statistics():
    table = Member._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Stale statistics, as during a first sync: no analyze runs.
            cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    for start in range(0, 3000, 500):
        member_upsert.upsert_members(page_rows(start, 500), UPDATE_FIELDS)
    assert Member.objects.count() == 3000
    rows = [{**member_upsert.INSERT_ONLY_DEFAULTS, **row} for row in page_rows(2900, 200)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = member_upsert._postgresql_sql(connection.alias, UPDATE_FIELDS)
            payload = member_upsert.postgresql_payload(rows, UPDATE_FIELDS)
            cursor.execute("EXPLAIN " + sql, [payload])
            plan = "\n".join(line for (line,) in cursor.fetchall())
            assert "Hash Anti Join" not in plan and "Seq Scan" not in plan, plan
            assert "Index Scan using" in plan and "remote_id" in plan, plan
        else:
            fields = member_upsert._fields(UPDATE_FIELDS)
            payload = json.dumps(
                [[f.get_db_prep_save(row[f.name], connection) for f in fields] for row in rows]
            )
            sql = member_upsert._sqlite_sql(connection.alias, UPDATE_FIELDS, True)
            cursor.execute("EXPLAIN QUERY PLAN " + sql, [payload])
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "SCAN stored" not in plan, plan
            assert "SEARCH stored USING INDEX" in plan, plan
    # And the outcome: the 100 stored as new are skipped, the 100 others created.
    result = member_upsert.upsert_members(page_rows(2900, 200), UPDATE_FIELDS)
    assert len(result.created) == 100 and len(result.updated) == 0
    assert len(result.unchanged) == 100
