"""Every column the page statement writes arrives as the model would store it.

The PostgreSQL statement reads each row as a positional JSON array and
casts column by column (``member_upsert._postgresql_value``); SQLite reads
``json_each``. These tests compare what the statement stored with the
values it was given, for every written field, including NULLs, non-ASCII
text, JSON objects and microsecond timestamps, and check that an overlong
id is refused, never cut to the column's size.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.db import DataError, connection, transaction

from pluginlab_django.clients import types as remote
from pluginlab_django.models import Member
from pluginlab_django.sync import member_upsert
from pluginlab_django.sync.members import UPDATE_FIELDS, member_row_values

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 2, 15, 30, 1, 123456, tzinfo=timezone.utc)


def wire(n: int, **extra) -> dict:
    return {
        "id": f"mem_{n:040d}",
        "email": f"zoë.{n}@example.com",
        "updatedAtMs": 1_780_000_000_123 + n,
        "createdAtMs": 1_770_000_000_456,
        "auth": {"email": f"zoë.{n}@example.com", "signInMethod": "google", "isVerified": True},
        **extra,
    }


def rows_for(*wires: dict) -> list[dict]:
    return [
        {"remote_id": w["id"], **member_row_values(remote.Member.from_json(w), NOW)} for w in wires
    ]


def test_every_written_field_is_stored_as_given():
    full = wire(
        1,
        name="Zoë «Ω» O'Brien",
        givenName="Zoë",
        familyName='O"Brien\\',
        pictureUrl="https://example.com/p.png?a=1&b=%20",
        customFields={"team": "α", "n": "1"},
        metadata={"nested": {"list": [1, None, True]}, "empty": {}},
    )
    sparse = {"id": "mem_" + "2" * 40, "email": "", "auth": {}}  # no timestamps, no names
    rows = rows_for(full, sparse)
    result = member_upsert.upsert_members(rows, UPDATE_FIELDS)
    assert len(result.created) == 2
    for row in rows:
        stored = Member.objects.get(remote_id=row["remote_id"])
        for name in UPDATE_FIELDS:
            assert getattr(stored, name) == row[name], name
        assert stored.plan_id == "" and stored.price_id == ""
    sparse_row = Member.objects.get(remote_id=sparse["id"])
    assert sparse_row.remote_updated_at_ms is None and sparse_row.remote_created_at is None
    assert Member.objects.get(remote_id=full["id"]).last_synced_at == NOW


def test_an_update_writes_every_field_again():
    member_upsert.upsert_members(rows_for(wire(3, name="Before")), UPDATE_FIELDS)
    later = wire(3, name=None, metadata={"k": "v"}, updatedAtMs=1_790_000_000_000)
    row = rows_for(later)[0] | {"last_synced_at": NOW + timedelta(seconds=1)}
    result = member_upsert.upsert_members([row], UPDATE_FIELDS)
    assert list(result.updated) == [later["id"]]
    stored = Member.objects.get(remote_id=later["id"])
    assert stored.name == "" and stored.metadata == {"k": "v"}
    assert stored.remote_updated_at_ms == 1_790_000_000_000
    assert stored.last_synced_at == NOW + timedelta(seconds=1)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_an_overlong_id_is_refused_not_cut():
    row = rows_for(wire(4))[0] | {"remote_id": "mem_" + "x" * 70}
    with pytest.raises(DataError), transaction.atomic():
        member_upsert.upsert_members([row], UPDATE_FIELDS)
    assert not Member.objects.filter(remote_id__startswith="mem_xxx").exists()
    assert connection.vendor == "postgresql"


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_the_page_is_a_bound_parameter_and_never_a_prepared_statement():
    from django.test.utils import CaptureQueriesContext

    seen: list[tuple[str, object]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    connection.ensure_connection()
    # As with OPTIONS["prepare_threshold"]: psycopg would prepare from the 2nd run on.
    threshold = connection.connection.prepare_threshold
    connection.connection.prepare_threshold = 1
    try:
        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(record):
            for n in range(8):
                member_upsert.upsert_members(rows_for(wire(100 + n)), UPDATE_FIELDS)
    finally:
        connection.connection.prepare_threshold = threshold
    assert len(seen) == 8  # the execute wrappers still see every page
    page_sql = [q["sql"] for q in captured.captured_queries if "jsonb_array_elements" in q["sql"]]
    assert len(page_sql) == 8
    # Logged as the server received it: a placeholder, not the page quoted inline.
    assert all("$1" in sql and "mem_" not in sql for sql in page_sql), page_sql[0][:300]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone() == (0,)
    assert Member.objects.count() == 8
