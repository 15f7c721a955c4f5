"""PluginLab's admin APIs (wire spec §1.1–1.4): members, identities, quota, events."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import requests

from .exceptions import (
    MEMBER_NOT_FOUND,
    MemberNotFound,
    PluginLabError,
    PluginLabUnavailable,
    RefreshNotSupported,
    RefreshTokenFailed,
    UnexpectedNotFound,
)
from .transport import Transport, TransportFailure, TransportOptions
from .types import EventLocation, Identity, Member, MemberPage, QuotaUsage

DEFAULT_AUTH_URL = "https://auth.pluginlab.ai"
DEFAULT_MONETIZATION_URL = "https://monetization.pluginlab.ai/v1"
DEFAULT_EVENT_URL = "https://event.pluginlab.ai"
MAX_PAGE_SIZE = 100


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: Marks an ``update_member`` argument that was not given (``None`` clears a field).
UNSET: Any = _Unset()


class PluginLabClient:
    """A client for one plugin, authenticated with its admin SDK secret.

    Build it from settings with :meth:`from_settings` (or use
    ``get_pluginlab_client()``), or explicitly, without Django settings.
    """

    def __init__(
        self,
        *,
        plugin_id: str,
        admin_secret: str,
        auth_url: str = DEFAULT_AUTH_URL,
        monetization_url: str = DEFAULT_MONETIZATION_URL,
        event_url: str = DEFAULT_EVENT_URL,
        options: TransportOptions | None = None,
        transport: Transport | None = None,
    ) -> None:
        if not plugin_id or not admin_secret:
            raise ValueError("PluginLabClient needs a plugin_id and an admin_secret")
        self.plugin_id = plugin_id
        self._admin_secret = admin_secret
        self.auth_url = auth_url.rstrip("/")
        self.monetization_url = monetization_url.rstrip("/")
        self.event_url = event_url.rstrip("/")
        self.transport = transport or Transport(options)

    def __repr__(self) -> str:
        return f"<PluginLabClient plugin_id={self.plugin_id!r} auth_url={self.auth_url!r}>"

    @classmethod
    def from_settings(cls) -> PluginLabClient:
        from ..conf import pluginlab_settings as s

        return cls(
            plugin_id=s.PLUGIN_ID,
            admin_secret=s.ADMIN_SECRET,
            auth_url=s.AUTH_URL,
            monetization_url=s.MONETIZATION_URL,
            event_url=s.EVENT_URL,
            options=TransportOptions.from_settings(),
        )

    # Members ------------------------------------------------------------

    def list_members(
        self, limit: int = MAX_PAGE_SIZE, start_after: str | None = None
    ) -> MemberPage:
        """One page of members; pass the previous page's ``next_page_token``."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        params: dict[str, Any] = {"limit": limit}
        if start_after:
            params["startAfter"] = start_after
        data = self._call("GET", self._members_url("/members"), params=params)
        return MemberPage(
            items=[Member.from_json(item) for item in data.get("items") or ()],
            total=int(data.get("total") or 0),
            next_page_token=data.get("nextPageToken") or None,
        )

    def iter_member_pages(
        self, limit: int = MAX_PAGE_SIZE, start_after: str | None = None
    ) -> Iterator[MemberPage]:
        """Every page from ``start_after`` (the start when None) to the last."""
        token = start_after
        while True:
            page = self.list_members(limit, token)
            yield page
            if not page.next_page_token:
                return
            token = page.next_page_token

    def iter_members(self, limit: int = MAX_PAGE_SIZE) -> Iterator[Member]:
        for page in self.iter_member_pages(limit):
            yield from page.items

    def get_member(self, member_id: str) -> Member | None:
        """The member, or ``None`` when PluginLab answers 404
        ``auth/member-not-found``; any other 404 raises ``UnexpectedNotFound``."""
        data = self._call(
            "GET", self._members_url(f"/members/{_segment(member_id)}"), none_on_404=True
        )
        return None if data is None else Member.from_json(data)

    def get_member_by_email(self, email: str) -> Member | None:
        url = self._members_url(f"/member/byEmail/{_segment(email)}")
        data = self._call("GET", url, none_on_404=True)
        return None if data is None else Member.from_json(data)

    def create_member(
        self,
        email: str,
        password: str,
        *,
        is_verified: bool | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Member:
        body: dict[str, Any] = {"email": email, "password": password}
        if is_verified is not None:
            body["isVerified"] = is_verified
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return Member.from_json(self._call("POST", self._members_url("/members"), json_body=body))

    def update_member(
        self,
        member_id: str,
        *,
        name: Any = UNSET,
        given_name: Any = UNSET,
        family_name: Any = UNSET,
        picture_url: Any = UNSET,
        metadata: Any = UNSET,
        is_verified: Any = UNSET,
    ) -> Member:
        """Patch the given fields only; ``metadata`` replaces the whole object."""
        fields = {
            "name": name,
            "givenName": given_name,
            "familyName": family_name,
            "pictureUrl": picture_url,
            "metadata": metadata,
            "isVerified": is_verified,
        }
        body = {key: value for key, value in fields.items() if value is not UNSET}
        url = self._members_url(f"/members/{_segment(member_id)}")
        return Member.from_json(self._call("PATCH", url, json_body=body))

    def delete_member(self, member_id: str) -> None:
        self._call("DELETE", self._members_url(f"/members/{_segment(member_id)}"))

    # Identities ---------------------------------------------------------

    def get_member_identities(self, member_id: str) -> dict[str, Identity]:
        """Raises ``MemberNotFound`` for PluginLab's "no such member", and
        ``UnexpectedNotFound`` for any other 404."""
        url = self._members_url(f"/members/{_segment(member_id)}/identities")
        data = self._call("GET", url) or {}
        return {
            provider: Identity.from_json({"provider": provider, **value})
            for provider, value in data.items()
            if isinstance(value, Mapping)
        }

    def refresh_identity_token(self, member_id: str, provider: str) -> Identity:
        """A fresh access token; ``RefreshTokenFailed`` (422) means the member
        must sign in again, ``RefreshNotSupported`` that the provider can't."""
        url = self._members_url(
            f"/members/{_segment(member_id)}/identities/{_segment(provider)}/refresh"
        )
        data = self._call("POST", url)
        return Identity.from_json({"provider": provider, **(data or {})})

    # Quota and events ---------------------------------------------------

    def get_quota_usage(self, member_id: str) -> QuotaUsage | None:
        url = f"{self.monetization_url}/admin/members/{_segment(member_id)}/quota-usage"
        data = self._call("GET", url, none_on_404=True)
        return None if data is None else QuotaUsage.from_json(data)

    def create_custom_event(
        self,
        event_source: str,
        *,
        member_id: str | None = None,
        is_in_quota: bool | None = None,
        location: EventLocation | None = None,
    ) -> None:
        body: dict[str, Any] = {"eventSource": event_source}
        if member_id:
            body["memberId"] = member_id
        if is_in_quota is not None:
            body["isInQuota"] = is_in_quota
        if location is not None:
            body["location"] = {
                "countryCode": location.country_code,
                "subdivisionCode": location.subdivision_code,
            }
        self._call("POST", f"{self.event_url}/events/create-custom", json_body=body)

    # Plumbing -----------------------------------------------------------

    def _members_url(self, path: str) -> str:
        return f"{self.auth_url}/admin/plugins/{_segment(self.plugin_id)}{path}"

    def _call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        none_on_404: bool = False,
    ) -> Any:
        headers = {
            "X-PluginLab-Admin-Sdk-Secret": self._admin_secret,
            "X-PluginLab-Plugin-Id": self.plugin_id,
            "Accept": "application/json",
        }
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = self.transport.request(
                method, url, headers=headers, params=params, data=data
            )
        except TransportFailure as exc:
            raise PluginLabUnavailable(f"PluginLab is unreachable: {exc}") from None
        if response.status_code >= 400:
            error = _error_for(response, url)
            if none_on_404 and isinstance(error, MemberNotFound):
                return None
            raise error
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise PluginLabError(
                "PluginLab answered with a body that is not JSON", status=response.status_code
            ) from None


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _error_for(response: requests.Response, url: str) -> PluginLabError:
    status = response.status_code
    code = message = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        code = body.get("code") if isinstance(body.get("code"), str) else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
    if status == 404:
        if code == MEMBER_NOT_FOUND:
            return MemberNotFound(message or "No such member.", status=status, code=code)
        what = f"error {code!r}" if code else "no PluginLab error code"
        return UnexpectedNotFound(
            f"{url} answered 404 with {what}, not {MEMBER_NOT_FOUND!r}: "
            "is the URL (AUTH_URL, MONETIZATION_URL, PLUGIN_ID) right?",
            url=url,
            code=code,
        )
    message = message or f"PluginLab answered HTTP {status}"
    if status == 422:
        return RefreshTokenFailed(message, status=status, code=code or "auth/refresh-token-failed")
    if code == "auth/refresh-not-supported":
        return RefreshNotSupported(message, status=status, code=code)
    if status == 429 or status >= 500:
        return PluginLabUnavailable(message, status=status, code=code)
    return PluginLabError(message, status=status, code=code)
