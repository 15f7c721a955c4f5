"""The demo path, headless: the real runner on temporary ports and database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.process_tree import alive, descendants
from tests.throwaway_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.no_db]


def test_demo_runs_serves_the_api_and_stops_cleanly_on_ctrl_c(tmp_path):
    port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "demo_project.settings"
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "demo_project.run_demo",
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
            "--members",
            "40",
            "--db",
            str(tmp_path / "demo.sqlite3"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    token = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = runner.stdout.readline()
            if not line:
                break
            output.append(line)
            match = re.match(r"export PLUGINLAB_DEMO_TOKEN=(\S+)", line)
            if match:
                token = match.group(1)
            if "Press Ctrl-C" in line:
                break
        assert token, "the runner printed no token:\n" + "".join(output[-40:])
        children = descendants(runner.pid)
        assert len(children) >= 2  # the sandbox and the web server at least

        base = f"http://127.0.0.1:{port}"
        me = requests.get(
            f"{base}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert me.status_code == 200, me.text
        body = me.json()
        assert body["id"].startswith("mem_")
        assert body["mirrored"] is True  # the sync put the member in the mirror
        assert requests.get(f"{base}/api/me", timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        premium = requests.get(f"{base}/api/premium", headers=auth, timeout=10)
        assert premium.status_code == 200, premium.text  # the demo token carries plan_pro
        usage = requests.post(f"{base}/api/usage", headers=auth, timeout=10)
        assert usage.status_code == 201, usage.text
        assert usage.json()["status"] == "pending"  # in the outbox; sent after commit
        report = requests.get(f"{base}/api/report", headers=auth, timeout=10)
        assert report.status_code == 200, report.text
        assert report.json()["recent_uses"][0]["status"] == "sent"  # eager: already out
        assert report.json()["quota"]["used"] == usage.json()["used_before_this_call"] + 1
        assert "/api/report" in "".join(output)  # the banner's curl lines name it
        # Regression: with PluginLab's event API down, POST /api/usage answered 502.
        control = f"http://127.0.0.1:{sandbox_port}/_sandbox/faults"
        down = {"path_prefix": "/event", "error_rate": 1.0, "error_status": 503}
        assert requests.post(control, json=down, timeout=10).status_code == 200
        usage = requests.post(f"{base}/api/usage", headers=auth, timeout=30)
        assert usage.status_code == 201, usage.text
        assert usage.json()["status"] == "pending"
        assert requests.delete(control, timeout=10).status_code == 200
        report = requests.get(f"{base}/api/report", headers=auth, timeout=10)
        assert report.json()["recent_uses"][0]["status"] == "pending"  # waits for a sender
        assert requests.get(f"{base}/api/schema/", timeout=10).status_code == 200
        login = requests.get(f"{base}/admin/login/", timeout=10)
        assert login.status_code == 200 and "csrfmiddlewaretoken" in login.text

        runner.send_signal(signal.SIGINT)
        runner.wait(30)
        time.sleep(0.5)
        assert [pid for pid in children if alive(pid)] == []
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
