"""The ``pluginlab_sandbox`` management command: prints the settings, serves
them, and stops on SIGINT.

Raw HTTP with ``requests``, no project client: these files check the sandbox
itself against ``wire-protocol.md``, so a mistake cannot hide in the sandbox
and the clients at once.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.sandbox_support import (
    bare_environment,
    verify_with_jwks,
)
from tests.throwaway_servers import free_port

pytestmark = pytest.mark.no_db

REPO = Path(__file__).resolve().parent.parent


# The management command -----------------------------------------------------

ENV_KEYS = [
    "PLUGINLAB_PLUGIN_ID",
    "PLUGINLAB_SECRET",
    "PLUGINLAB_AUTH_URL",
    "PLUGINLAB_CERT_URL",
    "PLUGINLAB_MONETIZATION_URL",
    "PLUGINLAB_EVENT_URL",
    "PLUGINLAB_WEBHOOK_SECRET",
    "PLUGIPAY_BASE_URL",
    "PLUGIPAY_KEY_ID",
    "PLUGIPAY_SECRET",
    "PLUGINLAB_DEMO_TOKEN",
    "PLUGINLAB_FIELD_ENCRYPTION_KEYS",
]


def test_command_prints_the_settings_serves_them_and_stops_on_sigint():
    port = free_port()
    env = bare_environment()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "pluginlab_sandbox", "--port", str(port), "--members", "20"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdout() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        printed = [lines.get(timeout=60) for _ in ENV_KEYS]
        assert None not in printed, process.stderr.read() if process.poll() is not None else ""
        pairs = [line.rstrip("\n").split("=", 1) for line in printed]
        assert [key for key, _ in pairs] == ENV_KEYS
        settings = dict(pairs)
        assert all(settings.values())
        assert settings["PLUGINLAB_CERT_URL"] == f"http://127.0.0.1:{port}/auth/admin/v1/cert"

        jwks = requests.get(settings["PLUGINLAB_CERT_URL"], timeout=10).json()
        claims = verify_with_jwks(
            settings["PLUGINLAB_DEMO_TOKEN"], jwks, settings["PLUGINLAB_PLUGIN_ID"]
        )
        page = requests.get(
            f"{settings['PLUGINLAB_AUTH_URL']}/admin/plugins/{settings['PLUGINLAB_PLUGIN_ID']}"
            "/members?limit=100",
            headers={
                "X-PluginLab-Admin-Sdk-Secret": settings["PLUGINLAB_SECRET"],
                "X-PluginLab-Plugin-Id": settings["PLUGINLAB_PLUGIN_ID"],
            },
            timeout=10,
        ).json()
        assert page["total"] == 20
        assert claims["uid"] == page["items"][0]["id"]

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert lines.get(timeout=10) is None, "nothing printed after the 12 lines"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
