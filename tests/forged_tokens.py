"""Forged PluginLab tokens, one per check the verifier makes (alg none, a
foreign key, a path in ``kid``, expired, truncated...), built from the
sandbox's real signing key where a forgery needs one. ``CORPUS`` names them
all; the token tests and the authentication tests both walk it."""

from __future__ import annotations

import base64
import json
import time

import jwt
from cryptography.hazmat.primitives import serialization

from pluginlab_django.tokens import (
    BadSignature,
    DisallowedAlgorithm,
    MalformedToken,
    MissingClaim,
    TokenExpired,
    TokenNotYetValid,
    TokenTooLarge,
    UnknownSigningKey,
    UnsupportedCriticalHeader,
    WrongAudience,
    WrongIssuer,
)

CERT_PATH = "/auth/admin/v1/cert"
ISSUER = "https://auth.pluginlab.ai"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_key(sb):
    """(kid, private key) the sandbox currently signs with: forgeries "with a
    good key" (RS256, PS384, crit, no kid...) need the real private key."""
    assert hasattr(sb, "signing_private_key"), (
        "Sandbox.signing_private_key -> (kid, RSAPrivateKey) is needed to forge tokens"
    )
    return sb.signing_private_key


def good_claims(sb, member_id: str | None = None, **changes) -> dict:
    member_id = member_id or sb.member_ids()[0]
    now = int(time.time())
    claims = {
        "uid": member_id,
        "aud": f"plugin:{sb.plugin_id}:admin",
        "iss": ISSUER,
        "iat": now,
        "exp": now + 3600,
        "user": {"id": member_id, "email": f"{member_id}@example.com", "planId": "plan_pro"},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(sb, claims: dict, *, algorithm: str = "PS256", headers: dict | None = None) -> str:
    kid, key = signing_key(sb)
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})


def public_pem(sb) -> bytes:
    _, key = signing_key(sb)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hs256_with_public_key(sb) -> str:
    """The classic alg confusion: HMAC keyed with the RSA public key."""
    import hashlib
    import hmac

    kid, _ = signing_key(sb)
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(good_claims(sb)).encode())
    mac = hmac.new(public_pem(sb), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


def alg_none(sb) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(good_claims(sb)).encode())}."


def resigned(sb, header: dict, payload_bytes: bytes) -> str:
    """A token with a real PS256 signature over arbitrary header/payload bytes."""
    _, key = signing_key(sb)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload_bytes)}".encode()
    signature = jwt.get_algorithm_by_name("PS256").sign(signing_input, key)
    return f"{signing_input.decode()}.{b64(signature)}"


def forged_tokens(sb) -> dict[str, tuple[str, type[Exception] | tuple[type[Exception], ...]]]:
    """name -> (token, the InvalidToken subclass it must raise)."""
    kid, _ = signing_key(sb)
    valid = sign(sb, good_claims(sb))
    now = int(time.time())
    return {
        "alg none": (alg_none(sb), DisallowedAlgorithm),
        "HS256 with the public key": (hs256_with_public_key(sb), DisallowedAlgorithm),
        "RS256 with the good key": (
            sign(sb, good_claims(sb), algorithm="RS256"),
            DisallowedAlgorithm,
        ),
        "PS384 with the good key": (
            sign(sb, good_claims(sb), algorithm="PS384"),
            DisallowedAlgorithm,
        ),
        "wrong kid": (sign(sb, good_claims(sb), headers={"kid": "not-a-key"}), UnknownSigningKey),
        "kid with a path": (
            sign(sb, good_claims(sb), headers={"kid": "../../../etc/passwd"}),
            UnknownSigningKey,
        ),
        "kid with a URL": (
            sign(sb, good_claims(sb), headers={"kid": f"{sb.url}{CERT_PATH}?x=1"}),
            UnknownSigningKey,
        ),
        "jku pointing elsewhere": (
            # A valid signature, but jku is ignored: proves nothing is fetched from it.
            sign(sb, good_claims(sb), headers={"jku": "http://127.0.0.1:9/evil", "kid": "evil"}),
            UnknownSigningKey,
        ),
        "expired": (sign(sb, good_claims(sb, iat=now - 7200, exp=now - 3600)), TokenExpired),
        "iat in the future": (sign(sb, good_claims(sb, iat=now + 3600)), TokenNotYetValid),
        "wrong aud": (sign(sb, good_claims(sb, aud="plugin:someone-else:admin")), WrongAudience),
        "wrong iss": (sign(sb, good_claims(sb, iss="https://evil.example")), WrongIssuer),
        "missing uid": (sign(sb, good_claims(sb, uid=None)), MissingClaim),
        "uid not a string": (sign(sb, good_claims(sb, uid=12345)), MissingClaim),
        "missing exp": (sign(sb, good_claims(sb, exp=None)), MissingClaim),
        # Depending on where the cut falls, the last segment is bad base64 or short.
        "truncated": (valid[: len(valid) - 20], (BadSignature, MalformedToken)),
        "two segments": (valid.rsplit(".", 1)[0], MalformedToken),
        "not base64": ("!!!!." + valid.split(".", 1)[1], MalformedToken),
        "JSON array payload": (
            resigned(sb, {"alg": "PS256", "kid": kid}, json.dumps([good_claims(sb)]).encode()),
            MalformedToken,
        ),
        "16 KB header": (
            sign(sb, good_claims(sb), headers={"pad": "x" * 16 * 1024}),
            TokenTooLarge,
        ),
        "unknown crit": (
            sign(sb, good_claims(sb), headers={"crit": ["exp-policy"], "exp-policy": 1}),
            UnsupportedCriticalHeader,
        ),
        "signature of another token": (
            valid.rsplit(".", 1)[0][:-4] + "AAAA." + valid.rsplit(".", 1)[1],
            BadSignature,
        ),
    }


#: Every forgery ``forged_tokens`` builds, by name.
CORPUS = [
    "alg none",
    "HS256 with the public key",
    "RS256 with the good key",
    "PS384 with the good key",
    "wrong kid",
    "kid with a path",
    "kid with a URL",
    "jku pointing elsewhere",
    "expired",
    "iat in the future",
    "wrong aud",
    "wrong iss",
    "missing uid",
    "uid not a string",
    "missing exp",
    "truncated",
    "two segments",
    "not base64",
    "JSON array payload",
    "16 KB header",
    "unknown crit",
    "signature of another token",
]
