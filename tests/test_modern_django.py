"""Modern Django (issue 14, item 3): LoginRequiredMiddleware, async views,
and a session user on token views."""

from __future__ import annotations

import asyncio
import json
import threading

import django
import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.test import AsyncClient
from django.urls import reverse

from pluginlab_django import decorators
from tests.urls_modern import async_view

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls_modern")]

LOGIN_REQUIRED = "django.contrib.auth.middleware.LoginRequiredMiddleware"


def bearer(sandbox, **claims) -> str:
    return f"Bearer {sandbox.mint_token(sandbox.member_ids()[0], **claims)}"


@pytest.mark.skipif(django.VERSION < (5, 1), reason="LoginRequiredMiddleware is Django 5.1+")
def test_decorated_view_is_exempt_from_login_required_middleware(sandbox, client, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_REQUIRED]
    refused = client.get(reverse("auth-plain"))
    assert refused.status_code == 401  # not 302 to the login page
    assert refused["WWW-Authenticate"].startswith("Bearer")
    allowed = client.get(reverse("auth-plain"), HTTP_AUTHORIZATION=bearer(sandbox))
    assert allowed.status_code == 200
    assert client.get(reverse("async-token-view")).status_code == 401


def test_async_view_stays_async_and_verifies_off_the_event_loop(sandbox, monkeypatch):
    assert iscoroutinefunction(async_view)
    seen = {}
    verify = decorators.verify_token

    def recording_verify(token):
        try:
            asyncio.get_running_loop()
            seen["on_loop"] = True
        except RuntimeError:
            seen["on_loop"] = False
        seen["thread"] = threading.get_ident()
        return verify(token)

    monkeypatch.setattr(decorators, "verify_token", recording_verify)

    async def call():
        seen["loop_thread"] = threading.get_ident()
        client = AsyncClient()
        ok = await client.get("/async/", headers={"Authorization": bearer(sandbox)})
        refused = await client.get("/async/", headers={"Authorization": "Bearer x.y.z"})
        return ok, refused

    ok, refused = async_to_sync(call)()
    assert ok.status_code == 200
    assert json.loads(ok.content) == {"uid": sandbox.member_ids()[0], "async": True}
    assert refused.status_code == 401
    assert seen["on_loop"] is False and seen["thread"] != seen["loop_thread"]


def test_sync_view_stays_sync():
    from tests.views import plain_view

    assert not iscoroutinefunction(plain_view)
    assert plain_view.csrf_exempt is True
    assert plain_view.login_required is False


@pytest.fixture
def session_api(monkeypatch):
    """The demo's REST settings: token authentication, then the session. (DRF
    reads DEFAULT_AUTHENTICATION_CLASSES when a view class is defined, so the
    demo's views are given them directly.)"""
    from rest_framework.authentication import SessionAuthentication

    from demo_project.api import views
    from pluginlab_django.authentication import PluginLabTokenAuthentication

    for view in (views.MeView, views.PremiumView, views.UsageView):
        monkeypatch.setattr(
            view, "authentication_classes", [PluginLabTokenAuthentication, SessionAuthentication]
        )


@pytest.mark.parametrize("path", ["/api/me", "/api/premium"])
def test_session_user_without_token_is_unauthenticated_on_token_views(
    admin_client, session_api, sandbox, path
):
    response = admin_client.get(path)
    assert response.status_code == 401, response.content[:300]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_session_user_with_a_token_is_the_token_member(admin_client, session_api, sandbox):
    response = admin_client.get("/api/me", HTTP_AUTHORIZATION=bearer(sandbox, plan_id="plan_pro"))
    assert response.status_code == 200
    assert response.json()["id"] == sandbox.member_ids()[0]


def test_session_user_on_the_decorator_view_gets_401(admin_client, sandbox):
    assert admin_client.get(reverse("auth-plain")).status_code == 401


def test_demo_usage_without_admin_secret_keeps_the_event(client, sandbox, settings):
    """Metered through the outbox: no remote call in the request, so no 500;
    the event waits (pending) until the secret is configured."""
    from pluginlab_django.models import CustomEvent

    settings.PLUGINLAB = {k: v for k, v in settings.PLUGINLAB.items() if k != "ADMIN_SECRET"}
    response = client.post(
        "/api/usage", {}, content_type="application/json", HTTP_AUTHORIZATION=bearer(sandbox)
    )
    assert response.status_code == 201, response.content[:300]
    assert list(CustomEvent.objects.values_list("status", flat=True)) == ["pending"]
