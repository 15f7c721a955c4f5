"""A paginator that does not count a large table to page through it.

``COUNT(*)`` over 100,000 members costs more than the page itself. For an
unfiltered queryset on PostgreSQL the planner's estimate (``pg_class.reltuples``)
is used once it is large; anything filtered, small, or on another database is
counted exactly, so the numbers a user filters by are always right.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

#: Below this many rows an exact count is cheap enough.
ESTIMATE_ABOVE = 10_000


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        estimate = self._estimate()
        if estimate is not None and estimate > ESTIMATE_ABOVE:
            return estimate
        return super().count

    def _estimate(self) -> int | None:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):  # a list: counted exactly
            return None
        query = queryset.query
        if query.where or query.distinct or query.combinator:
            return None
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [queryset.model._meta.db_table],
            )
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] and row[0] > 0 else None
