"""PluginLab's admin APIs (spec §1.1–1.5) on top of the member store.

Routes, by prefix: ``/auth/admin/plugins/{pluginId}/...`` (members),
``/auth/admin/v1/cert`` (JWKS), ``/monetization/v1/admin/members/{id}/quota-usage``
and ``/event/events/create-custom``.
"""

from __future__ import annotations

import hmac
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .wire import BadRequest, Request, Response, error

if TYPE_CHECKING:
    from . import Sandbox

MEMBERS = re.compile(r"^/auth/admin/plugins/(?P<pid>[^/]+)/(?P<rest>.*)$")
QUOTA = re.compile(r"^/monetization/v1/admin/members/(?P<mid>[^/]+)/quota-usage$")
CERT_PATH = "/auth/admin/v1/cert"
EVENT_PATH = "/event/events/create-custom"
FIRST_PAGE = ("", "null", "None", "undefined")
COUNTRY = re.compile(r"^[A-Za-z]{2}$")


def handle(sb: Sandbox, req: Request) -> Response | None:
    """The response for a PluginLab path, or ``None`` when no route matches."""
    if req.path == CERT_PATH:
        if req.method != "GET":
            return error(405, "request/method-not-allowed", "Use GET.")
        if sb.cert_down:
            return error(503, "auth/unavailable", "The certificate service is unavailable.")
        return Response(200, sb.keyring.jwks(), {"Cache-Control": "public, max-age=300"})
    match = MEMBERS.match(req.path)
    if match:
        return _admin(sb, req) or _members(sb, req, match["pid"], match["rest"])
    match = QUOTA.match(req.path)
    if match:
        if req.method != "GET":
            return error(405, "request/method-not-allowed", "Use GET.")
        return _admin(sb, req) or _quota(sb, unquote(match["mid"]))
    if req.path == EVENT_PATH:
        if req.method != "POST":
            return error(405, "request/method-not-allowed", "Use POST.")
        return _admin(sb, req) or _custom_event(sb, req.json_object())
    return None


def _admin(sb: Sandbox, req: Request) -> Response | None:
    """401 unless both admin headers are right (spec §1.1)."""
    secret = req.headers.get("X-PluginLab-Admin-Sdk-Secret") or ""
    plugin_id = req.headers.get("X-PluginLab-Plugin-Id") or ""
    if not (
        hmac.compare_digest(secret.encode(), sb.admin_secret.encode()) and plugin_id == sb.plugin_id
    ):
        return error(401, "auth/unauthorized", "Missing or invalid admin credentials.")
    return None


def _not_found() -> Response:
    return error(404, "auth/member-not-found", "No member with this id or email.")


def _members(sb: Sandbox, req: Request, pid: str, rest: str) -> Response:
    if unquote(pid) != sb.plugin_id:
        return error(404, "auth/plugin-not-found", "Unknown plugin.")
    parts = rest.split("/")
    store, method = sb.store, req.method
    if parts == ["members"]:
        if method == "GET":
            return _list(sb, req)
        if method == "POST":
            return _create(sb, req.json_object())
    elif len(parts) == 3 and parts[:2] == ["member", "byEmail"] and method == "GET":
        member = store.get_by_email(unquote(parts[2]))
        return Response(200, member) if member else _not_found()
    elif len(parts) == 2 and parts[0] == "members":
        mid = unquote(parts[1])
        if method == "GET":
            member = store.get(mid)
            return Response(200, member) if member else _not_found()
        if method == "PATCH":
            return _update(sb, mid, req.json_object())
        if method == "DELETE":
            return Response(204) if store.delete(mid) else _not_found()
    elif parts[:1] == ["members"] and parts[2:3] == ["identities"]:
        mid = unquote(parts[1])
        if len(parts) == 3 and method == "GET":
            identities = store.identities(mid)
            return _not_found() if identities is None else Response(200, identities)
        if len(parts) == 5 and parts[4] == "refresh" and method == "POST":
            return _refresh(sb, mid, unquote(parts[3]))
    else:
        return error(404, "request/not-found", "No such endpoint.")
    return error(405, "request/method-not-allowed", "Method not allowed here.")


def _list(sb: Sandbox, req: Request) -> Response:
    raw_limit = req.query.get("limit", "50")
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        return error(400, "auth/invalid-limit", "limit must be an integer from 1 to 100.")
    start_after = req.query.get("startAfter", "")
    body = sb.store.page_json(limit, None if start_after in FIRST_PAGE else start_after)
    if body is None:
        return error(400, "auth/invalid-page-token", "startAfter is not a page token.")
    return Response(200, raw=body)


def _create(sb: Sandbox, body: dict[str, Any]) -> Response:
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or "@" not in email or not email.strip():
        return error(400, "auth/invalid-email", "A valid email is required.")
    if not isinstance(password, str) or not password:
        return error(400, "auth/invalid-password", "A password is required.")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return error(400, "auth/invalid-metadata", "metadata must be an object.")
    member = sb.store.create(
        email, is_verified=bool(body.get("isVerified", False)), metadata=metadata
    )
    if member is None:
        return error(409, "auth/email-already-exists", "A member with this email exists.")
    return Response(201, member)


def _update(sb: Sandbox, member_id: str, body: dict[str, Any]) -> Response:
    for name in ("name", "givenName", "familyName", "pictureUrl"):
        if name in body and body[name] is not None and not isinstance(body[name], str):
            return error(400, "auth/invalid-argument", f"{name} must be a string or null.")
    if (
        "metadata" in body
        and body["metadata"] is not None
        and not isinstance(body["metadata"], dict)
    ):
        return error(400, "auth/invalid-argument", "metadata must be an object.")
    if "isVerified" in body and not isinstance(body["isVerified"], bool):
        return error(400, "auth/invalid-argument", "isVerified must be a boolean.")
    member = sb.store.update(member_id, body)
    return Response(200, member) if member else _not_found()


def _refresh(sb: Sandbox, member_id: str, provider: str) -> Response:
    outcome, identity = sb.store.refresh(member_id, provider)
    if outcome == "ok":
        return Response(200, identity)
    if outcome == "unsupported":
        return error(400, "auth/refresh-not-supported", f"{provider} tokens cannot be refreshed.")
    if outcome == "revoked":
        return error(
            422,
            "auth/refresh-token-failed",
            "The refresh token was revoked or expired; the member must sign in again.",
        )
    return error(404, "auth/identity-not-found", "No such identity for this member.")


def _quota(sb: Sandbox, member_id: str) -> Response:
    usage = sb.store.quota(member_id)
    return Response(200, usage) if usage else _not_found()


def _custom_event(sb: Sandbox, body: dict[str, Any]) -> Response:
    """Validate, then count it toward the member's quota when it should."""
    source = body.get("eventSource")
    if not isinstance(source, str) or not 1 <= len(source) <= 10:
        raise BadRequest(
            "event/invalid-event-source", "eventSource must be a string of 1 to 10 characters."
        )
    member_id = body.get("memberId")
    if member_id is not None and not isinstance(member_id, str):
        raise BadRequest("event/invalid-member-id", "memberId must be a string.")
    in_quota = body.get("isInQuota", True)
    if in_quota is None:
        in_quota = True
    if not isinstance(in_quota, bool):
        raise BadRequest("event/invalid-is-in-quota", "isInQuota must be a boolean.")
    _validate_location(body.get("location"))
    if member_id and not sb.store.exists(member_id):
        # Documented choice: an unknown member is a 404, like the admin APIs.
        return _not_found()
    if member_id and in_quota:
        sb.store.count_event(member_id)
    return Response(201, {"ok": True})


def _validate_location(location: Any) -> None:
    if location is None:
        return
    if not isinstance(location, dict):
        raise BadRequest("event/invalid-location", "location must be an object.")
    country = location.get("countryCode")
    if not isinstance(country, str) or not COUNTRY.match(country):
        raise BadRequest(
            "event/invalid-country-code", "location.countryCode must be a two-letter code."
        )
    subdivision = location.get("subdivisionCode")
    if subdivision is not None and (
        not isinstance(subdivision, str) or not 1 <= len(subdivision) <= 10
    ):
        raise BadRequest(
            "event/invalid-subdivision-code",
            "location.subdivisionCode must be a short string or null.",
        )
