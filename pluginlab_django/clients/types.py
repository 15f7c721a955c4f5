"""Typed, snake_case views of the remote JSON (wire spec §1.2–1.4, §2).

Each dataclass keeps the JSON it was built from in ``raw`` so that a field the
vendor adds later reaches ``Member.remote_data`` instead of being dropped.
``from_json`` is tolerant: missing optional keys become ``None``/empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

PROVIDERS: tuple[str, ...] = ("google", "github", "gitlab", "microsoft")
REFRESHABLE_PROVIDERS: tuple[str, ...] = ("google", "gitlab")


def ms_to_datetime(value: int | None) -> datetime | None:
    """Convert the vendor's ``…Ms`` epoch milliseconds to an aware datetime."""
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


@dataclass(frozen=True)
class MemberAuth:
    email: str
    is_verified: bool
    has_password: bool
    sign_in_method: str
    provider_user_id: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemberAuth:
        return cls(
            email=data.get("email") or "",
            is_verified=bool(data.get("isVerified", False)),
            has_password=bool(data.get("hasPassword", False)),
            sign_in_method=data.get("signInMethod") or "",
            provider_user_id=data.get("providerUserId"),
        )


@dataclass(frozen=True)
class Member:
    id: str
    email: str
    auth: MemberAuth
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    picture_url: str | None = None
    custom_fields: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at_ms: int | None = None
    updated_at_ms: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Member:
        auth = MemberAuth.from_json(data.get("auth") or {})
        return cls(
            id=data["id"],
            email=data.get("email") or auth.email,
            auth=auth,
            name=data.get("name"),
            given_name=data.get("givenName"),
            family_name=data.get("familyName"),
            picture_url=data.get("pictureUrl"),
            custom_fields=dict(data.get("customFields") or {}),
            metadata=dict(data.get("metadata") or {}),
            created_at_ms=data.get("createdAtMs"),
            updated_at_ms=data.get("updatedAtMs"),
            raw=dict(data),
        )

    @property
    def created_at(self) -> datetime | None:
        return ms_to_datetime(self.created_at_ms)

    @property
    def updated_at(self) -> datetime | None:
        return ms_to_datetime(self.updated_at_ms)


@dataclass(frozen=True)
class MemberPage:
    items: list[Member]
    total: int
    next_page_token: str | None


@dataclass(frozen=True)
class Identity:
    provider: str
    provider_user_id: str
    access_token: str | None = None
    access_token_expires_at_ms: int | None = None
    refresh_token: str | None = None
    refresh_token_expires_at_ms: int | None = None
    last_used_at_ms: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Identity:
        return cls(
            provider=data["provider"],
            provider_user_id=str(data.get("providerUserId") or ""),
            access_token=data.get("accessToken"),
            access_token_expires_at_ms=data.get("accessTokenExpiresAtMs"),
            refresh_token=data.get("refreshToken"),
            refresh_token_expires_at_ms=data.get("refreshTokenExpiresAtMs"),
            last_used_at_ms=data.get("lastUsedAtMs"),
        )

    def __repr__(self) -> str:  # never print tokens
        return f"Identity(provider={self.provider!r}, provider_user_id={self.provider_user_id!r})"


@dataclass(frozen=True)
class QuotaUsage:
    interval: str
    is_over_limit: bool
    is_unlimited: bool
    reset_in_days: int
    usage_count: int
    usage_limit: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuotaUsage:
        return cls(
            interval=str(data.get("interval") or ""),
            is_over_limit=bool(data.get("isOverLimit", False)),
            is_unlimited=bool(data.get("isUnlimited", False)),
            reset_in_days=int(data.get("resetInDays") or 0),
            usage_count=int(data.get("usageCount") or 0),
            usage_limit=int(data.get("usageLimit") or 0),
        )


@dataclass(frozen=True)
class EventLocation:
    country_code: str
    subdivision_code: str | None = None


@dataclass(frozen=True)
class ApiKey:
    """A Plugipay API key record. ``secret`` is set only on the create response."""

    id: str
    account_id: str
    key_id: str
    description: str | None
    scope: str
    created_at: datetime | None
    revoked_at: datetime | None
    secret: str | None = field(default=None, repr=False, compare=False)

    @property
    def mode(self) -> str:
        return "live" if self.key_id.startswith("pk_live_") else "test"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApiKey:
        return cls(
            id=data["id"],
            account_id=data.get("accountId") or "",
            key_id=data.get("keyId") or "",
            description=data.get("description"),
            scope=data.get("scope") or "",
            created_at=_parse_iso(data.get("createdAt")),
            revoked_at=_parse_iso(data.get("revokedAt")),
            secret=data.get("secret"),
        )


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
