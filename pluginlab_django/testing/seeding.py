"""Deterministic seed data: members, identities, quotas and Plugipay keys.

Everything derives from ``random.Random(seed)`` so a test can name "the
third seeded member" and get the same person every run. Generation is kept
cheap (plain dicts, one sha1 per member) so 100,000 members seed in seconds.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

SIGN_IN_METHODS = (
    "email-and-password",
    "magic-email-code",
    "google",
    "github",
    "gitlab",
    "microsoft",
)
OAUTH_PROVIDERS = frozenset({"google", "github", "gitlab", "microsoft"})
REFRESHABLE = frozenset({"google", "gitlab"})
GIVEN_NAMES = (
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Barbara",
    "Ken",
    "Margaret",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Niklaus",
)
FAMILY_NAMES = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Liskov",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "McCarthy",
    "Johnson",
    "Wirth",
)
PLANS = ("plan_free", "plan_pro", "plan_team")
YEAR_MS = 365 * 24 * 3600 * 1000
DAY_MS = 24 * 3600 * 1000


def member_id_for(email: str) -> str:
    """PluginLab derives the id from the sign-up email (spec §1.2)."""
    return (
        "mem_"
        + hashlib.sha1(email.strip().lower().encode("utf-8"), usedforsecurity=False).hexdigest()
    )


def new_member(
    email: str,
    *,
    now_ms: int,
    is_verified: bool = False,
    has_password: bool = True,
    sign_in_method: str = "email-and-password",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A member as the wire shows it, before any profile fields are known."""
    return {
        "id": member_id_for(email),
        "email": email,
        "name": None,
        "givenName": None,
        "familyName": None,
        "pictureUrl": None,
        "auth": {
            "email": email,
            "isVerified": bool(is_verified),
            "hasPassword": has_password,
            "signInMethod": sign_in_method,
        },
        "customFields": {},
        "metadata": dict(metadata or {}),
        "createdAtMs": now_ms,
        "updatedAtMs": now_ms,
    }


def new_quota(rng: random.Random | None = None) -> dict[str, Any]:
    """Quota state: a limit and a count (``unlimited`` ignores the limit)."""
    if rng is None:
        return {
            "interval": "month",
            "usageCount": 0,
            "usageLimit": 100,
            "isUnlimited": False,
            "resetInDays": 30,
        }
    roll = rng.random()
    if roll < 0.1:
        limit, count, unlimited = 0, rng.randrange(0, 5000), True
    else:
        limit = rng.choice((10, 50, 100, 1000))
        count = limit + rng.randrange(0, 5) if roll < 0.25 else rng.randrange(0, limit)
        unlimited = False
    return {
        "interval": rng.choice(("month", "month", "day", "year")),
        "usageCount": count,
        "usageLimit": limit,
        "isUnlimited": unlimited,
        "resetInDays": rng.randrange(0, 31),
    }


def _identity(
    rng: random.Random, provider: str, provider_user_id: str, now_ms: int
) -> dict[str, Any]:
    refresh = provider != "github"
    return {
        "provider": provider,
        "providerUserId": provider_user_id,
        "accessToken": f"{provider}_at_{rng.getrandbits(64):016x}",
        "accessTokenExpiresAtMs": now_ms + rng.randrange(-3600, 3600) * 1000,
        "refreshToken": f"{provider}_rt_{rng.getrandbits(64):016x}" if refresh else None,
        "refreshTokenExpiresAtMs": now_ms + 180 * DAY_MS if refresh else None,
        "lastUsedAtMs": now_ms - rng.randrange(0, 30 * DAY_MS),
    }


class SeedData:
    """The generated world; the store copies it into its own structures."""

    def __init__(self) -> None:
        self.members: list[dict[str, Any]] = []
        self.identities: dict[str, dict[str, dict[str, Any]]] = {}
        self.quotas: dict[str, dict[str, Any]] = {}
        self.revoked_refresh: set[tuple[str, str]] = set()


def seed_members(count: int, seed: int, now_ms: int | None = None) -> SeedData:
    """``count`` members; member 0 is a verified google user on a healthy quota."""
    rng = random.Random(seed)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    data = SeedData()
    for i in range(count):
        method = SIGN_IN_METHODS[i % len(SIGN_IN_METHODS)] if i else "google"
        given, family = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES)
        email = f"{given}.{family}.{i}@example.com".lower()
        created = now_ms - rng.randrange(DAY_MS, YEAR_MS)
        member = new_member(
            email,
            now_ms=created,
            is_verified=i == 0 or rng.random() < 0.7,
            has_password=method == "email-and-password",
            sign_in_method=method,
        )
        member["updatedAtMs"] = created + rng.randrange(0, now_ms - created)
        if method in OAUTH_PROVIDERS:
            puid = str(rng.getrandbits(48))
            member["auth"]["providerUserId"] = puid
            member["name"], member["givenName"], member["familyName"] = (
                f"{given} {family}",
                given,
                family,
            )
            member["pictureUrl"] = f"https://avatars.example.com/{puid}.png"
            data.identities[member["id"]] = {method: _identity(rng, method, puid, now_ms)}
            if method in REFRESHABLE and i and rng.random() < 0.1:
                data.revoked_refresh.add((member["id"], method))
        if rng.random() < 0.3:
            member["metadata"] = {
                "plan": rng.choice(PLANS),
                "source": rng.choice(("ads", "friend", "search")),
            }
        if rng.random() < 0.2:
            member["customFields"] = {
                "company": f"{family} & Co",
                "role": rng.choice(("dev", "pm", "ops")),
            }
        data.members.append(member)
        data.quotas[member["id"]] = (
            new_quota(rng)
            if i
            else {
                "interval": "month",
                "usageCount": 3,
                "usageLimit": 1000,
                "isUnlimited": False,
                "resetInDays": 12,
            }
        )
    return data


def seed_api_keys(
    rng: random.Random, admin_key_id: str, admin_secret: str, account_id: str
) -> list[dict[str, Any]]:
    """The printed admin key (scope ``*``) plus three test keys, one revoked."""
    created = "2024-01-01T00:00:00Z"
    keys = [
        {
            "id": "apk_" + f"{rng.getrandbits(64):016x}",
            "accountId": account_id,
            "keyId": admin_key_id,
            "description": "Sandbox admin key",
            "scope": "*",
            "secret": admin_secret,
            "createdAt": created,
            "revokedAt": None,
        }
    ]
    specs = (
        ("Read-only reporting", "plugipay:customer:read plugipay:invoice:read", None),
        ("Checkout backend", "plugipay:checkout:*", None),
        ("Old integration", "plugipay:apikey:write", "2024-06-01T00:00:00Z"),
    )
    for description, scope, revoked in specs:
        keys.append(
            {
                "id": "apk_" + f"{rng.getrandbits(64):016x}",
                "accountId": account_id,
                "keyId": f"pk_test_{rng.getrandbits(96):024x}",
                "description": description,
                "scope": scope,
                "secret": f"sk_test_{rng.getrandbits(128):032x}",
                "createdAt": created,
                "revokedAt": revoked,
            }
        )
    return keys
