"""The sandbox's JWKS and minted tokens (§1.5), verified with plain PyJWT.

Raw HTTP with ``requests``, no project client: these files check the sandbox
itself against ``wire-protocol.md``, so a mistake cannot hide in the sandbox
and the clients at once.
"""

from __future__ import annotations

import re

import jwt
import pytest
import requests

from tests.sandbox_support import (
    cert_url,
    verify_with_jwks,
)

pytestmark = pytest.mark.no_db

# JWKS and tokens (§1.5) -----------------------------------------------------


def test_jwks_lists_the_current_key_first_with_kid_use_alg(sandbox):
    response = requests.get(cert_url(sandbox), timeout=10)
    assert response.status_code == 200
    assert re.search(r"max-age=\d+", response.headers["Cache-Control"])
    keys = response.json()["keys"]
    assert keys[0]["kid"] == sandbox.signing_private_key[0]
    for key in keys:
        assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "PS256")
        assert key["kid"] and key["n"] and key["e"]


@pytest.mark.parametrize("claim_style", ["camel", "snake"])
def test_minted_token_verifies_with_plain_pyjwt(sandbox, claim_style):
    member_id = sandbox.member_ids()[0]
    token = sandbox.mint_token(member_id, plan_id="plan_pro", claim_style=claim_style)
    assert jwt.get_unverified_header(token)["alg"] == "PS256"

    claims = verify_with_jwks(
        token, requests.get(cert_url(sandbox), timeout=10).json(), sandbox.plugin_id
    )

    assert claims["uid"] == member_id
    assert claims["user"]["id"] == member_id
    plan_key = "planId" if claim_style == "camel" else "plan_id"
    assert claims["user"][plan_key] == "plan_pro"


def test_token_minted_over_http_verifies(sandbox):
    member_id = sandbox.member_ids()[1]
    response = requests.post(
        f"{sandbox.url}/_sandbox/token",
        json={"member_id": member_id, "expires_in": 60},
        timeout=10,
    )
    claims = verify_with_jwks(
        response.json()["token"],
        requests.get(cert_url(sandbox), timeout=10).json(),
        sandbox.plugin_id,
    )
    assert claims["exp"] - claims["iat"] == 60


def test_rotation_puts_the_new_key_first_and_keeps_the_old_one(sandbox):
    member_id = sandbox.member_ids()[0]
    old_kid = sandbox.signing_private_key[0]
    old_token = sandbox.mint_token(member_id)

    new_kid = requests.post(f"{sandbox.url}/_sandbox/rotate-key", timeout=10).json()["kid"]

    jwks = requests.get(cert_url(sandbox), timeout=10).json()
    assert new_kid != old_kid
    assert [k["kid"] for k in jwks["keys"]][:2] == [new_kid, old_kid]
    assert verify_with_jwks(old_token, jwks, sandbox.plugin_id)["uid"] == member_id
    new_token = sandbox.mint_token(member_id)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert verify_with_jwks(new_token, jwks, sandbox.plugin_id)["uid"] == member_id
