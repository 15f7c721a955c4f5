"""PluginLab user tokens: the signing-key cache and PS256 verification.

PluginLab calls a plugin's backend with ``Authorization: Bearer <JWT>``
(wire spec §1.5). This module turns such a token into a :class:`TokenPayload`
or raises an :class:`InvalidToken` subclass saying which check failed. It
knows nothing of DRF or of Django views: ``authentication.py`` and
``decorators.py`` adapt it.

Why not ``jwt.PyJWKClient``: it fetches on a cold cache with no single-flight,
and clears its cache when a fetch fails, so an outage of the cert URL would
turn every request into a 401. Here:

* the JWKS is kept in process *and* in the Django cache (shared by workers)
  for the cert response's ``Cache-Control: max-age``, clamped to settings;
  while fresh, verifying a token makes no network call;
* when the cert URL fails, the keys already known keep working past their
  lifetime (stale-if-error); with no key at all :class:`SigningKeysUnavailable`
  is raised, which is *not* an invalid token (the views answer 503);
* an unknown ``kid`` triggers at most one refetch per
  ``JWKS_REFETCH_COOLDOWN_SECONDS`` across threads (a lock) and workers
  (``cache.add`` of a marker), however many requests arrive at once;
* verified tokens are remembered by the SHA-256 of the token, never past
  their ``exp``, so a repeated token costs a hash and a dict lookup.

``jku``, ``x5u`` and embedded ``jwk`` header fields are never looked at.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import time
from base64 import urlsafe_b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from django.core.cache import caches
from django.core.signals import setting_changed
from django.dispatch import receiver
from jwt.algorithms import RSAPSSAlgorithm

from .conf import pluginlab_settings

logger = logging.getLogger(__name__)

#: The only algorithm PluginLab signs with (spec §1.5).
ALGORITHM = "PS256"
#: Longer tokens are refused before any parsing (a real one is < 2 KB).
MAX_TOKEN_LENGTH = 8 * 1024
#: A JWKS response larger than this is treated as a failed fetch.
MAX_JWKS_BYTES = 256 * 1024
#: Keys beyond this many in one JWKS are ignored (PluginLab publishes few).
MAX_JWKS_KEYS = 20
#: RSA keys shorter than this are ignored.
MIN_RSA_KEY_BITS = 2048
#: After a failed fetch, no new attempt for this many seconds: while the cert
#: URL is down, requests get an answer at once instead of waiting on it.
FETCH_FAILURE_BACKOFF_SECONDS = 5.0
#: The shared (Django cache) copy of the JWKS outlives its freshness so other
#: workers can fall back on it while the cert URL is down.
SHARED_JWKS_TIMEOUT = 7 * 24 * 3600

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_HEADER_CACHE_SIZE = 64


# --- Results ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenUser:
    """The ``user`` claim, whichever spelling (camelCase or snake_case) it used."""

    id: str
    email: str
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    plan_id: str | None = None
    price_id: str | None = None


@dataclass(frozen=True, slots=True)
class TokenPayload:
    """A verified PluginLab token. ``claims`` keeps every claim as received."""

    uid: str
    aud: str
    iss: str
    iat: int
    exp: int
    user: TokenUser
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


# --- Errors ----------------------------------------------------------------


class TokenError(Exception):
    """Base class: the token could not be accepted."""

    description = "The token could not be verified."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.description)

    @property
    def detail(self) -> str:
        return str(self.args[0])


class InvalidToken(TokenError):
    """The token is not acceptable. The message says which check failed and
    never contains the token itself (it goes into a WWW-Authenticate header)."""

    code = "invalid_token"
    description = "The token is invalid."


class MalformedToken(InvalidToken):
    description = "The token is malformed."


class TokenTooLarge(MalformedToken):
    description = "The token is too large."


class DisallowedAlgorithm(InvalidToken):
    description = "The token must be signed with PS256."


class UnsupportedCriticalHeader(InvalidToken):
    description = "The token has a critical header extension this server does not support."


class UnknownSigningKey(InvalidToken):
    description = "The token was signed with an unknown key."


class BadSignature(InvalidToken):
    description = "The token signature is invalid."


class TokenExpired(InvalidToken):
    description = "The token has expired."


class TokenNotYetValid(InvalidToken):
    description = "The token was issued in the future."


class WrongAudience(InvalidToken):
    description = "The token was issued for another audience."


class WrongIssuer(InvalidToken):
    description = "The token was issued by an unexpected issuer."


class MissingClaim(InvalidToken):
    description = "The token lacks a required claim."

    def __init__(self, claim: str) -> None:
        # ``claim`` is always one of our own claim names, never token content.
        super().__init__(f"The token has no valid '{claim}' claim.")
        self.claim = claim


class SigningKeysUnavailable(TokenError):
    """No signing key is known and the cert URL cannot be reached: the token
    may well be valid, so this is a temporary server-side failure (503)."""

    description = (
        "PluginLab's token signing keys could not be fetched; tokens cannot be verified right now."
    )

    def __init__(self, description: str | None = None, *, retry_after: float = 0) -> None:
        super().__init__(description)
        self.retry_after = retry_after


# --- Signing keys ----------------------------------------------------------


class _FetchFailed(Exception):
    pass


@dataclass(frozen=True)
class KeySet:
    """An immutable snapshot of the usable keys of one JWKS document."""

    by_kid: dict[str, RSAPublicKey]
    ordered: tuple[RSAPublicKey, ...]  # JWKS order: PluginLab's current key first
    jwks: dict[str, Any]  # the usable JWKs only, as shared with other workers
    fetched_at: float  # wall clock, comparable across workers
    expires_at: float  # wall clock

    @property
    def fingerprint(self) -> str:
        return json.dumps(self.jwks, sort_keys=True)


def _public_rsa_key(jwk: Any) -> RSAPublicKey | None:
    """The verification key of one JWK, or None when it is not a PS256 signing key."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
        return None
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        return None
    try:
        key = RSAPSSAlgorithm.from_jwk(jwk)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    if isinstance(key, RSAPrivateKey):  # a JWKS must not carry "d"; use the public half
        key = key.public_key()
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_KEY_BITS:
        return None
    return key


def build_key_set(jwks: Any, *, fetched_at: float, expires_at: float) -> KeySet:
    """Parse a JWKS document, keeping only RSA keys usable for PS256."""
    raw_keys = jwks.get("keys") if isinstance(jwks, dict) else None
    by_kid: dict[str, RSAPublicKey] = {}
    ordered: list[RSAPublicKey] = []
    kept: list[dict[str, Any]] = []
    for jwk in (raw_keys if isinstance(raw_keys, list) else [])[:MAX_JWKS_KEYS]:
        key = _public_rsa_key(jwk)
        if key is None:
            continue
        public = {k: jwk[k] for k in ("kty", "kid", "use", "alg", "n", "e") if k in jwk}
        kept.append(public)
        ordered.append(key)
        if "kid" in jwk:
            by_kid.setdefault(jwk["kid"], key)
    return KeySet(
        by_kid=by_kid,
        ordered=tuple(ordered),
        jwks={"keys": kept},
        fetched_at=fetched_at,
        expires_at=expires_at,
    )


def cache_lifetime(cache_control: str | None) -> float:
    """Seconds to keep a JWKS, from its response's Cache-Control header."""
    low = pluginlab_settings.JWKS_CACHE_MIN_SECONDS
    high = pluginlab_settings.JWKS_CACHE_MAX_SECONDS
    match = _MAX_AGE.search(cache_control or "")
    if match is None:
        seconds = pluginlab_settings.JWKS_CACHE_DEFAULT_SECONDS
    else:
        seconds = int(match.group(1))
    return float(min(max(seconds, low), high))


class SigningKeyStore:
    """The JWKS of one cert URL: in process, in the Django cache, on the network.

    Reading the current keys (the hot path) takes no lock and makes no call;
    only an expired or unknown key goes further. ``listeners`` are called
    (with no argument) whenever the set of keys changes, so caches of tokens
    verified with a key that has gone are dropped.
    """

    def __init__(self, cert_url: str) -> None:
        self.cert_url = cert_url
        self.listeners: list[Callable[[], None]] = []
        self._key_set: KeySet | None = None
        self._lock = threading.Lock()
        self._last_refetch = float("-inf")  # monotonic; only unknown-kid refetches
        self._retry_not_before = float("-inf")  # monotonic; after a failed fetch
        url_hash = hashlib.sha256(cert_url.encode()).hexdigest()[:32]
        self.shared_key = f"pluginlab:jwks:v1:{url_hash}"
        self.cooldown_key = f"{self.shared_key}:refetch"

    # Reading ---------------------------------------------------------------

    def current(self) -> KeySet:
        """The keys to verify with now; fetches only when expired or cold."""
        key_set = self._key_set
        if key_set is not None and time.time() < key_set.expires_at:
            return key_set
        return self._revalidate(key_set)

    def refetch(self) -> KeySet | None:
        """For a key we do not know: a newer key set, or None if there is none
        to be had (cooling down, or the fetch failed).

        Callers that queued on the lock while another thread refetched get
        that thread's result instead of fetching again.
        """
        seen = self._key_set
        with self._lock:
            if self._key_set is not seen:
                return self._key_set
            now = time.monotonic()
            cooldown = pluginlab_settings.JWKS_REFETCH_COOLDOWN_SECONDS
            if now - self._last_refetch < cooldown:
                return None
            shared = self._load_shared()
            if shared is not None and (seen is None or shared.fetched_at > seen.fetched_at):
                # Another worker fetched more recently: no need to fetch again.
                self._install(shared)
                return shared
            self._last_refetch = now
            if not self._cache.add(self.cooldown_key, 1, timeout=cooldown):
                return None  # another worker refetched within the cool-down
            try:
                fresh = self._fetch()
            except _FetchFailed:
                return None
            self._install(fresh)
            self._store_shared(fresh)
            return fresh

    def forget(self) -> None:
        """Drop every copy of the keys (for tests and settings changes)."""
        with self._lock:
            self._key_set = None
            self._last_refetch = float("-inf")
            self._retry_not_before = float("-inf")
        try:
            self._cache.delete_many([self.shared_key, self.cooldown_key])
        except Exception:  # a misconfigured cache must not break a reset
            logger.debug("Could not clear the shared JWKS", exc_info=True)

    # Internals -------------------------------------------------------------

    @property
    def _cache(self):
        return caches[pluginlab_settings.CACHE_ALIAS]

    def _revalidate(self, stale: KeySet | None) -> KeySet:
        if stale is None:
            self._lock.acquire()  # cold: wait for the one fetch in flight
        elif not self._lock.acquire(blocking=False):
            return stale  # someone is refreshing; the stale keys do meanwhile
        try:
            key_set = self._key_set
            if key_set is not None and time.time() < key_set.expires_at:
                return key_set
            if time.monotonic() < self._retry_not_before:
                return self._stale_or_unavailable(key_set)
            shared = self._load_shared()
            if shared is not None and (key_set is None or shared.fetched_at > key_set.fetched_at):
                self._install(shared)
                key_set = shared
                if time.time() < shared.expires_at:
                    return shared
            try:
                fresh = self._fetch()
            except _FetchFailed:
                self._retry_not_before = time.monotonic() + FETCH_FAILURE_BACKOFF_SECONDS
                return self._stale_or_unavailable(key_set)
            self._install(fresh)
            self._store_shared(fresh)
            return fresh
        finally:
            self._lock.release()

    def _stale_or_unavailable(self, key_set: KeySet | None) -> KeySet:
        if key_set is not None and key_set.ordered:
            return key_set
        raise SigningKeysUnavailable(retry_after=FETCH_FAILURE_BACKOFF_SECONDS)

    def _install(self, key_set: KeySet) -> None:
        previous = self._key_set
        self._key_set = key_set
        if previous is not None and previous.fingerprint != key_set.fingerprint:
            for listener in self.listeners:
                listener()

    def _fetch(self) -> KeySet:
        """GET the cert URL (plain requests: clients/ is for the admin APIs)."""
        timeout = (pluginlab_settings.CONNECT_TIMEOUT, pluginlab_settings.READ_TIMEOUT)
        try:
            with requests.get(
                self.cert_url,
                timeout=timeout,
                headers={"Accept": "application/json"},
                stream=True,
            ) as response:
                if response.status_code != 200:
                    raise _FetchFailed(f"HTTP {response.status_code}")
                body = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
                cache_control = response.headers.get("Cache-Control")
        except requests.RequestException as exc:
            logger.warning("Fetching the PluginLab JWKS failed: %s", type(exc).__name__)
            raise _FetchFailed(type(exc).__name__) from None
        except _FetchFailed as exc:
            logger.warning("Fetching the PluginLab JWKS failed: %s", exc)
            raise
        except Exception as exc:  # urllib3 errors raised while reading the body
            logger.warning("Fetching the PluginLab JWKS failed: %s", type(exc).__name__)
            raise _FetchFailed(type(exc).__name__) from None
        if len(body) > MAX_JWKS_BYTES:
            logger.warning("The PluginLab JWKS is larger than %d bytes", MAX_JWKS_BYTES)
            raise _FetchFailed("too large")
        try:
            document = json.loads(body)
        except ValueError:
            logger.warning("The PluginLab JWKS is not JSON")
            raise _FetchFailed("not JSON") from None
        now = time.time()
        key_set = build_key_set(
            document, fetched_at=now, expires_at=now + cache_lifetime(cache_control)
        )
        if not key_set.ordered:
            logger.warning("The PluginLab JWKS has no usable PS256 key")
            raise _FetchFailed("no usable key")
        return key_set

    def _load_shared(self) -> KeySet | None:
        try:
            entry = self._cache.get(self.shared_key)
        except Exception:
            logger.warning("Reading the shared JWKS from the cache failed", exc_info=True)
            return None
        if not isinstance(entry, dict):
            return None
        current = self._key_set
        if current is not None and entry.get("fetched_at") == current.fetched_at:
            return current
        try:
            key_set = build_key_set(
                entry["jwks"],
                fetched_at=float(entry["fetched_at"]),
                expires_at=float(entry["expires_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return key_set if key_set.ordered else None

    def _store_shared(self, key_set: KeySet) -> None:
        entry = {
            "jwks": key_set.jwks,
            "fetched_at": key_set.fetched_at,
            "expires_at": key_set.expires_at,
        }
        try:
            self._cache.set(self.shared_key, entry, timeout=SHARED_JWKS_TIMEOUT)
        except Exception:
            logger.warning("Writing the shared JWKS to the cache failed", exc_info=True)


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
        for key in keys:
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
    if verifier is None or verifier.keys.cert_url != pluginlab_settings.CERT_URL:
        SigningKeyStore(pluginlab_settings.CERT_URL).forget()


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


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("PLUGINLAB", "CACHES"):
        reset_verifier()
