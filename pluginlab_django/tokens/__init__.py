"""PluginLab user tokens: the signing-key cache and PS256 verification.

PluginLab calls a plugin's backend with ``Authorization: Bearer <JWT>``
(wire spec §1.5). This module turns such a token into a :class:`TokenPayload`
(``results``) or raises an :class:`InvalidToken` subclass saying which check
failed (``exceptions``). It
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
* a token whose ``kid`` is unknown while the cert URL cannot be fetched is
  :class:`SigningKeysUnavailable` too (a key may have rotated in during the
  outage); a failed refetch starts no cool-down, so such a key is accepted
  once the cert URL answers again (after the short failure back-off);
* an unknown ``kid`` triggers at most one refetch per
  ``JWKS_REFETCH_COOLDOWN_SECONDS`` across threads (a lock) and workers
  (``cache.add`` of a marker), however many requests arrive at once;
* verified tokens are remembered by the SHA-256 of the token, never past
  their ``exp``, so a repeated token costs a hash and a dict lookup.

``jku``, ``x5u`` and embedded ``jwk`` header fields are never looked at.
"""

from .exceptions import (
    BadSignature,
    DisallowedAlgorithm,
    InvalidToken,
    MalformedToken,
    MissingClaim,
    SigningKeysUnavailable,
    TokenError,
    TokenExpired,
    TokenNotYetValid,
    TokenTooLarge,
    UnknownSigningKey,
    UnsupportedCriticalHeader,
    WrongAudience,
    WrongIssuer,
)
from .keys import (
    FETCH_FAILURE_BACKOFF_SECONDS,
    KeySet,
    SigningKeyStore,
    build_key_set,
    cache_lifetime,
)
from .results import ALGORITHM, TokenPayload, TokenUser
from .verifier import (
    MAX_TOKEN_LENGTH,
    TokenVerifier,
    bearer_token,
    get_verifier,
    reset_verifier,
    verify_token,
)

__all__ = [
    "ALGORITHM",
    "FETCH_FAILURE_BACKOFF_SECONDS",
    "MAX_TOKEN_LENGTH",
    "BadSignature",
    "DisallowedAlgorithm",
    "InvalidToken",
    "KeySet",
    "MalformedToken",
    "MissingClaim",
    "SigningKeyStore",
    "SigningKeysUnavailable",
    "TokenError",
    "TokenExpired",
    "TokenNotYetValid",
    "TokenPayload",
    "TokenTooLarge",
    "TokenUser",
    "TokenVerifier",
    "UnknownSigningKey",
    "UnsupportedCriticalHeader",
    "WrongAudience",
    "WrongIssuer",
    "bearer_token",
    "build_key_set",
    "cache_lifetime",
    "get_verifier",
    "reset_verifier",
    "verify_token",
]
