"""Token checks outside DRF views: the ``pluginlab_token_required`` decorator
on plain Django views, and the drf-spectacular bearer scheme."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

from tests.auth_headers import bearer
from tests.forged_tokens import alg_none

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_verifier")]


# --- pluginlab_token_required ---------------------------------------------------


@pytest.mark.parametrize("claim_style", ["camel", "snake"])
def test_decorated_view_sees_the_payload_and_user(sandbox, claim_style):
    member_id = sandbox.member_ids()[0]
    token = sandbox.mint_token(member_id, plan_id="plan_pro", claim_style=claim_style)
    response = Client().get(reverse("auth-plain"), **bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["uid"] == body["user_pk"] == member_id
    assert body["user_class"] == "PluginLabUser"
    assert body["plan_id"] == "plan_pro"


def test_decorated_view_without_token_is_401_json(sandbox):
    response = Client().get(reverse("auth-plain"))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_decorated_view_with_bad_token_is_401_json(sandbox):
    token = alg_none(sandbox)
    response = Client().get(reverse("auth-plain"), **bearer(token))
    assert response.status_code == 401
    assert response.json() == {
        "detail": "The token must be signed with PS256.",
        "code": "invalid_token",
    }
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", '
        'error_description="The token must be signed with PS256."'
    )
    assert token not in response.content.decode()


def test_decorated_view_expired_token(sandbox):
    token = sandbox.mint_token(sandbox.member_ids()[0], expires_in=-3600)
    response = Client().get(reverse("auth-plain"), **bearer(token))
    assert response.status_code == 401
    assert response.json()["detail"] == "The token has expired."


def test_decorated_view_answers_503_json_when_no_key_can_be_had(sandbox):
    sandbox.set_cert_down(True)
    token = sandbox.mint_token(sandbox.member_ids()[0])
    response = Client().get(reverse("auth-plain"), **bearer(token))
    assert response.status_code == 503
    assert response.json()["code"] == "token_verification_unavailable"
    assert int(response["Retry-After"]) > 0


def test_decorated_view_needs_no_csrf_token(sandbox):
    client = Client(enforce_csrf_checks=True)
    token = sandbox.mint_token(sandbox.member_ids()[1])
    response = client.post(reverse("auth-plain-post"), **bearer(token))
    assert response.status_code == 200
    assert response.json() == {"method": "POST", "uid": sandbox.member_ids()[1]}


# --- drf-spectacular -------------------------------------------------------------


def test_openapi_schema_shows_the_bearer_scheme():
    from drf_spectacular.generators import SchemaGenerator
    from rest_framework.settings import api_settings

    from tests import views

    rest_framework = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    }
    with override_settings(REST_FRAMEWORK=rest_framework):
        assert api_settings.DEFAULT_SCHEMA_CLASS.__module__ == "drf_spectacular.openapi"
        schema = SchemaGenerator(patterns=views.urlpatterns).get_schema(request=None, public=True)
    scheme = schema["components"]["securitySchemes"]["PluginLabToken"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert scheme["bearerFormat"] == "JWT"
    assert {"PluginLabToken": []} in schema["paths"]["/whoami/"]["get"]["security"]
