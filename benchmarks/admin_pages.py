"""Admin pages at 100,000 members in PostgreSQL: median ms and queries per page.

    .venv/bin/python benchmarks/admin_pages.py [--members 100000] [--repeat 15]

Starts a throwaway PostgreSQL (tests.throwaway_servers), migrates, writes the members
(with a quota snapshot each) straight to the database, then renders the
member changelist (first and a middle page), a member's change page and the
dashboard (cold: cache cleared; warm: cached) with Django's test client as a
superuser. Target: each page well under a second (< 1000 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MS = 1000.0


def fill(members: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from pluginlab_django.models import ApiKey, Member, QuotaSnapshot, SyncRun

    now = timezone.now()
    batch = 5000
    for start in range(0, members, batch):
        rows = Member.objects.bulk_create(
            Member(
                remote_id=f"mem_{i:040x}",
                email=f"member{i}@example.com",
                name=f"Member {i}",
                sign_in_method=("google", "github", "email-and-password", "gitlab")[i % 4],
                is_verified=bool(i % 3),
                plan_id=("", "plan_pro", "plan_team")[i % 3],
                remote_created_at=now - timedelta(minutes=5 * i),
            )
            for i in range(start, min(start + batch, members))
        )
        QuotaSnapshot.objects.bulk_create(
            QuotaSnapshot(
                member=m,
                usage_count=(i * 7) % 130,
                usage_limit=100,
                is_over_limit=(i * 7) % 130 >= 100,
                interval="month",
            )
            for i, m in enumerate(rows, start)
        )
    with connection.cursor() as cursor:
        table, quota = Member._meta.db_table, QuotaSnapshot._meta.db_table
        cursor.execute(
            f"UPDATE {table} m SET latest_quota_id = q.id FROM {quota} q WHERE q.member_id = m.id"
        )
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(f"ANALYZE {quota}")
    for i in range(20):
        ApiKey.objects.create(
            record_id=f"apk_{i}",
            key_id=f"pk_test_{i}",
            mode="test",
            created_at=now - timedelta(days=i),
            revoked_at=now if i % 4 == 0 else None,
        )
    for kind in ("members", "identities", "quotas", "apikeys"):
        SyncRun.objects.create(kind=kind, status="succeeded", finished_at=now)


def measure(client, url: str, repeat: int, *, clear_cache: bool = False) -> tuple[float, int]:
    from django.core.cache import caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm up (templates, session)
    times, queries = [], 0
    for _ in range(repeat):
        if clear_cache:
            caches["default"].clear()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        queries = len(captured)
    return statistics.median(times), queries


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    from tests.throwaway_servers import postgres_server

    with postgres_server() as url:
        os.environ["DATABASE_URL"] = url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client
        from django.test.utils import setup_test_environment

        settings.ALLOWED_HOSTS = ["*"]
        setup_test_environment()
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        fill(args.members)
        print(f"{args.members} members written in {time.perf_counter() - started:.1f} s")

        from pluginlab_django.models import Member

        admin = get_user_model().objects.create_superuser("bench", "b@example.com", "pw")
        client = Client()
        client.force_login(admin)
        member = Member.objects.order_by("pk")[args.members // 2]
        pages = [
            ("member changelist, page 1", "/admin/pluginlab_django/member/", False),
            ("member changelist, page 1000", "/admin/pluginlab_django/member/?p=1000", False),
            (
                "member changelist, filtered (over limit)",
                "/admin/pluginlab_django/member/?quota=over",
                False,
            ),
            ("member change page", f"/admin/pluginlab_django/member/{member.pk}/change/", False),
            ("dashboard, cold (cache cleared)", "/admin/pluginlab_django/dashboard/", True),
            ("dashboard, warm (cached)", "/admin/pluginlab_django/dashboard/", False),
        ]
        print(f"\n{'page':45} {'median ms':>10} {'queries':>8}  vs target < {TARGET_MS:.0f} ms")
        worst = 0.0
        for label, url, cold in pages:
            median, queries = measure(client, url, args.repeat, clear_cache=cold)
            worst = max(worst, median)
            verdict = "PASS" if median < TARGET_MS else "MISS"
            print(f"{label:45} {median:10.1f} {queries:8d}  {median / TARGET_MS:.2f}× {verdict}")
        print(f"\nslowest page: {worst:.1f} ms ({worst / TARGET_MS:.2f}× the 1 s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
