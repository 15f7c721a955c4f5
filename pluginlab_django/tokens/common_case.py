"""The common case of a PluginLab token, verified with ``cryptography`` directly.

On PyJWT 2.15, ``jwt.decode`` spends about two thirds of its time checking
each character of the three segments in a Python generator; the PS256
signature check itself is the smaller part. A site verifies a token on
every request that is not in the verified-token cache, so that overhead is
paid where it shows.

``verify_common_case`` accepts only a token that is unremarkable in every
respect (canonical base64url segments, JSON objects, a valid PS256
signature by the given key, each time claim a number that passes, the
expected issuer and audience, the optional claims PyJWT type-checks of the
right type) and returns its claims. For anything else it returns ``None``
and the verifier hands the token to PyJWT, which decides and names the
error. It never accepts a token PyJWT would refuse: it is a shortcut to
PyJWT's own "yes", never a second opinion.
"""

from __future__ import annotations

import binascii
import json
import math
import re
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = ["verify_common_case"]

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
#: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt: what PS256
#: means (RFC 7518 §3.5) and exactly what PyJWT verifies.
_PS256 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_SHA256 = hashes.SHA256()
#: Claims PyJWT refuses unless they are strings, when present.
_STRING_CLAIMS = ("sub", "jti")


def verify_common_case(
    token: str, key: RSAPublicKey, *, audience: str, issuer: str, leeway: float
) -> dict[str, Any] | None:
    """The claims of ``token`` when it is plainly valid for ``key``, else ``None``.

    The header's own checks (``alg``, ``crit``, ``kid``) are the verifier's,
    made before this is called.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header_segment, payload_segment, signature_segment = parts
    payload_bytes = _segment_bytes(payload_segment)
    signature = _segment_bytes(signature_segment)
    if payload_bytes is None or signature is None or _segment_bytes(header_segment) is None:
        return None
    try:
        key.verify(signature, f"{header_segment}.{payload_segment}".encode(), _PS256, _SHA256)
    except InvalidSignature:
        return None
    try:
        claims = json.loads(payload_bytes)
    except (ValueError, RecursionError):
        return None
    if not isinstance(claims, dict) or not _claims_pass(claims, audience, issuer, leeway):
        return None
    return claims


def _segment_bytes(segment: str) -> bytes | None:
    """The bytes of a canonical unpadded base64url segment (PyJWT's rules)."""
    if len(segment) % 4 == 1 or not _SEGMENT.fullmatch(segment):
        return None
    try:
        decoded = urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    # Non-zero spare bits: another segment would decode to the same bytes.
    if urlsafe_b64encode(decoded).rstrip(b"=") != segment.encode():
        return None
    return decoded


def _claims_pass(claims: dict[str, Any], audience: str, issuer: str, leeway: float) -> bool:
    now = time.time()
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", 0)
    if not (_plain_number(exp) and _plain_number(iat) and _plain_number(nbf)):
        return False
    # PyJWT compares the claims truncated to integers; so does this.
    if int(exp) <= now - leeway or int(iat) > now + leeway or int(nbf) > now + leeway:
        return False
    if type(claims.get("iss")) is not str or claims["iss"] != issuer:
        return False
    aud = claims.get("aud")
    if aud != audience and not (
        type(aud) is list and audience in aud and all(type(item) is str for item in aud)
    ):
        return False
    return all(type(claims[name]) is str for name in _STRING_CLAIMS if name in claims)


def _plain_number(value: object) -> TypeGuard[int | float]:
    """An int or a finite float (not a bool, a string or a huge float)."""
    if type(value) is int:
        return True
    return type(value) is float and math.isfinite(value)
