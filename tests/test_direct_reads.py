"""``fetch_one`` skips Django's cursor only where nobody could tell."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from pluginlab_django.direct_reads import fetch_one
from pluginlab_django.models import Member

pytestmark = pytest.mark.django_db

SQL = f"SELECT email FROM {Member._meta.db_table} WHERE remote_id = %s"


@pytest.fixture
def member():
    return Member.objects.create(remote_id="mem_direct", email="direct@example.com")


def test_the_row_and_none(member):
    connection.ensure_connection()
    assert fetch_one(connection, SQL, ["mem_direct"]) == ("direct@example.com",)
    assert fetch_one(connection, SQL, ["mem_absent"]) is None


def test_a_query_counter_sees_the_read(member):
    with CaptureQueriesContext(connection) as captured:
        assert fetch_one(connection, SQL, ["mem_direct"]) == ("direct@example.com",)
    assert [q["sql"] for q in captured.captured_queries if "remote_id" in q["sql"]]


def test_an_execute_wrapper_sees_the_read(member):
    connection.ensure_connection()
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        assert fetch_one(connection, SQL, ["mem_direct"]) == ("direct@example.com",)
    assert seen == [SQL]


def test_a_failure_is_a_django_database_error():
    connection.ensure_connection()
    with pytest.raises(DatabaseError):
        fetch_one(connection, "SELECT nope FROM no_such_table WHERE x = %s", [1])


def test_a_literal_percent_survives_the_placeholder_conversion(member):
    connection.ensure_connection()
    sql = f"SELECT email FROM {Member._meta.db_table} WHERE email LIKE '%%@example.com' AND remote_id = %s"  # noqa: E501
    assert fetch_one(connection, sql, ["mem_direct"]) == ("direct@example.com",)
