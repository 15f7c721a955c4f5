"""The member table carries only the indexes a query uses (migration 0007).

Every index is written by each member a sync inserts, so the plain and
``LIKE`` indexes on ``email`` and the ``LIKE`` index on ``plan_id`` went, and
``deleted_remotely_at`` / ``latest_quota`` are indexed only where set. These
tests pin both sides: the redundant indexes stay gone, and the queries that
needed an index still get one.
"""

from __future__ import annotations

import pytest
from django.db import connection

from pluginlab_django.models import Member
from tests.member_rows import make_members

pytestmark = pytest.mark.django_db

TABLE = Member._meta.db_table


def member_indexes() -> dict[str, str]:
    """``{name: definition}`` of the member table's indexes."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [TABLE]
            )
        else:
            cursor.execute(
                "SELECT name, COALESCE(sql, '') FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = %s",
                [TABLE],
            )
        return dict(cursor.fetchall())


def plan(queryset) -> str:
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
            return "\n".join(line for (line,) in cursor.fetchall())
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def test_no_index_on_email_but_the_case_insensitive_one():
    on_email = {
        name: definition
        for name, definition in member_indexes().items()
        if "email" in definition.lower() or "email" in name
    }
    assert set(on_email) == {"pluginlab_member_email_ci"}, on_email


def test_plan_id_has_one_plain_index():
    on_plan = [name for name, definition in member_indexes().items() if "plan_id" in definition]
    assert on_plan == ["pluginlab_member_plan"]


def test_deleted_and_quota_pointer_are_indexed_where_set_only():
    indexes = member_indexes()
    for name, column in (
        ("pluginlab_member_deleted", "deleted_remotely_at"),
        ("pluginlab_member_quota", "latest_quota_id"),
    ):
        assert f"{column} IS NOT NULL" in indexes[name].replace('"', ""), indexes[name]
        others = [n for n, d in indexes.items() if column in d and n != name]
        assert others == [], others


def test_the_queries_that_need_an_index_still_get_one():
    make_members(3)
    by_email = plan(Member.objects.by_email("M1@example.com"))
    deleted = plan(Member.objects.filter(deleted_remotely_at__isnull=False))
    pointing = plan(Member.objects.filter(latest_quota_id__in=[1, 2]))
    assert "pluginlab_member_email_ci" in by_email, by_email
    assert "pluginlab_member_deleted" in deleted, deleted
    assert "pluginlab_member_quota" in pointing, pointing
