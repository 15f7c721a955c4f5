"""Before ``make test``: are the system components the suite needs here?

The suite runs against real servers (PostgreSQL, Redis) and a real browser
(Chromium), all from Debian packages. Rather than failing halfway through at
the first one missing, with a traceback, this checks all of them first:

- run as root where ``apt-get`` exists, it installs what is missing and says so;
- run otherwise (or with ``--no-install``), it prints ONE line with the exact
  command that installs everything missing, and exits 2 before anything runs.

It uses the standard library only, so it runs before the virtualenv exists::

    python3 tests/preflight.py [--no-install]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass


def _postgres_found() -> bool:
    # Debian keeps the server binaries off PATH, under /usr/lib/postgresql.
    return bool(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or bool(shutil.which("pg_ctl"))


@dataclass(frozen=True)
class Component:
    name: str
    package: str
    found: Callable[[], bool]


COMPONENTS = (
    Component("PostgreSQL server", "postgresql", _postgres_found),
    Component("Redis server", "redis-server", lambda: bool(shutil.which("redis-server"))),
    Component("Chromium", "chromium", lambda: bool(shutil.which("chromium"))),
)


def missing_components() -> list[Component]:
    return [component for component in COMPONENTS if not component.found()]


def install_command(missing: list[Component]) -> list[str]:
    return ["apt-get", "install", "-y", "--no-install-recommends", *[c.package for c in missing]]


def can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-install", action="store_true", help="only report what is missing; install nothing"
    )
    args = parser.parse_args(argv)
    missing = missing_components()
    if not missing:
        return 0
    names = ", ".join(component.name for component in missing)
    command = install_command(missing)
    if args.no_install or not can_install():
        print(
            f"make test needs {names}: install with `{' '.join(command)}` (as root),"
            " then run it again.",
            file=sys.stderr,
        )
        return 2
    print(f"Installing {names} (`{' '.join(command)}`)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*command, "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    still = missing_components()
    if still:
        print(
            "Still missing after installing: " + ", ".join(c.name for c in still),
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
