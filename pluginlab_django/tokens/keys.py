"""The signing keys: the JWKS fetched from the cert URL, cached in process and
in the Django cache, refetched at most once per cool-down for an unknown
``kid``, and kept past their lifetime while the cert URL is down.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from django.core.cache import BaseCache, caches
from jwt.algorithms import RSAPSSAlgorithm

from ..conf import pluginlab_settings
from .exceptions import SigningKeysUnavailable
from .results import ALGORITHM

logger = logging.getLogger("pluginlab_django.tokens")

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

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


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
        """For a key we do not know: a newer key set, or None when PluginLab
        has none (the cert URL answered, or did within the cool-down).

        Raises ``SigningKeysUnavailable`` when the cert URL cannot be fetched
        (now, or within the failure back-off): whether the key exists cannot
        be told, so the caller answers "retry later" (503), not "invalid"
        (401). A failed fetch does not start the unknown-``kid`` cool-down, so
        a key rotated during an outage is accepted once the URL answers again.

        Callers that queued on the lock while another thread refetched get
        that thread's result instead of fetching again.
        """
        seen = self._key_set
        with self._lock:
            if self._key_set is not seen:
                return self._key_set
            now = time.monotonic()
            if now < self._retry_not_before:
                raise SigningKeysUnavailable(retry_after=self._retry_not_before - now)
            cooldown = pluginlab_settings.JWKS_REFETCH_COOLDOWN_SECONDS
            if now - self._last_refetch < cooldown:
                return None
            shared = self._load_shared()
            if shared is not None and (seen is None or shared.fetched_at > seen.fetched_at):
                # Another worker fetched more recently: no need to fetch again.
                self._install(shared)
                return shared
            if not self._cache.add(self.cooldown_key, 1, timeout=cooldown):
                return None  # another worker refetched within the cool-down
            try:
                fresh = self._fetch()
            except _FetchFailed:
                # Not a cool-down: the next attempt after the back-off may
                # find the rotated key. Other workers may try again too.
                self._retry_not_before = time.monotonic() + FETCH_FAILURE_BACKOFF_SECONDS
                self._release_cooldown()
                raise SigningKeysUnavailable(retry_after=FETCH_FAILURE_BACKOFF_SECONDS) from None
            self._last_refetch = now
            self._install(fresh)
            self._store_shared(fresh)
            return fresh

    def _release_cooldown(self) -> None:
        try:
            self._cache.delete(self.cooldown_key)
        except Exception:
            logger.warning("Could not clear the JWKS refetch marker", exc_info=True)

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
    def _cache(self) -> BaseCache:
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
