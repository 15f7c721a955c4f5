"""Requests per second of a DRF view with and without PluginLab token auth.

    .venv/bin/python benchmarks/drf_requests.py [--requests 6000] [--clients 8]

Starts a sandbox and gunicorn (gthread workers) on loopback, then drives the
same tiny view two ways with keep-alive HTTP/1.1 connections from client
processes: with no authentication, and behind ``PluginLabTokenAuthentication``
+ ``IsAuthenticated``. Authenticated requests cycle over one token per
sandbox member (how real traffic looks: each member calls many times); a
second authenticated run uses a fresh token on every request (the worst case:
a PS256 verification each time). Target: authenticated ≥ 0.85× the
unauthenticated throughput.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

OPEN_PATH = "/echo-open/"
TOKEN_PATH = "/echo-token/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drive(port: int, path: str, headers: list[dict[str, str]], connections: int) -> int:
    """One client process: ``connections`` keep-alive connections in threads,
    sending one request per entry of ``headers``. Returns non-200 answers."""
    import threading

    failures = 0
    lock = threading.Lock()
    shares = [headers[i::connections] for i in range(connections)]

    def run(share):
        nonlocal failures
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        bad = 0
        for header in share:
            conn.request("GET", path, headers=header)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                bad += 1
        conn.close()
        with lock:
            failures += bad

    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def measure(pool, port: int, path: str, headers: list[dict[str, str]], clients: int) -> float:
    processes = pool._processes  # the pool size we asked for
    per_process = [headers[i::processes] for i in range(processes)]
    connections = max(1, clients // processes)
    start = time.perf_counter()
    failures = sum(pool.starmap(drive, [(port, path, share, connections) for share in per_process]))
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{failures} requests to {path} did not answer 200")
    return len(headers) / elapsed


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", OPEN_PATH)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not come up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000, help="requests per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = parser.parse_args()

    import django

    django.setup()
    from pluginlab_django.testing import Sandbox

    with tempfile.TemporaryDirectory() as tmp, Sandbox(members=50, seed=1) as sb:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "PLUGINLAB_BENCH_SETTINGS": json.dumps(sb.pluginlab_settings()),
            "PLUGINLAB_BENCH_SQLITE": str(Path(tmp) / "bench.sqlite3"),
            "PYTHONPATH": str(ROOT),
        }
        python = sys.executable
        subprocess.run(
            [python, "-m", "django", "migrate", "--verbosity", "0"], env=env, check=True, cwd=ROOT
        )
        port = free_port()
        gunicorn = subprocess.Popen(
            [
                str(Path(python).with_name("gunicorn")),
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
        try:
            wait_for(port)
            members = sb.member_ids()
            member_tokens = [{"Authorization": f"Bearer {sb.mint_token(m)}"} for m in members]
            pooled = [member_tokens[i % len(members)] for i in range(args.requests)]
            distinct_count = min(args.requests, 3000)
            print(f"Minting {distinct_count} distinct tokens...", flush=True)
            distinct = [
                {"Authorization": "Bearer " + sb.mint_token(members[i % 50], expires_in=3600 + i)}
                for i in range(distinct_count)
            ]
            none = [{}] * args.requests
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(args.client_processes) as pool:
                # Warm up: imports, connections, each member's token once per worker.
                measure(pool, port, OPEN_PATH, none[:500], args.clients)
                measure(pool, port, TOKEN_PATH, member_tokens * 4, args.clients)
                fetches = sb.request_count("/auth/admin/v1/cert")
                open_runs, token_runs = [], []
                for _ in range(args.rounds):
                    open_runs.append(measure(pool, port, OPEN_PATH, none, args.clients))
                    token_runs.append(measure(pool, port, TOKEN_PATH, pooled, args.clients))
                distinct_rps = measure(pool, port, TOKEN_PATH, distinct, args.clients)
                assert sb.request_count("/auth/admin/v1/cert") == fetches, "JWKS refetched"
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)

    open_rps = sorted(open_runs)[len(open_runs) // 2]
    token_rps = sorted(token_runs)[len(token_runs) // 2]
    ratio = token_rps / open_rps
    print()
    print(
        f"gunicorn gthread, {args.workers} worker(s) x {args.threads} threads; "
        f"{args.clients} keep-alive connections; {args.requests} requests per run "
        f"(median of {args.rounds})"
    )
    print(f"{'unauthenticated view':<52}{open_rps:>9.0f} req/s")
    print(
        f"{'authenticated, one token per member (50)':<52}{token_rps:>9.0f} req/s  "
        f"{ratio:.2f}× (target ≥ 0.85×) {'PASS' if ratio >= 0.85 else 'MISS'}"
    )
    print(
        f"{'authenticated, a new token every request':<52}{distinct_rps:>9.0f} req/s  "
        f"{distinct_rps / open_rps:.2f}× (worst case, for information)"
    )
    print(
        f"runs (req/s): open {[round(x) for x in open_runs]}, "
        f"token {[round(x) for x in token_runs]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
