"""PS256 verification of one token against the signing keys, and the
process-wide verifier built from settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from base64 import urlsafe_b64decode
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..conf import on_settings_change, pluginlab_settings
from .common_case import verify_common_case
from .exceptions import (
    BadSignature,
    DisallowedAlgorithm,
    InvalidToken,
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
from .keys import SigningKeyStore
from .results import ALGORITHM, TokenPayload, TokenUser

#: Longer tokens are refused before any parsing (a real one is < 2 KB).
MAX_TOKEN_LENGTH = 8 * 1024

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_HEADER_CACHE_SIZE = 64


# --- Verification ----------------------------------------------------------

# PyJWT errors, most specific first, and what each means to the caller.
_PYJWT_ERRORS: tuple[tuple[type[Exception], type[InvalidToken]], ...] = (
    (jwt.InvalidSignatureError, BadSignature),
    (jwt.ExpiredSignatureError, TokenExpired),
    (jwt.ImmatureSignatureError, TokenNotYetValid),
    (jwt.InvalidAudienceError, WrongAudience),
    (jwt.InvalidIssuerError, WrongIssuer),
    (jwt.InvalidAlgorithmError, DisallowedAlgorithm),
    (jwt.InvalidIssuedAtError, MalformedToken),
    (jwt.DecodeError, MalformedToken),
    (jwt.InvalidKeyError, BadSignature),
)


def _translate(exc: jwt.PyJWTError) -> InvalidToken:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return MissingClaim(exc.claim)
    for pyjwt_error, ours in _PYJWT_ERRORS:
        if isinstance(exc, pyjwt_error):
            return ours()
    return InvalidToken()


def _user_field(user: Mapping[str, Any], camel: str, snake: str) -> str | None:
    value = user.get(camel)
    if value is None:
        value = user.get(snake)
    return value if isinstance(value, str) else None


def _decode_json_segment(segment: str) -> Any:
    """Strictly decode one base64url JSON segment (the header)."""
    if len(segment) % 4 == 1 or not _BASE64URL.fullmatch(segment):
        raise MalformedToken()
    try:
        return json.loads(urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):
        raise MalformedToken() from None


class TokenVerifier:
    """Verifies PluginLab tokens against a :class:`SigningKeyStore`.

    Thread-safe. The verified-token cache is a plain dict keyed by the
    token's SHA-256 (tokens themselves are not kept in memory), evicting the
    oldest entry when full.
    """

    def __init__(
        self,
        keys: SigningKeyStore,
        *,
        audience: str,
        issuer: str,
        leeway: float = 30,
        cache_size: int = 10_000,
    ) -> None:
        self.keys = keys
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.cache_size = cache_size
        self._verified: dict[bytes, TokenPayload] = {}
        self._headers: dict[str, str | None] = {}  # header segment -> kid
        self._jwt = jwt.PyJWT(options={"require": ["exp", "iat", "iss", "aud"]})
        keys.listeners.append(self._verified.clear)

    def verify(self, token: str) -> TokenPayload:
        """The payload of a valid token; raises InvalidToken or SigningKeysUnavailable."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise TokenTooLarge() if isinstance(token, str) else MalformedToken()
        if not token.isascii():
            raise MalformedToken()
        digest = hashlib.sha256(token.encode()).digest()
        payload = self._verified.get(digest)
        if payload is not None:
            if time.time() < payload.exp:
                return payload
            self._verified.pop(digest, None)
        payload = self._verify_uncached(token)
        if self.cache_size > 0:
            self._remember(digest, payload)
        return payload

    def forget_verified(self) -> None:
        self._verified.clear()

    # Internals -------------------------------------------------------------

    def _remember(self, digest: bytes, payload: TokenPayload) -> None:
        verified = self._verified
        if len(verified) >= self.cache_size:
            # StopIteration/RuntimeError: emptied or resized by another thread.
            with contextlib.suppress(StopIteration, RuntimeError):
                verified.pop(next(iter(verified)), None)
        verified[digest] = payload

    def _kid(self, token: str) -> str | None:
        """The header's ``kid`` after the cheap header checks. Headers are few
        (one per signing key), so parsed ones are remembered."""
        header_segment, dot, _ = token.partition(".")
        if not dot:
            raise MalformedToken()
        try:
            return self._headers[header_segment]
        except KeyError:
            pass
        header = _decode_json_segment(header_segment)
        if not isinstance(header, dict):
            raise MalformedToken()
        if header.get("alg") != ALGORITHM:
            raise DisallowedAlgorithm()
        if "crit" in header or "b64" in header:
            raise UnsupportedCriticalHeader()
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise MalformedToken()
        if len(self._headers) >= _HEADER_CACHE_SIZE:
            self._headers.clear()
        self._headers[header_segment] = kid
        return kid

    def _verify_uncached(self, token: str) -> TokenPayload:
        kid = self._kid(token)
        key_set = self.keys.current()
        if kid is not None:
            key = key_set.by_kid.get(kid)
            if key is None:
                newer = self.keys.refetch()
                key = newer.by_kid.get(kid) if newer is not None else None
                if key is None:
                    raise UnknownSigningKey()
            return self._claims_to_payload(self._decode(token, (key,)))
        # No kid (what PluginLab documents): try each key, current first.
        try:
            return self._claims_to_payload(self._decode(token, key_set.ordered))
        except BadSignature:
            # Perhaps signed by a key published since: one rate-limited refetch.
            newer = self.keys.refetch()
            untried = tuple(k for k in (newer.ordered if newer else ()) if k not in key_set.ordered)
            if not untried:
                raise
            return self._claims_to_payload(self._decode(token, untried))

    def _decode(self, token: str, keys: tuple[RSAPublicKey, ...]) -> dict[str, Any]:
        """The claims, from the first key whose signature checks.

        A plainly valid token is accepted by ``verify_common_case``; anything
        else goes to PyJWT, which decides and names the error."""
        for key in keys:
            claims = verify_common_case(
                token, key, audience=self.audience, issuer=self.issuer, leeway=self.leeway
            )
            if claims is not None:
                return claims
            try:
                return self._jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise _translate(exc) from None
            except (ValueError, TypeError, OverflowError):  # absurd claim values
                raise MalformedToken() from None
        raise BadSignature()

    def _claims_to_payload(self, claims: dict[str, Any]) -> TokenPayload:
        uid = claims.get("uid")
        if not isinstance(uid, str) or not uid:
            raise MissingClaim("uid")
        try:
            iat = int(claims["iat"])
            exp = int(claims["exp"])
        except (ValueError, TypeError, OverflowError):
            raise MalformedToken() from None
        # Older PyJWT releases do not refuse an iat in the future: do it here.
        if iat > time.time() + self.leeway:
            raise TokenNotYetValid()
        user = claims.get("user")
        if not isinstance(user, dict):
            user = {}
        aud = claims["aud"]
        return TokenPayload(
            uid=uid,
            aud=aud if isinstance(aud, str) else self.audience,
            iss=claims["iss"],
            iat=iat,
            exp=exp,
            user=TokenUser(
                id=_user_field(user, "id", "id") or uid,
                email=_user_field(user, "email", "email") or "",
                name=_user_field(user, "name", "name"),
                given_name=_user_field(user, "givenName", "given_name"),
                family_name=_user_field(user, "familyName", "family_name"),
                plan_id=_user_field(user, "planId", "plan_id"),
                price_id=_user_field(user, "priceId", "price_id"),
            ),
            claims=claims,
        )


# --- The process-wide verifier ---------------------------------------------

_verifier: TokenVerifier | None = None
_verifier_lock = threading.Lock()


def get_verifier() -> TokenVerifier:
    """The verifier built from ``pluginlab_settings`` (rebuilt when they change)."""
    verifier = _verifier
    if verifier is None:
        verifier = _build_verifier()
    return verifier


def _build_verifier() -> TokenVerifier:
    global _verifier
    with _verifier_lock:
        if _verifier is None:
            _verifier = TokenVerifier(
                SigningKeyStore(pluginlab_settings.CERT_URL),
                audience=pluginlab_settings.token_audience,
                issuer=pluginlab_settings.TOKEN_ISSUER,
                leeway=pluginlab_settings.TOKEN_LEEWAY,
                cache_size=pluginlab_settings.TOKEN_CACHE_SIZE,
            )
        return _verifier


def verify_token(token: str) -> TokenPayload:
    """Verify a PluginLab token with the site's settings (see TokenVerifier)."""
    verifier = _verifier
    if verifier is None:
        verifier = _build_verifier()
    return verifier.verify(token)


def reset_verifier() -> None:
    """Forget the verifier, its verified tokens and every copy of the keys,
    in process and in the shared cache (tests; settings changes)."""
    global _verifier
    with _verifier_lock:
        verifier, _verifier = _verifier, None
    if verifier is not None:
        verifier.keys.forget()
    cert_url = pluginlab_settings.raw("CERT_URL")  # not validated: a reset never fails
    if isinstance(cert_url, str) and (verifier is None or verifier.keys.cert_url != cert_url):
        SigningKeyStore(cert_url).forget()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value.

    None when there is no header or another scheme is used (so other
    authentication schemes can be tried); MalformedToken for an empty bearer
    or one with spaces inside.
    """
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    credentials = credentials.strip()
    if not credentials:
        raise MalformedToken("The bearer token is empty.")
    if len(credentials) > MAX_TOKEN_LENGTH:
        raise TokenTooLarge()
    if len(credentials.split(maxsplit=1)) > 1:
        raise MalformedToken()
    return credentials


on_settings_change(reset_verifier, also=("CACHES",))
