"""Verifying PluginLab webhook deliveries (wire spec §1.6).

PluginLab signs the **raw request body** with HMAC-SHA256 keyed with the
webhook secret and sends the lowercase hex digest in
``X-PluginLab-Signature``. This module checks that signature (in constant
time), the delivery's freshness and the body's shape, and is reusable from
any view::

    from pluginlab_django.webhooks import WebhookHeaders, WebhookVerificationError, verify_webhook

    try:
        payload = verify_webhook(
            request.body,
            request.headers.get(WebhookHeaders.SIGNATURE),
            pluginlab_settings.WEBHOOK_SECRET,
            timestamp=request.headers.get(WebhookHeaders.TIMESTAMP),
        )
    except WebhookVerificationError as exc:
        return JsonResponse({"code": exc.code, "message": exc.message}, status=400)

The exceptions carry the vendor's error codes (``webhook/missing-secret``,
``webhook/missing-body``, ``webhook/missing-signature``,
``webhook/invalid-body-type``, ``webhook/invalid-signature``) plus ours for
what the vendor SDK does not check (timestamps, size). Messages never contain
the body, the secret or the signature.

Only the body is signed, so it is the truth (wire spec §1.6):
:func:`verify_delivery` takes the event name, delivery id and creation time
from the body when it carries them (``event``, ``deliveryId``,
``createdAtMs``), refuses a header that disagrees with it, and judges
freshness on ``createdAtMs`` rather than on the unsigned timestamp header.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.views.decorators.debug import sensitive_variables

from .conf import pluginlab_settings

__all__ = [
    "BodyTooLarge",
    "HeaderMismatch",
    "InvalidBodyType",
    "InvalidSignature",
    "InvalidTimestamp",
    "MissingBody",
    "MissingSecret",
    "MissingSignature",
    "StaleTimestamp",
    "VerifiedDelivery",
    "WebhookHeaders",
    "WebhookVerificationError",
    "body_digest",
    "compute_signature",
    "parse_payload",
    "parse_timestamp",
    "verify_delivery",
    "verify_webhook",
]

#: Timestamps below this are Unix seconds; at or above it, milliseconds.
MILLISECONDS_THRESHOLD = 10**11
#: Deepest nesting of arrays and objects accepted in a body. PluginLab's own
#: bodies are a few levels deep; a deeper one is refused before it can reach
#: the recursion limit of ``json`` or of any code walking the payload.
MAX_JSON_DEPTH = 32


class WebhookHeaders:
    """The header names PluginLab sends with each delivery (vendor SDK names)."""

    SIGNATURE = "X-PluginLab-Signature"
    EVENT = "X-PluginLab-Event"
    DELIVERY_ID = "X-PluginLab-Delivery-Id"
    HOOK_ID = "X-PluginLab-Hook-Id"
    PLUGIN_ID = "X-PluginLab-Plugin-Id"
    SIGNATURE_VERSION = "X-PluginLab-Signature-Version"
    SIGNATURE_ALGORITHM = "X-PluginLab-Signature-Algorithm"
    TIMESTAMP = "X-PluginLab-Timestamp"
    POWERED_BY = "X-Powered-By"

    ALL = (
        SIGNATURE,
        EVENT,
        DELIVERY_ID,
        HOOK_ID,
        PLUGIN_ID,
        SIGNATURE_VERSION,
        SIGNATURE_ALGORITHM,
        TIMESTAMP,
        POWERED_BY,
    )


class WebhookVerificationError(Exception):
    """A delivery that must not be trusted; ``code`` is stable, ``message`` for humans."""

    code = "webhook/invalid"
    message = "Invalid webhook."
    #: The HTTP status a receiver answers with.
    status_code = 400

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class MissingSecret(WebhookVerificationError):
    """No webhook secret is configured: our fault, so the sender should retry."""

    code = "webhook/missing-secret"
    message = "Missing secret. Please init the Webhook with a secret."
    status_code = 500


class MissingBody(WebhookVerificationError):
    code = "webhook/missing-body"
    message = "Missing body. Did this event originate from a PluginLab webhook?"


class MissingSignature(WebhookVerificationError):
    code = "webhook/missing-signature"
    message = "Missing hook signature. Did this event originate from a PluginLab webhook?"


class InvalidBodyType(WebhookVerificationError):
    code = "webhook/invalid-body-type"
    message = "Invalid body type. The body must be a JSON object."


class InvalidSignature(WebhookVerificationError):
    code = "webhook/invalid-signature"
    message = "Invalid hook signature."


class InvalidTimestamp(WebhookVerificationError):
    code = "webhook/invalid-timestamp"
    message = "Invalid X-PluginLab-Timestamp: expected Unix time in milliseconds or seconds."


class StaleTimestamp(WebhookVerificationError):
    """The timestamp is too far from now: a replay, or a badly wrong clock."""

    code = "webhook/stale-timestamp"
    message = "X-PluginLab-Timestamp is outside the accepted tolerance."


class HeaderMismatch(WebhookVerificationError):
    """An unsigned header contradicts the signed body: relabelled or replayed."""

    code = "webhook/header-mismatch"
    message = "A header disagrees with the signed body."


class BodyTooLarge(WebhookVerificationError):
    code = "webhook/body-too-large"
    message = "The body is larger than the accepted limit."
    status_code = 413


def compute_signature(body: bytes | str, secret: str) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret``."""
    if isinstance(body, str):
        body = body.encode()
    # hmac.digest: OpenSSL's one-shot HMAC, no HMAC object per delivery.
    return hmac.digest(secret.encode(), body, "sha256").hex()


def parse_timestamp(value: str | int) -> float:
    """Unix seconds from a timestamp in milliseconds or seconds (< 10^11)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidTimestamp() from None
    if number < 0:
        raise InvalidTimestamp()
    return number / 1000 if number >= MILLISECONDS_THRESHOLD else float(number)


@sensitive_variables("secret", "signature", "expected")
def verify_webhook(
    body: bytes | str,
    signature: str | None,
    secret: str | None,
    timestamp: str | int | None = None,
    tolerance: float | None = None,
    *,
    max_body_bytes: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify a delivery and return its JSON object payload.

    ``body`` must be the raw bytes as received: re-serialised JSON would not
    match the signature. Freshness is judged on the body's ``createdAtMs``
    when it has one (signed, so it cannot be moved); otherwise on
    ``timestamp`` (the unsigned ``X-PluginLab-Timestamp``) when given —
    against ``tolerance`` seconds, by default ``WEBHOOK_TOLERANCE_SECONDS``.
    ``max_body_bytes`` (optional) bounds a body already read. Raises a
    :class:`WebhookVerificationError` subclass.
    """
    if not secret:
        raise MissingSecret()
    if not isinstance(body, (bytes, bytearray, str)):
        raise InvalidBodyType("Invalid body type. The body must be the raw bytes or text.")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if not raw:
        raise MissingBody()
    if max_body_bytes is not None and len(raw) > max_body_bytes:
        raise BodyTooLarge()
    if not signature:
        raise MissingSignature()

    expected = compute_signature(raw, secret)
    # compare_digest on bytes: a non-ASCII header must fail, not raise TypeError.
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise InvalidSignature()

    payload = parse_payload(raw)
    created = _created_at_ms(payload)
    sent_at: float | None = None
    if created is not None:
        sent_at = created / 1000
    elif timestamp not in (None, ""):
        sent_at = parse_timestamp(timestamp)
    if sent_at is not None:
        if tolerance is None:
            tolerance = pluginlab_settings.WEBHOOK_TOLERANCE_SECONDS
        current = time.time() if now is None else now
        if abs(current - sent_at) > tolerance:
            raise StaleTimestamp(
                "The delivery's createdAtMs is outside the accepted tolerance."
                if created is not None
                else None
            )
    return payload


@dataclass(frozen=True)
class VerifiedDelivery:
    """What a verified delivery says, every field judged on the signed body."""

    payload: dict[str, Any]
    #: The body's ``event``, else the header's (empty when neither has one).
    event: str
    #: The body's ``deliveryId``, else the header's (empty when neither has one).
    delivery_id: str
    #: The body's ``createdAtMs``, when it has one.
    created_at_ms: int | None
    #: Lowercase hex SHA-256 of the raw body: one signed body, one digest.
    digest: str


@sensitive_variables("secret")
def verify_delivery(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | None,
    *,
    tolerance: float | None = None,
    max_body_bytes: int | None = None,
    now: float | None = None,
) -> VerifiedDelivery:
    """Verify a delivery (``headers`` as ``request.headers``) and say what it is.

    On top of :func:`verify_webhook`: the event name and delivery id come
    from the body when it carries them, and an ``X-PluginLab-Event`` or
    ``X-PluginLab-Delivery-Id`` header that disagrees is refused
    (:class:`HeaderMismatch`); the headers are used only for what the body
    does not say.
    """
    payload = verify_webhook(
        body,
        headers.get(WebhookHeaders.SIGNATURE),
        secret,
        timestamp=headers.get(WebhookHeaders.TIMESTAMP),
        tolerance=tolerance,
        max_body_bytes=max_body_bytes,
        now=now,
    )
    event = _agreed(payload, "event", headers.get(WebhookHeaders.EVENT), "X-PluginLab-Event")
    delivery_id = _agreed(
        payload, "deliveryId", headers.get(WebhookHeaders.DELIVERY_ID), "X-PluginLab-Delivery-Id"
    )
    return VerifiedDelivery(
        payload=payload,
        event=event,
        delivery_id=delivery_id,
        created_at_ms=_created_at_ms(payload),
        digest=body_digest(body),
    )


def body_digest(body: bytes | str) -> str:
    """Lowercase hex SHA-256 of a raw body (the deduplication key of a signed body)."""
    raw = body.encode() if isinstance(body, str) else body
    return hashlib.sha256(raw).hexdigest()


def _agreed(payload: Mapping[str, Any], key: str, header: str | None, header_name: str) -> str:
    """The body's string ``key``; a non-empty header must equal it."""
    value = payload.get(key)
    signed = value if isinstance(value, str) and value else ""
    header = (header or "").strip()
    if signed and header and header != signed:
        raise HeaderMismatch(f"{header_name} disagrees with the signed body's {key!r}.")
    return signed or header


def _created_at_ms(payload: Mapping[str, Any]) -> int | None:
    """The body's ``createdAtMs``: absent is None; present must be a non-negative integer."""
    if "createdAtMs" not in payload or payload["createdAtMs"] is None:
        return None
    value = payload["createdAtMs"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidTimestamp("Invalid createdAtMs in the body: expected Unix milliseconds.")
    return value


def parse_payload(raw: bytes) -> dict[str, Any]:
    """Decode a (verified) body: UTF-8 JSON, an object at the top, at most
    ``MAX_JSON_DEPTH`` levels deep.

    The depth is measured on the raw text before decoding, so a body nested
    thousands of levels deep is refused (400) instead of raising
    ``RecursionError`` (500) in the decoder.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidBodyType() from None
    # Text is nested no deeper than it has opening brackets (those inside
    # strings included): the common, shallow body skips the measurement.
    opening = text.count("[") + text.count("{")
    if opening > MAX_JSON_DEPTH and _nesting_depth(text) > MAX_JSON_DEPTH:
        raise InvalidBodyType(
            f"Invalid body type. The body must be a JSON object at most "
            f"{MAX_JSON_DEPTH} levels deep."
        )
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidBodyType() from None
    if not isinstance(payload, dict):
        raise InvalidBodyType()
    return payload


# A JSON string (escapes included), and the structural brackets.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_DEPTH_STEPS = str.maketrans({"[": "1", "{": "1", "]": "0", "}": "0"})


def _nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of JSON text, brackets inside strings not counted.

    Regular expressions and a running sum, no recursion; on malformed text
    the figure may be off, but the decoder refuses that text anyway.
    """
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    if not brackets:
        return 0
    steps = (1 if step == "1" else -1 for step in brackets.translate(_DEPTH_STEPS))
    return max(itertools.accumulate(steps))
