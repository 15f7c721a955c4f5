"""Why a token was refused, or could not be judged.

Each refusal has its own class so the views can say which check failed
(RFC 6750 ``error_description``) without echoing the token. All of them are
importable from ``pluginlab_django.tokens``.
"""

from __future__ import annotations

__all__ = [
    "BadSignature",
    "DisallowedAlgorithm",
    "InvalidToken",
    "MalformedToken",
    "MissingClaim",
    "SigningKeysUnavailable",
    "TokenError",
    "TokenExpired",
    "TokenNotYetValid",
    "TokenTooLarge",
    "UnknownSigningKey",
    "UnsupportedCriticalHeader",
    "WrongAudience",
    "WrongIssuer",
]


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
    """The token's signing key cannot be had: none is known, or the token's
    ``kid`` is not among the known keys, and the cert URL cannot be fetched.
    The token may well be valid (signed by a key rotated in during the
    outage), so this is a temporary server-side failure (503), not a 401."""

    description = (
        "PluginLab's token signing keys could not be fetched; tokens cannot be verified right now."
    )

    def __init__(self, description: str | None = None, *, retry_after: float = 0) -> None:
        super().__init__(description)
        self.retry_after = retry_after
