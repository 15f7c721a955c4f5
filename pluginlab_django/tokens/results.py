"""What a verified token holds, and why a token was refused.

Each refusal has its own class so the views can say which check failed
(RFC 6750 ``error_description``) without echoing the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The only algorithm PluginLab signs with (spec §1.5).
ALGORITHM = "PS256"


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
