"""Usage metering: its cost per request, and how fast the outbox drains.

    .venv/bin/python benchmarks/metering.py [--requests 3000] [--rounds 5]
        [--clients 8] [--workers 1] [--threads 4]

Starts a throwaway PostgreSQL and Redis (tests.throwaway_servers), a sandbox, and
gunicorn (gthread, loopback) on benchmarks/metering_settings.py, mirrors the
sandbox's members with generous quota snapshots, then:

1. **Requests per second**: the same DRF view behind token authentication,
   with and without ``MeteredQuota`` (fresh quota check, one outbox INSERT
   per 2xx, the send task enqueued on Redis after commit; no worker consumes
   it during this phase, so the figure is the web process's own cost).
   Alternating rounds, median. Target: metered >= 0.85x unmetered.
2. **Drain rate**: one Celery worker (prefork, concurrency 1) on that Redis
   sends every event phase 1 recorded into the sandbox; events per second
   from the task's dispatch until none is pending. Target: >= 500/s. Then
   checks that the sandbox's usage grew by exactly the number of events.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.drf_requests import measure  # noqa: E402
from tests.throwaway_servers import free_port, postgres_server, redis_server  # noqa: E402

METERED = "/metering/drf/"
UNMETERED = "/metering/drf-unmetered/"
RATIO_TARGET = 0.85
DRAIN_TARGET = 500


def wait_for(port: int, headers: dict[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", UNMETERED, headers=headers)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not come up")


def start_gunicorn(env: dict[str, str], port: int, args) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "--bind", f"127.0.0.1:{port}",
            "--workers", str(args.workers),
            "--worker-class", "gthread",
            "--threads", str(args.threads),
            "--keep-alive", "30",
            "--log-level", "warning",
            "django.core.wsgi:get_wsgi_application()",
        ],
        env=env,
        cwd=ROOT,
    )  # fmt: skip


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
                "--pool=prefork", "--concurrency=1", "--loglevel=WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                f"--hostname=pluginlab-bench-{os.getpid()}@127.0.0.1",
            ],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres_server() as database_url,
        redis_server() as redis_url,
    ):
        from pluginlab_django.testing import Sandbox

        with Sandbox(members=50, seed=1) as sb:
            pluginlab = sb.pluginlab_settings()
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "benchmarks.metering_settings",
                "DATABASE_URL": database_url,
                "BENCH_REDIS_URL": redis_url,
                "PLUGINLAB_BENCH_SETTINGS": json.dumps(pluginlab),
                "PYTHONPATH": str(ROOT),
            }
            for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "BENCH_REDIS_URL"):
                os.environ[key] = env[key]
            os.environ["PLUGINLAB_BENCH_SETTINGS"] = env["PLUGINLAB_BENCH_SETTINGS"]
            import django

            django.setup()
            from django.core.management import call_command

            from pluginlab_django import sync
            from pluginlab_django.clients import get_pluginlab_client
            from pluginlab_django.models import CustomEvent, QuotaSnapshot

            call_command("migrate", verbosity=0)
            sync.sync_members()
            sync.snapshot_quotas()
            # Every member far from their limit: the benchmark measures 200s.
            QuotaSnapshot.objects.update(
                usage_count=0, usage_limit=10**9, is_over_limit=False, is_unlimited=False
            )
            members = sb.member_ids()
            start_usage = {
                m: get_pluginlab_client().get_quota_usage(m).usage_count for m in members
            }
            tokens = [{"Authorization": f"Bearer {sb.mint_token(m)}"} for m in members]
            pooled = [tokens[i % len(tokens)] for i in range(args.requests)]

            port = free_port()
            gunicorn = start_gunicorn(env, port, args)
            try:
                wait_for(port, tokens[0])
                ctx = multiprocessing.get_context("spawn")
                with ctx.Pool(1) as pool:
                    measure(pool, port, UNMETERED, tokens * 10, args.clients)  # warm up
                    measure(pool, port, METERED, tokens * 10, args.clients)
                    plain, metered = [], []
                    for _ in range(args.rounds):
                        plain.append(measure(pool, port, UNMETERED, pooled, args.clients))
                        metered.append(measure(pool, port, METERED, pooled, args.clients))
            finally:
                stop(gunicorn)

            recorded = CustomEvent.objects.count()
            expected = len(tokens) * 10 + args.requests * args.rounds
            assert recorded == expected, f"{recorded} events recorded for {expected} calls"
            sb.clear_faults()
            sent_before = sb.request_count("/event/events/create-custom")

            worker_env = {
                **env,
                "PLUGINLAB_TEST_REDIS_URL": redis_url,
                "PLUGINLAB_TEST_SETTINGS": json.dumps(pluginlab),
            }
            worker = start_worker(worker_env, Path(tmp) / "worker.log")
            from celery import Celery

            client = Celery("pluginlab_bench_client", broker=redis_url, set_as_current=False)
            try:
                deadline = time.monotonic() + 60
                while not client.control.ping(timeout=0.5):
                    if worker.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit((Path(tmp) / "worker.log").read_text()[-3000:])
                # The queue may hold the kicks phase 1 enqueued: purge them,
                # so the clock starts with this one task.
                client.control.purge()
                started = time.perf_counter()
                client.send_task("pluginlab_django.tasks.events.send_pending_events")
                left = CustomEvent.objects.exclude(status=CustomEvent.Status.SENT)
                while left.exists():
                    if worker.poll() is not None or time.perf_counter() - started > 600:
                        raise SystemExit((Path(tmp) / "worker.log").read_text()[-3000:])
                    time.sleep(0.05)
                drain_seconds = time.perf_counter() - started
            finally:
                stop(worker)
                client.close()
            sent = sb.request_count("/event/events/create-custom") - sent_before
            grown = sum(
                get_pluginlab_client().get_quota_usage(m).usage_count - start_usage[m]
                for m in members
            )

    plain_rps = sorted(plain)[len(plain) // 2]
    metered_rps = sorted(metered)[len(metered) // 2]
    ratio = metered_rps / plain_rps
    drain = recorded / drain_seconds
    print()
    print(
        f"gunicorn gthread, {args.workers} worker(s) x {args.threads} threads, PostgreSQL; "
        f"{args.clients} keep-alive connections; {args.requests} requests per run "
        f"(median of {args.rounds})"
    )
    print(f"{'DRF view, token auth, unmetered':<46}{plain_rps:>9.0f} req/s")
    print(
        f"{'the same view with MeteredQuota':<46}{metered_rps:>9.0f} req/s  "
        f"{ratio:.2f}x (target >= {RATIO_TARGET}x) {'PASS' if ratio >= RATIO_TARGET else 'MISS'}"
    )
    print(
        f"{'outbox drain, one worker, into the sandbox':<46}{drain:>9.0f} events/s  "
        f"{drain / DRAIN_TARGET:.2f}x (target >= {DRAIN_TARGET}/s) "
        f"{'PASS' if drain >= DRAIN_TARGET else 'MISS'}"
    )
    print(
        f"{recorded} events recorded for {recorded} metered calls; {sent} POSTs; "
        f"sandbox usage +{grown} ({'exact' if grown == recorded == sent else 'MISMATCH'})"
    )
    runs = f"unmetered {[round(x) for x in plain]}, metered {[round(x) for x in metered]}"
    print(f"runs (req/s): {runs}")
    return 0 if grown == recorded == sent else 1


if __name__ == "__main__":
    sys.exit(main())
