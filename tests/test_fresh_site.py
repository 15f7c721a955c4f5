"""A new user's first hour, automated: the built wheel installed into a fresh
venv with only the README's install line, ``startproject`` with a custom user
model (unique email), ``TIME_ZONE = "Europe/Paris"``, SQLite and no Celery
app, the README's settings and URLs applied verbatim, then migrate, check,
the sandbox (``--env-file .env``), a sync, a token-protected DRF view and a
plain view over HTTP, and a webhook delivered without Celery updating the
mirror. On Django 4.2 (Python 3.10) and Django 5.2.

Needs network access to PyPI (CI has it); skipped when an interpreter is
missing. About a minute per leg.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.throwaway_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

pytestmark = [pytest.mark.slow, pytest.mark.no_db]


def python310() -> str | None:
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    return found[-1] if found else shutil.which("python3.10")


LEGS = {
    "django42": (python310, "Django>=4.2,<5"),
    "django52": (lambda: sys.executable, "Django>=5.2,<5.3"),
}


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300):
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(args)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result


def install_section() -> str:
    return README[README.index("## Installing into an existing site") : README.index("### SQLite")]


def readme_install_line(wheel: Path) -> list[str]:
    """The README's ``pip install`` line, with the built wheel for the package."""
    line = re.search(r"^pip install (.*?)(?:\s+#.*)?$", install_section(), re.M).group(1)
    return [str(wheel) if arg == "django-pluginlab" else arg for arg in line.split()]


def readme_block(start: str) -> str:
    """The README's install-section python block whose first line is ``start``."""
    for block in re.findall(r"```python\n(.*?)```", install_section(), re.S):
        if block.startswith(start):
            return block
    raise AssertionError(f"README has no install block starting {start!r}")


def site_settings() -> str:
    """The README's settings block, appended to startproject's settings.py."""
    block = readme_block("# settings.py")
    block = block.replace("INSTALLED_APPS = [\n    # ...\n", "INSTALLED_APPS += [\n")
    assert "INSTALLED_APPS += [" in block
    return (
        "\n# --- from the README ---\n" + block + "\nINSTALLED_APPS += ['accounts']\n"
        "AUTH_USER_MODEL = 'accounts.User'\n"
        "TIME_ZONE = 'Europe/Paris'\n"
        "PLUGINLAB['USER_RESOLVER'] = "
        "'pluginlab_django.authentication.get_or_create_user_by_email'\n"
    )


def site_urls() -> str:
    block = readme_block("# urls.py")
    block = block.replace("urlpatterns = [", "urlpatterns += [")
    return (
        "\n# --- from the README ---\n" + block + "\nfrom . import views\n\nurlpatterns += [\n"
        "    path('api/me/', views.Me.as_view()),\n"
        "    path('plain/me/', views.plain_me),\n]\n"
    )


VIEWS = """
from django.http import JsonResponse
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from pluginlab_django.authentication import pluginlab_member, pluginlab_user
from pluginlab_django.decorators import pluginlab_token_required


class Me(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        member = pluginlab_member(request)
        return Response({
            "user": type(request.user).__name__,
            "email": request.user.email,
            "uid": pluginlab_user(request).uid,
            "member": member.remote_id if member else None,
        })


@pluginlab_token_required
def plain_me(request):
    return JsonResponse({"uid": request.pluginlab.uid})
"""

USER_MODEL = """
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    email = models.EmailField(unique=True)
"""


def wait_for_env(env_file: Path, process: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if env_file.exists() and "PLUGINLAB_FIELD_ENCRYPTION_KEYS=" in env_file.read_text():
            return dict(
                line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
            )
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.2)
    raise AssertionError("the sandbox wrote no .env")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), cwd=ROOT)
    return next(out.glob("django_pluginlab-*.whl"))


@pytest.mark.parametrize("leg", sorted(LEGS))
def test_fresh_site_from_the_readme(leg, wheel, tmp_path):
    find_python, django_pin = LEGS[leg]
    python = find_python()
    if not python:
        pytest.skip(f"no interpreter for {leg}")
    venv = tmp_path / "venv"
    run(python, "-m", "venv", str(venv), cwd=tmp_path)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGINLAB", "PLUGIPAY"))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DATABASE_URL", None)
    env.pop("PYTHONPATH", None)
    run(
        py,
        "-m",
        "pip",
        "install",
        "--quiet",
        *readme_install_line(wheel),
        django_pin,
        cwd=tmp_path,
        env=env,
    )

    run(py, "-m", "django", "startproject", "mysite", cwd=tmp_path, env=env)
    site = tmp_path / "mysite"
    accounts = site / "accounts"
    (accounts / "migrations").mkdir(parents=True)
    (accounts / "__init__.py").write_text("")
    (accounts / "migrations" / "__init__.py").write_text("")
    (accounts / "models.py").write_text(USER_MODEL)
    with open(site / "mysite" / "settings.py", "a") as f:
        f.write(site_settings())
    with open(site / "mysite" / "urls.py", "a") as f:
        f.write(site_urls())
    (site / "mysite" / "views.py").write_text(VIEWS)

    def manage(*args: str, timeout: float = 300):
        return run(py, "manage.py", *args, cwd=site, env=env, timeout=timeout)

    # The README's order: the sandbox first (it needs no PLUGINLAB values),
    # then migrate and check, which need the values it writes.
    sandbox_port, site_port = free_port(), free_port()
    webhook_url = f"http://127.0.0.1:{site_port}/pluginlab/webhook/"
    sandbox = subprocess.Popen(
        [py, "manage.py", "pluginlab_sandbox", "--seed", "1", "--env-file", ".env",
         "--port", str(sandbox_port), "--members", "30", "--webhook-url", webhook_url],
        cwd=site, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    server = None
    try:
        lines = wait_for_env(site / ".env", sandbox)
        manage("makemigrations", "accounts")
        manage("migrate")
        checked = manage("check")
        assert "pluginlab.E" not in checked.stdout + checked.stderr
        synced = manage("pluginlab_sync", "all")
        assert "Traceback" not in synced.stderr

        server = subprocess.Popen(
            [py, "manage.py", "runserver", f"127.0.0.1:{site_port}", "--noreload"],
            cwd=site, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{site_port}"
        wait_http(base + "/admin/login/")
        token = lines["PLUGINLAB_DEMO_TOKEN"]
        bearer = {"Authorization": f"Bearer {token}"}
        me = requests.get(base + "/api/me/", headers=bearer, timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["user"] == "User"  # the custom model, member 0 is verified
        uid = me.json()["uid"]
        assert me.json()["member"] == uid
        plain = requests.get(base + "/plain/me/", headers=bearer, timeout=10)
        assert (plain.status_code, plain.json()) == (200, {"uid": uid})
        assert requests.get(base + "/api/me/", timeout=10).status_code == 401

        # A member changed at PluginLab: the sandbox delivers member.updated.
        admin = {
            "X-PluginLab-Admin-Sdk-Secret": lines["PLUGINLAB_SECRET"],
            "X-PluginLab-Plugin-Id": lines["PLUGINLAB_PLUGIN_ID"],
        }
        members = f"{lines['PLUGINLAB_AUTH_URL']}/admin/plugins/{lines['PLUGINLAB_PLUGIN_ID']}"
        patched = requests.patch(
            f"{members}/members/{uid}", json={"name": "Renamed By Webhook"}, headers=admin,
            timeout=10,
        )  # fmt: skip
        assert patched.status_code == 200, patched.text

        def mirror() -> tuple[str, str]:
            """The member's mirrored name and the deliveries' statuses."""
            out = manage(
                "shell", "-c",
                "from pluginlab_django.models import Member, WebhookDelivery\n"
                f"print('NAME=' + Member.objects.get(remote_id={uid!r}).name)\n"
                "print('STATUSES=' + ','.join("
                "WebhookDelivery.objects.values_list('status', flat=True)))",
            ).stdout  # fmt: skip
            found = dict(re.findall(r"^(NAME|STATUSES)=(.*)$", out, re.M))
            return found.get("NAME", ""), found.get("STATUSES", "")

        sandbox_url = f"http://127.0.0.1:{sandbox_port}/_sandbox/deliveries"

        def answered() -> list[dict]:
            deliveries = requests.get(sandbox_url, timeout=10).json()["deliveries"]
            return [d for d in deliveries if d.get("member_id") == uid]

        deadline = time.monotonic() + 20
        while not answered() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert [d["status_code"] for d in answered()] == [200], answered()
        name, statuses = mirror()
        deadline = time.monotonic() + 10
        while name != "Renamed By Webhook" and time.monotonic() < deadline:
            time.sleep(1)
            name, statuses = mirror()
        assert statuses, "the webhook was not even stored"
        # --- Needs webhook processing without a broker (issue 15 item 2,
        # WEBHOOK_PROCESSING, helper C's branch). Until that lands, the
        # delivery is stored but stays "received": expected failure.
        has_inline = (
            "WEBHOOK_PROCESSING"
            in manage(
                "shell", "-c", "from pluginlab_django.conf import DEFAULTS; print(sorted(DEFAULTS))"
            ).stdout
        )
        if not has_inline:
            pytest.xfail("webhook processing without a broker (WEBHOOK_PROCESSING) not merged")
        assert name == "Renamed By Webhook", f"mirror not updated; deliveries: {statuses}"
    finally:
        for process in (server, sandbox):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
