"""Webhook deliveries per second, end to end: senders → gunicorn → PostgreSQL →
Redis → a real Celery worker.

    .venv/bin/python benchmarks/webhooks.py [--deliveries 2000] [--senders 1 8]
        [--processing worker|deferred|eager] [--workers 3] [--threads 4]
        [--celery-concurrency 2] [--celery-pool prefork]

Starts a throwaway PostgreSQL and Redis (tests.throwaway_servers), migrates, starts
gunicorn (gthread workers, loopback) on benchmarks/webhook_settings.py and a
Celery worker (``celery -A benchmarks.webhook_celery worker``, prefork), then
for each sender count posts signed deliveries from Python threads, each with
its own keep-alive ``http.client`` connection (``requests`` costs several
times the CPU per POST, on the cores being measured). One delivery in ten is sent a second
time (by another sender, so repeats can race the original) to exercise the
deduplication under load.

Processing: ``worker`` (default, the production shape) — the receiver stores
and queues on Redis, the worker processes; the figure is unique deliveries
from the first POST until the last one is processed, end to end.
``deferred`` queues on an in-memory broker nobody consumes and the script
processes every delivery afterwards (the receiver's own cost); ``eager`` runs
the task inside the request, as the demo does. The events have no built-in
handling, so nothing calls PluginLab.

Afterwards it checks every delivery: stored exactly once (0 lost, 0
duplicated), processed exactly once (attempts == 1, final status), every
answer 2xx. Target (issue 10): >= 400 deliveries/s end to end with 8
senders and a real worker.

Each round also prints the CPU each part used per delivery (gunicorn, the
Celery worker, Redis, PostgreSQL and this process, the senders; read from
/proc), and the deliveries/s those figures would allow on this machine's
cores if nothing else ran: on a shared machine deliveries/s follow the
other load, the CPU per delivery much less. The worker's Celery app
(benchmarks/webhook_celery.py) sets ``CELERY_DB_REUSE_MAX``, as a site
should: without it Celery's Django fixup reconnects to the database around
every task. ``benchmarks/webhook_stages.py`` splits our own code's cost
(receiver, drain) by statement and Python call.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.throwaway_servers import free_port, postgres_server, redis_server  # noqa: E402

TARGET_PER_SECOND = 400
SECRET = "benchmark-webhook-secret"
REPEAT_EVERY = 10


def signed(delivery_id: str, event: str) -> tuple[bytes, dict[str, str]]:
    from pluginlab_django.webhooks import compute_signature

    now_ms = int(time.time() * 1000)
    body = json.dumps(
        {
            "event": event,
            "deliveryId": delivery_id,
            "createdAtMs": now_ms,
            "data": {"member": {"id": "mem_" + uuid.uuid4().hex + "0" * 8}},
        },
        separators=(",", ":"),
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-PluginLab-Signature": compute_signature(body, SECRET),
        "X-PluginLab-Event": event,
        "X-PluginLab-Delivery-Id": delivery_id,
        "X-PluginLab-Hook-Id": "hook_bench",
        "X-PluginLab-Plugin-Id": "plg_benchmark",
        "X-PluginLab-Signature-Version": "1",
        "X-PluginLab-Signature-Algorithm": "sha256",
        "X-PluginLab-Timestamp": str(now_ms),
        "X-Powered-By": "PluginLab",
    }
    return body, headers


@contextlib.contextmanager
def gunicorn(port: int, workers: int, threads: int, env: dict[str, str]):
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "django.core.wsgi:get_wsgi_application()",
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
        "--chdir",
        str(ROOT),
    ]
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                requests.get(f"http://127.0.0.1:{port}/pluginlab/webhook/", timeout=10)
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.1)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def celery_worker(env: dict[str, str], concurrency: int, pool: str = "prefork"):
    """A real worker consuming what the receiver queues; stopped warm afterwards."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "benchmarks.webhook_celery",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname=pluginlab-bench-{os.getpid()}@127.0.0.1",
    ]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    from celery import Celery

    client = Celery("bench_client", broker=env["BENCH_BROKER_URL"], set_as_current=False)
    try:
        deadline = time.monotonic() + 60
        while not client.control.ping(timeout=0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Celery worker did not start")
        yield proc.pid
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _tree(root: int, tree: dict[int, list[int]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


class CpuMeter:
    """CPU seconds used by each part of the setup (this process = the senders),
    read from /proc, so a round's cost per delivery can be told apart from the
    load other processes put on the machine."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots

    def sample(self) -> dict[str, float]:
        tree = _children()
        used = {name: sum(map(_cpu_seconds, _tree(pid, tree))) for name, pid in self.roots.items()}
        used["senders"] = _cpu_seconds(os.getpid())
        return used


def _postgres_master() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    status = Path(f"/proc/{backend}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])


def _redis_pid(url: str) -> int | None:
    port = url.rsplit(":", 1)[1].split("/")[0]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # redis-server retitles itself "redis-server 127.0.0.1:PORT".
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                name = command.split(b" ", 1)[0]
                if name.endswith(b"redis-server") and f":{port}".encode() in command:
                    return int(entry.name)
    return None


def wait_until_processed(ids: list[str], timeout: float = 300) -> None:
    """Until every one of ``ids`` has left received/processing (or time runs out)."""
    from pluginlab_django.models import WebhookDelivery

    pending = [WebhookDelivery.Status.RECEIVED, WebhookDelivery.Status.PROCESSING]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = WebhookDelivery.objects.filter(delivery_id__in=ids)
        if rows.count() >= len(ids) and not rows.filter(status__in=pending).exists():
            return
        time.sleep(0.05)


def run_round(
    url: str,
    senders: int,
    count: int,
    tag: str,
    *,
    end_to_end: bool = False,
    meter: CpuMeter | None = None,
) -> dict:
    """Post ``count`` unique deliveries (plus repeats) from ``senders`` threads."""
    unique = [(f"dlv_{tag}_{i:06d}_{uuid.uuid4().hex[:8]}", "bench.ping") for i in range(count)]
    plan = list(unique) + unique[::REPEAT_EVERY]
    random.Random(tag).shuffle(plan)
    prepared = [signed(delivery_id, event) for delivery_id, event in plan]
    shares = [prepared[i::senders] for i in range(senders)]
    answers: Counter[int] = Counter()
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(senders + 1)

    parts = urlsplit(url)

    def send(share):
        # http.client, one keep-alive connection per sender: requests costs
        # several times its CPU per POST, taken from the 2 cores the
        # receiver and the worker are measured on.
        local_answers: Counter[int] = Counter()
        local_statuses: Counter[str] = Counter()
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            barrier.wait()
            for body, headers in share:
                connection.request("POST", parts.path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                local_answers[response.status] += 1
                if 200 <= response.status < 300:
                    local_statuses[json.loads(answer)["status"]] += 1
        finally:
            connection.close()
        with lock:
            answers.update(local_answers)
            statuses.update(local_statuses)

    threads = [threading.Thread(target=send, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    before = meter.sample() if meter else {}
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    received = time.perf_counter() - started
    ids = [delivery_id for delivery_id, _ in unique]
    if end_to_end:
        wait_until_processed(ids)
    elapsed = time.perf_counter() - started
    after = meter.sample() if meter else {}
    cpu = {name: after[name] - before[name] for name in after}
    return {
        "senders": senders,
        "requests": len(plan),
        "unique": ids,
        "received": received,
        "elapsed": elapsed,
        # End to end: unique deliveries processed per second; else requests answered.
        "per_second": (len(ids) if end_to_end else len(plan)) / elapsed,
        "answers": answers,
        "statuses": statuses,
        "cpu": cpu,
    }


def check_round(result: dict, processing: str) -> list[str]:
    """Every delivery stored once and processed once; returns the problems."""
    from django.db.models import Count

    from pluginlab_django.models import WebhookDelivery
    from pluginlab_django.services.webhooks import process_delivery

    ids = result["unique"]
    rows = WebhookDelivery.objects.filter(delivery_id__in=ids)
    if processing == "deferred":
        for pk in rows.filter(status=WebhookDelivery.Status.RECEIVED).values_list("pk", flat=True):
            process_delivery(pk)
    problems = []
    per_id = dict(rows.values_list("delivery_id").annotate(n=Count("id")))
    lost = [i for i in ids if i not in per_id]
    duplicated = [i for i, n in per_id.items() if n > 1]
    not_once = rows.exclude(status=WebhookDelivery.Status.IGNORED, attempts=1).count()
    non_2xx = sum(n for status, n in result["answers"].items() if not 200 <= status < 300)
    if lost:
        problems.append(f"{len(lost)} lost")
    if duplicated:
        problems.append(f"{len(duplicated)} duplicated")
    if not_once:
        problems.append(f"{not_once} not processed exactly once")
    if non_2xx:
        problems.append(f"{non_2xx} non-2xx answers {dict(result['answers'])}")
    expected_duplicates = result["requests"] - len(ids)
    if result["statuses"]["duplicate"] != expected_duplicates:
        problems.append(
            f"{result['statuses']['duplicate']} answered duplicate, expected {expected_duplicates}"
        )
    result.update(lost=len(lost), duplicated=len(duplicated), not_once=not_once)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000, help="unique per round")
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--processing", choices=["worker", "eager", "deferred"], default="worker")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--celery-pool", default="prefork", help="prefork, threads or solo")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres_server())
        broker_url = stack.enter_context(redis_server()) if args.processing == "worker" else ""
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "benchmarks.webhook_settings",
            "BENCH_PROCESSING": args.processing,
            "BENCH_WEBHOOK_SECRET": SECRET,
            "BENCH_BROKER_URL": broker_url,
            "PYTHONPATH": str(ROOT),
        }
        os.environ.update(
            {
                k: env[k]
                for k in (
                    "DATABASE_URL",
                    "DJANGO_SETTINGS_MODULE",
                    "BENCH_PROCESSING",
                    "BENCH_WEBHOOK_SECRET",
                    "BENCH_BROKER_URL",
                )
            }
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)

        port = free_port()
        url = f"http://127.0.0.1:{port}/pluginlab/webhook/"
        worker = args.processing == "worker"
        print(
            f"gunicorn gthread {args.workers} workers x {args.threads} threads, PostgreSQL, "
            f"processing {args.processing}"
            + (f" (Redis, Celery {args.celery_pool} x {args.celery_concurrency})" if worker else "")
            + f", {args.deliveries} deliveries per round "
            f"+ {args.deliveries // REPEAT_EVERY} repeats"
        )
        failures = []
        results = []
        with contextlib.ExitStack() as servers:
            roots = {
                "gunicorn": servers.enter_context(gunicorn(port, args.workers, args.threads, env))
            }
            if worker:
                roots["celery"] = servers.enter_context(
                    celery_worker(env, args.celery_concurrency, args.celery_pool)
                )
                redis_pid = _redis_pid(broker_url)
                if redis_pid:
                    roots["redis"] = redis_pid
            roots["postgres"] = _postgres_master()
            meter = CpuMeter(roots)
            warm = run_round(url, 2, 100, "warmup", end_to_end=worker)  # connections, imports
            check_round(warm, args.processing)
            for senders in args.senders:
                result = run_round(
                    url, senders, args.deliveries, f"s{senders}", end_to_end=worker, meter=meter
                )
                problems = check_round(result, args.processing)
                results.append(result)
                verdict = "OK" if not problems else "FAIL: " + ", ".join(problems)
                timing = (
                    f"{len(result['unique'])} deliveries processed end to end in "
                    f"{result['elapsed']:.2f}s (all {result['requests']} requests answered in "
                    f"{result['received']:.2f}s) = {result['per_second']:.0f} deliveries/s"
                    if worker
                    else f"{result['requests']} requests in {result['elapsed']:.2f}s = "
                    f"{result['per_second']:.0f} deliveries/s"
                )
                print(
                    f"{senders} sender(s): {timing}; "
                    f"stored {len(result['unique']) - result['lost']}/{len(result['unique'])}, "
                    f"lost {result['lost']}, duplicated {result['duplicated']}, "
                    f"processed-not-once {result['not_once']} -> {verdict}"
                )
                n = len(result["unique"])
                cpu = result["cpu"]
                total = sum(cpu.values())
                print(
                    "  CPU ms per delivery: "
                    + ", ".join(f"{name} {1000 * used / n:.2f}" for name, used in cpu.items())
                    + f"; total {1000 * total / n:.2f} -> at most "
                    f"{(os.cpu_count() or 1) * n / total:.0f} deliveries/s on "
                    f"{os.cpu_count()} cores if nothing else ran; load average "
                    f"{os.getloadavg()[0]:.2f}"
                )
                failures.extend(problems)
        eight = next((r for r in results if r["senders"] == 8), None)
        if eight:
            ratio = eight["per_second"] / TARGET_PER_SECOND
            print(
                f"8 senders ({args.processing}): {eight['per_second']:.0f}/s vs target "
                f"{TARGET_PER_SECOND}/s "
                f"= {ratio:.2f}x ({'met' if ratio >= 1 else 'MISSED'})"
            )
            if ratio < 1:
                failures.append("target missed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
