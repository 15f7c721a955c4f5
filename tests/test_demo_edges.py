"""Demo and sandbox edges (issue 14, item 7): taken ports, dying with the
runner, a fresh database, and the sandbox command's options."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.process_tree import alive, descendants
from tests.throwaway_servers import free_port

pytestmark = pytest.mark.no_db

ROOT = Path(__file__).resolve().parent.parent


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DEMO_PORT")}
    env.pop("SANDBOX_PORT", None)
    env["DJANGO_SETTINGS_MODULE"] = "demo_project.settings"
    return {**env, **extra}


def run_demo(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demo_project.run_demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("which", "variable", "what"),
    [("DEMO_PORT", "DEMO_PORT", "the demo site"), ("SANDBOX_PORT", "SANDBOX_PORT", "the sandbox")],
)
def test_demo_with_a_taken_port_says_which_and_starts_nothing(
    taken_port, tmp_path, which, variable, what
):
    other = "SANDBOX_PORT" if which == "DEMO_PORT" else "DEMO_PORT"
    env = demo_env(**{which: str(taken_port), other: str(free_port())})
    start = time.monotonic()
    result = run_demo(env, "--db", str(tmp_path / "demo.sqlite3"))
    assert result.returncode == 1
    assert f"port {taken_port}, for {what}, is taken" in result.stdout
    assert f"{variable}=" in result.stdout
    assert "The demo is running" not in result.stdout
    assert "PLUGINLAB_" not in result.stdout  # the sandbox never started
    assert "Traceback" not in result.stdout + result.stderr
    assert time.monotonic() - start < 30
    assert not (tmp_path / "demo.sqlite3").exists()


def test_demo_with_a_bad_port_variable_is_a_usage_error():
    result = run_demo(demo_env(DEMO_PORT="eighty"))
    assert result.returncode == 2 and "invalid int value" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_demo_children_die_when_the_runner_is_sigkilled(tmp_path):
    db = tmp_path / "demo.sqlite3"
    db.write_text("yesterday's rows")  # each start begins from a fresh database
    port = free_port()
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "demo_project.run_demo",
            "--port",
            str(port),
            "--sandbox-port",
            str(free_port()),
            "--members",
            "10",
            "--db",
            str(db),
        ],
        cwd=ROOT,
        env=demo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        assert runner.stdout is not None
        for text in runner.stdout:
            if "The demo is running" in text or time.monotonic() > deadline:
                break
        children = descendants(runner.pid)
        assert children, "the runner started no process"
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in children)
    assert db.read_bytes()[:16] == b"SQLite format 3\x00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "--port must be from 0 to 65535"),
        (["--port", "-1"], "--port must be from 0 to 65535"),
        (["--webhook-url", "ftp://x"], "--webhook-url must be an http(s) URL"),
        (["--webhook-url", "localhost:8000/hook"], "--webhook-url must be an http(s) URL"),
        (["--webhook-url", "http://x:99999/"], "--webhook-url must be an http(s) URL"),
        (["--members", "-5"], "--members must be 0 or more"),
    ],
)
def test_sandbox_command_refuses_bad_options_with_a_sentence(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("pluginlab_sandbox", *args)


def test_sandbox_command_on_a_taken_port(taken_port):
    with pytest.raises(CommandError, match=f"Cannot listen on 127.0.0.1:{taken_port}.*--port"):
        call_command("pluginlab_sandbox", "--port", str(taken_port), "--members", "0")


def test_sandbox_command_bad_port_from_the_shell_is_no_traceback():
    result = subprocess.run(
        [sys.executable, "manage.py", "pluginlab_sandbox", "--port", "99999"],
        cwd=ROOT,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "CommandError: --port must be from 0 to 65535" in result.stderr
    assert "Traceback" not in result.stderr
