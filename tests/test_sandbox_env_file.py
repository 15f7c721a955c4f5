"""``pluginlab_sandbox --env-file``: the lines land in the file (others kept,
earlier ones replaced, owner-only permissions), and a restart with the same
``--seed`` prints the same ids and secrets, with a valid development Fernet key."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from pluginlab_django.testing import ENV_KEYS
from pluginlab_django.testing.credentials import derived_credentials, development_fernet_key
from tests.sandbox_support import bare_environment
from tests.throwaway_servers import free_port

pytestmark = pytest.mark.no_db

REPO = Path(__file__).resolve().parent.parent
STABLE = [key for key in ENV_KEYS if key != "PLUGINLAB_DEMO_TOKEN"]


def run_sandbox(env_file: Path, *extra: str, port: int | None = None) -> dict[str, str]:
    """Start the command, wait for the env file, stop it with SIGTERM."""
    env = bare_environment()
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "pluginlab_sandbox",
            "--port",
            str(port or free_port()),
            "--members",
            "5",
            "--env-file",
            str(env_file),
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        printed = [process.stdout.readline().rstrip("\n") for _ in ENV_KEYS]
        assert all(printed), process.stderr.read() if process.poll() is not None else printed
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
    return dict(line.split("=", 1) for line in printed)


@pytest.mark.slow
def test_env_file_is_written_and_stable_across_restarts_with_the_seed(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=mine\nPLUGINLAB_SECRET=stale\n")
    port = free_port()
    first = run_sandbox(env_file, "--seed", "7", port=port)
    written = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert written["SECRET_KEY"] == "mine"  # other lines kept
    assert {k: written[k] for k in ENV_KEYS} == first  # earlier lines replaced
    assert env_file.read_text().count("PLUGINLAB_SECRET=") == 1

    second = run_sandbox(env_file, "--seed", "7", port=port)
    assert {k: second[k] for k in STABLE} == {k: first[k] for k in STABLE}
    other_seed = run_sandbox(tmp_path / "other.env", "--seed", "8")
    assert other_seed["PLUGINLAB_SECRET"] != first["PLUGINLAB_SECRET"]
    assert stat.S_IMODE((tmp_path / "other.env").stat().st_mode) == 0o600
    Fernet(first["PLUGINLAB_FIELD_ENCRYPTION_KEYS"].encode())  # a valid key


def test_derived_values_depend_only_on_the_seed():
    assert derived_credentials(3) == derived_credentials(3) != derived_credentials(4)
    assert development_fernet_key(3) == development_fernet_key(3)
    Fernet(development_fernet_key(3).encode())


def test_unwritable_env_file_is_a_command_error(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "pluginlab_sandbox",
            "--port",
            str(free_port()),
            "--members",
            "1",
            "--env-file",
            str(tmp_path / "missing-dir" / ".env"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "CommandError" in result.stderr or "Cannot write the env file" in result.stderr
    assert "Traceback" not in result.stderr
