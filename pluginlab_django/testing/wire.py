"""Request and response values passed between the server and the API modules.

The API modules never touch ``http.server``: they take a parsed ``Request``
and return a ``Response``, which keeps them small and testable on their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class BadRequest(Exception):
    """The request cannot be understood; answered 400 with this code."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Request:
    method: str
    path: str  # percent-decoding left to the route that needs it
    query: dict[str, str]
    raw_target: str  # path with query, exactly as received
    headers: Any  # email.message.Message: case-insensitive get()
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON; an empty body is ``{}``."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("request/invalid-json", "The body is not valid JSON.") from None

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise BadRequest("request/invalid-json", "The body must be a JSON object.")
        return data


@dataclass
class Response:
    status: int
    payload: Any = None  # JSON-serialisable; None with 204 means no body
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # exact bytes to send (idempotent replays)

    def body_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.status == 204:
            return b""
        return json.dumps(self.payload, separators=(",", ":")).encode("utf-8")


def error(status: int, code: str, message: str, **headers: str) -> Response:
    """A PluginLab-style error body."""
    return Response(status, {"code": code, "message": message}, dict(headers))
