"""``verify_common_case`` is a shortcut to PyJWT's "yes", never a second opinion.

Every token it accepts, PyJWT accepts with the same claims; every token
that is unusual in any way goes to PyJWT (``None``). The plain valid token
must take the shortcut, or the verifier silently loses its speed.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pluginlab_django.tokens.common_case import verify_common_case

AUDIENCE, ISSUER, LEEWAY = "plugin_abc", "https://auth.pluginlab.ai", 30.0
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"uid": "mem_1", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def signed(payload: Any, key=KEY, headers: dict | None = None) -> str:
    return jwt.encode(payload, key, algorithm="PS256", headers=headers)


def raw_token(payload_json: str, key=KEY) -> str:
    """A token whose payload segment is exactly ``payload_json`` (signed)."""
    template = signed({"x": 1}, key)
    header = template.split(".")[0]
    payload = base64.urlsafe_b64encode(payload_json.encode()).rstrip(b"=").decode()
    return re_sign(f"{header}.{payload}", key)


def re_sign(signing_input: str, key=KEY) -> str:
    algorithm = jwt.algorithms.RSAPSSAlgorithm(jwt.algorithms.RSAPSSAlgorithm.SHA256)
    signature = algorithm.sign(signing_input.encode(), key)
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def pyjwt(token: str) -> dict[str, Any] | None:
    try:
        return jwt.decode(
            token,
            KEY.public_key(),
            algorithms=["PS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
    except jwt.PyJWTError:
        return None


def shortcut(token: str) -> dict[str, Any] | None:
    return verify_common_case(
        token, KEY.public_key(), audience=AUDIENCE, issuer=ISSUER, leeway=LEEWAY
    )


def test_a_plain_valid_token_takes_the_shortcut_with_pyjwts_claims():
    token = signed(claims(user={"email": "a@example.com"}))
    assert shortcut(token) == pyjwt(token) is not None


def test_an_audience_list_holding_ours_takes_the_shortcut():
    token = signed(claims(aud=["other", AUDIENCE]))
    assert shortcut(token) == pyjwt(token) is not None


now = int(time.time())
UNUSUAL = {
    "expired": claims(exp=now - 60),
    "expired within the leeway is still valid for both": claims(exp=now - 10),
    "exp as a numeric string": claims(exp=str(now + 600)),
    "exp true": claims(exp=True),
    "exp null": claims(exp=None),
    "exp missing": claims(exp=DROP),
    "exp huge": claims(exp=10**400),
    "iat in the future": claims(iat=now + 600),
    "iat a string": claims(iat="soon"),
    "iat missing": claims(iat=DROP),
    "nbf in the future": claims(nbf=now + 600),
    "nbf null": claims(nbf=None),
    "nbf a float in the past": claims(nbf=now - 0.5),
    "iss other": claims(iss="https://evil.example"),
    "iss a list": claims(iss=[ISSUER]),
    "aud other": claims(aud="plugin_other"),
    "aud a list without ours": claims(aud=["plugin_other"]),
    "aud a list with a number": claims(aud=[AUDIENCE, 7]),
    "aud empty": claims(aud=""),
    "aud a dict": claims(aud={AUDIENCE: True}),
    "sub a number": claims(sub=7),
    "jti a list": claims(jti=["a"]),
}


@pytest.mark.parametrize("case", list(UNUSUAL), ids=list(UNUSUAL))
def test_the_shortcut_never_accepts_what_pyjwt_refuses(case):
    token = raw_token(json.dumps(UNUSUAL[case]))
    accepted = shortcut(token)
    if accepted is not None:
        assert accepted == pyjwt(token), "accepted what PyJWT judges otherwise"
    if pyjwt(token) is None:
        assert accepted is None


@pytest.mark.parametrize(
    "payload_json",
    ["[1, 2]", '"a string"', "NaN", '{"exp": NaN}', "{", '{"a": 1} trailing'],
)
def test_payloads_that_are_not_plain_json_objects_go_to_pyjwt(payload_json):
    assert shortcut(raw_token(payload_json)) is None


def test_a_signature_by_another_key_goes_to_pyjwt():
    token = signed(claims(), key=OTHER_KEY)
    assert shortcut(token) is None
    assert pyjwt(token) is None


def test_a_tampered_payload_goes_to_pyjwt():
    header, _, signature = signed(claims()).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims(uid="mem_2")).encode())
    token = f"{header}.{forged.rstrip(b'=').decode()}.{signature}"
    assert shortcut(token) is None
    assert pyjwt(token) is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h, p, s: f"{h}.{p}.{s}.extra",
        lambda h, p, s: f"{h}.{p}",
        lambda h, p, s: f"{h}.{p}=.{s}",  # padded: PyJWT may accept; not our case
        lambda h, p, s: f"{h}.{p}.{s[:-1]}!",
        lambda h, p, s: f"{h}.{p[:-1]}{chr(ord(p[-1]) ^ 1)}.{s}",  # spare bits or data
        lambda h, p, s: f"{h} .{p}.{s}",
    ],
    ids=["four segments", "two segments", "padding", "bad alphabet", "last char", "space"],
)
def test_odd_segments_go_to_pyjwt(mangle):
    header, payload, signature = signed(claims()).split(".")
    assert shortcut(mangle(header, payload, signature)) is None


def test_non_canonical_base64_goes_to_pyjwt():
    """Spare bits set in the last character decode to the same bytes: both
    must refuse the token, or one signed token would have many spellings."""
    header, payload, signature = signed(claims()).split(".")
    spare = len(signature) % 4  # 2048-bit signature: 342 chars, 4 spare bits
    assert spare
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(signature[-1])
    odd = signature[:-1] + alphabet[index | 1]
    assert odd != signature
    token = f"{header}.{payload}.{odd}"
    assert shortcut(token) is None
    assert pyjwt(token) is None
