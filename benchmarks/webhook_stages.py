"""CPU and SQL statements per webhook delivery, stage by stage, in one process.

    .venv/bin/python benchmarks/webhook_stages.py [--deliveries 1000] [--rounds 3] [--sqlite]
        [--profile receive|process] [--top 25]

``benchmarks/webhooks.py`` measures deliveries per second end to end, a
figure that on a shared 2-core machine moves with whatever else runs. This
script measures what our code costs, which does not: it calls the receiver
through Django's WSGI handler (no HTTP server, no client) for signed
deliveries, then processes them as the worker's drain does, and reports for
each stage the CPU time of this process and of its PostgreSQL backend (read
from ``/proc``) per delivery, and the SQL statements per delivery (counted
with ``connection.execute_wrapper``). ``--profile`` prints a cProfile of one
stage. The Celery broker is in memory (nothing consumes it), so the receive
stage includes queueing the drain but not a network round trip to Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.webhooks import SECRET, signed  # noqa: E402
from tests.throwaway_servers import postgres_server  # noqa: E402


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """CPU of this process and of the database backend, and statements, over a block."""

    def __init__(self) -> None:
        from django.db import connection

        self.connection = connection
        self.backend_pid: int | None = None
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.backend_pid = cursor.fetchone()[0]
        self.statements = 0

    def _count(self, execute, sql, params, many, context):
        self.statements += 1
        return execute(sql, params, many, context)

    @contextlib.contextmanager
    def measure(self, label: str, n: int, profile: bool) -> Iterator[None]:
        self.statements = 0
        profiler = cProfile.Profile() if profile else None
        db_before = _proc_cpu(self.backend_pid) if self.backend_pid else 0.0
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        with self.connection.execute_wrapper(self._count):
            if profiler:
                profiler.enable()
            yield
            if profiler:
                profiler.disable()
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        db = (_proc_cpu(self.backend_pid) - db_before) if self.backend_pid else 0.0
        print(
            f"{label:8s} {n} deliveries: {1000 * cpu / n:.3f} ms CPU here"
            + (f" + {1000 * db / n:.3f} ms PostgreSQL backend" if self.backend_pid else "")
            + f" per delivery, {self.statements / n:.2f} statements per delivery "
            f"(wall {wall:.2f}s)"
        )
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            # Function calls are deterministic where CPU time on a shared machine is not.
            print(f"{label:8s} {stats.total_calls / n:.0f} Python function calls per delivery")  # type: ignore[attr-defined]
            stats.sort_stats(self.sort).print_stats(self.top)
            print(out.getvalue())

    top = 25
    sort = "cumulative"


def wsgi_environ(body: bytes, headers: dict[str, str]) -> dict:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/pluginlab/webhook/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": headers.get("Content-Type", ""),
    }
    for name, value in headers.items():
        if name != "Content-Type":
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def run(args: argparse.Namespace) -> None:
    import django
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from pluginlab_django.models import WebhookDelivery
    from pluginlab_django.tasks.webhooks import process_received_webhooks

    handler = WSGIHandler()
    meter = Meter()
    Meter.top = args.top
    Meter.sort = args.sort

    def receive(tag: str, n: int) -> list[dict]:
        envs = [wsgi_environ(*signed(f"dlv_{tag}_{i:06d}", "bench.ping")) for i in range(n)]
        statuses: list[str] = []

        def start_response(status, headers, exc_info=None):
            statuses.append(status)

        with meter.measure("receive", n, args.profile == "receive"):
            for environ in envs:
                response = handler(environ, start_response)
                b"".join(response)
                response.close()  # request_finished, as a WSGI server sends it
        bad = [s for s in statuses if not s.startswith("200")]
        if bad:
            raise SystemExit(f"receiver answered {bad[:3]}")
        return envs

    def process(n: int) -> None:
        drain: Callable[[], object] = process_received_webhooks.run
        with meter.measure("process", n, args.profile == "process"):
            outcomes = drain()
        if sum(outcomes.values()) != n:  # type: ignore[attr-defined]
            raise SystemExit(f"the drain processed {outcomes}, expected {n}")

    receive("warm", 50)
    process(50)
    for round_ in range(args.rounds):
        receive(f"bench{round_}", args.deliveries)
        process(args.deliveries)
    once = WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.IGNORED, attempts=1)
    if once.exists():
        raise SystemExit(f"{once.count()} deliveries not processed exactly once")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="repeat both stages (take the best: CPU is shared)"
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--profile", choices=["receive", "process"])
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--sort", default="cumulative", help="pstats order: cumulative, tottime, calls"
    )
    args = parser.parse_args()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "benchmarks.webhook_settings",
            "BENCH_PROCESSING": "deferred",
            "BENCH_WEBHOOK_SECRET": SECRET,
            "BENCH_BROKER_URL": "",
        }
    )
    with contextlib.ExitStack() as stack:
        if args.sqlite:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
        else:
            os.environ["DATABASE_URL"] = stack.enter_context(postgres_server())
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
