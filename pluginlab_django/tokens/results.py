"""What a verified token holds (the refusals are in ``tokens.exceptions``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The only algorithm PluginLab signs with (spec §1.5).
ALGORITHM = "PS256"


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
