"""``/_sandbox/...``: HTTP twins of the Sandbox's Python control methods.

For tools that run the sandbox as a separate process (the management
command) and still want to mint tokens, inject faults or reset. These paths
are never faulted nor counted. Documented in docs/sandbox.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .wire import BadRequest, Request, Response, error

if TYPE_CHECKING:
    from . import Sandbox

PREFIX = "/_sandbox/"
FAULT_FIELDS = (
    "latency_ms",
    "error_rate",
    "error_status",
    "drop_rate",
    "path_prefix",
    "count",
    "retry_after",
)
TOKEN_FIELDS = ("plan_id", "price_id", "expires_in", "claim_style")


def handle(sb: Sandbox, req: Request) -> Response | None:
    if not req.path.startswith(PREFIX):
        return None
    name = req.path[len(PREFIX) :]
    route = (req.method, name)
    if route == ("POST", "token"):
        return _token(sb, req.json_object())
    if route == ("POST", "rotate-key"):
        return Response(200, {"kid": sb.rotate_signing_key()})
    if route == ("POST", "faults"):
        body = req.json_object()
        try:
            sb.set_faults(**{k: body[k] for k in FAULT_FIELDS if k in body})
        except (TypeError, ValueError) as exc:
            raise BadRequest("sandbox/invalid-faults", str(exc)) from None
        return Response(200, {"ok": True})
    if route == ("DELETE", "faults"):
        sb.clear_faults()
        return Response(200, {"ok": True})
    if route == ("POST", "cert-down"):
        sb.set_cert_down(bool(req.json_object().get("down", True)))
        return Response(200, {"ok": True, "down": sb.cert_down})
    if route == ("POST", "webhook-url"):
        url = req.json_object().get("url")
        if url is not None and not isinstance(url, str):
            raise BadRequest("sandbox/invalid-url", "url must be a string or null.")
        sb.set_webhook_url(url or None)
        return Response(200, {"ok": True, "url": url or None})
    if route == ("POST", "reset"):
        sb.reset()
        return Response(200, {"ok": True})
    if route == ("GET", "stats"):
        return Response(200, _stats(sb))
    if route == ("GET", "deliveries"):
        return Response(200, {"deliveries": sb.deliveries()})
    if route == ("GET", "env"):
        return Response(200, sb.env())
    if req.method == "GET" and name.startswith("members/") and name.count("/") == 1:
        member = sb.get_member(unquote(name.split("/", 1)[1]))
        if member is None:
            return error(404, "auth/member-not-found", "No member with this id.")
        return Response(200, member)
    return error(404, "sandbox/not-found", "No such sandbox control endpoint.")


def _token(sb: Sandbox, body: dict[str, Any]) -> Response:
    member_id = body.get("member_id") or body.get("memberId")
    if not isinstance(member_id, str) or not member_id:
        raise BadRequest("sandbox/invalid-member-id", "member_id is required.")
    kwargs = {k: body[k] for k in TOKEN_FIELDS if body.get(k) is not None}
    overrides = body.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise BadRequest("sandbox/invalid-overrides", "overrides must be an object.")
    if "kid" in body:
        kwargs["kid"] = body["kid"]
    try:
        token = sb.mint_token(member_id, **kwargs, **overrides)
    except (TypeError, ValueError) as exc:
        raise BadRequest("sandbox/invalid-token-request", str(exc)) from None
    return Response(200, {"token": token})


def _stats(sb: Sandbox) -> dict[str, Any]:
    by_path = sb.faults.stats()
    plan = sb.faults.plan()
    return {
        "requests": sum(by_path.values()),
        "requests_by_path": by_path,
        "members": len(sb.member_ids()),
        "deliveries": len(sb.deliveries()),
        "cert_down": sb.cert_down,
        "webhook_url": sb.webhooks.url,
        "faults": vars(plan).copy() if plan else None,
        "kid": sb.signing_private_key[0],
    }
