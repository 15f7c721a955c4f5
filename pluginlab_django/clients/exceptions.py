"""Typed errors raised by the clients.

Messages carry the remote's code and message, never a secret, a token or a
request body: they end up in logs, admin messages and ``SyncRun.error``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import CustomEvent


class RemoteError(Exception):
    """Base for every failure talking to PluginLab or Plugipay."""

    #: Only on the error ``services.events.send_custom_event`` re-raises: the
    #: failed event's stored row.
    custom_event: CustomEvent

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        parts = [p for p in (f"HTTP {self.status}" if self.status else None, self.code) if p]
        prefix = f"[{' '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"


class RemoteUnavailable(RemoteError):
    """The service could not be reached (connection refused, dropped, timed out)
    or kept failing with 429/5xx after the configured retries."""


class PluginLabError(RemoteError):
    """PluginLab answered with an error (``status``, ``code``, ``message``)."""


class PluginLabUnavailable(PluginLabError, RemoteUnavailable):
    pass


#: The one error code by which PluginLab says a member does not exist.
MEMBER_NOT_FOUND = "auth/member-not-found"


class MemberNotFound(PluginLabError):
    """404 ``auth/member-not-found``: PluginLab's own word that the member does
    not exist — the only answer that may mark a mirrored member deleted."""


class UnexpectedNotFound(PluginLabError):
    """A 404 that is *not* PluginLab saying "no such member": an unknown route
    (``request/not-found``, e.g. a wrong ``AUTH_URL`` path), an unknown plugin
    (``auth/plugin-not-found``) or a page without a JSON error (a proxy).
    It says nothing about the member, so nothing is marked; ``url`` is the
    address that answered (no query string, no secret)."""

    def __init__(self, message: str, *, url: str, status: int = 404, code: str | None = None):
        super().__init__(message, status=status, code=code)
        self.url = url


class RefreshTokenFailed(PluginLabError):
    """422 ``auth/refresh-token-failed``: the member must sign in again; do not retry."""


class RefreshNotSupported(PluginLabError):
    """400 ``auth/refresh-not-supported``: only google and gitlab can be refreshed."""


class PlugipayError(RemoteError):
    """Plugipay answered with an error envelope; ``request_id`` from ``meta``."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ):
        super().__init__(message, status=status, code=code)
        self.request_id = request_id


class PlugipayUnavailable(PlugipayError, RemoteUnavailable):
    pass
