"""``pluginlab_sandbox`` stops on SIGTERM wherever the signal lands.

Python runs a signal handler in the main thread between two bytecodes, so
the handler may run while that very thread holds a lock. The command's
handler once called ``threading.Event.set()``; a SIGTERM landing inside the
main loop's ``Event.wait()`` (which holds the event's lock) deadlocked and
the sandbox never exited (a CI run timed out on it). The script below makes
the signal land exactly there, and in the plain sleep of the loop, and the
command must still exit 0 at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_db

REPO = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import io, os, signal, threading, time
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo_project.settings"
    import django
    django.setup()
    from django.core.management import call_command

    state = {"printed": False, "raised": False}

    def raise_once():
        if state["printed"] and not state["raised"]:
            if threading.current_thread() is threading.main_thread():
                state["raised"] = True
                signal.raise_signal(signal.SIGTERM)

    real_wait, real_sleep = threading.Condition.wait, time.sleep

    def wait(self, timeout=None):
        raise_once()  # the caller holds this condition's lock here
        return real_wait(self, timeout)

    def sleep(seconds):
        raise_once()
        return real_sleep(seconds)

    threading.Condition.wait, time.sleep = wait, sleep

    class Out(io.StringIO):
        def flush(self):
            state["printed"] = True  # the command flushes once, after the 12 lines

    call_command("pluginlab_sandbox", "--port", "0", "--members", "1", stdout=Out())
    print("stopped after", "SIGTERM" if state["raised"] else "nothing")
    """
)


def test_sigterm_landing_inside_the_wait_loop_stops_the_command():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGINLAB", "DJANGO_"))}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stopped after SIGTERM"
