"""The loopback HTTP server: parsing, routing, faults, and never hanging.

Every request gets a JSON answer (4xx when it cannot be parsed, 500 when a
handler breaks) unless a fault plan says to drop it, in which case the
socket is shut down before a single byte is written.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from . import control_api, pluginlab_api, plugipay_api
from .wire import BadRequest, Request, Response, error

if TYPE_CHECKING:
    from . import Sandbox

logger = logging.getLogger("pluginlab_django.testing")
MAX_BODY_BYTES = 10 * 1024 * 1024


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, SandboxRequestHandler)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if self.sandbox.verbose:
            super().handle_error(request, client_address)


class SandboxRequestHandler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "PluginLabSandbox/1"
    # Headers and body go out in two writes: without this, Nagle plus the
    # client's delayed ACK adds ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    # An idle keep-alive connection or a body shorter than its Content-Length
    # frees its thread after this many seconds instead of holding it forever.
    timeout = 60

    def log_message(self, format: str, *args: object) -> None:
        if self.server.sandbox.verbose:
            sys.stderr.write("sandbox: %s\n" % (format % args))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by http.server itself (bad request line, headers): JSON too."""
        self.close_connection = True
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.0"  # a status line even for garbage
        self._send(error(code, "request/bad-request", message or "The request is malformed."))

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        sb = self.server.sandbox
        split = urlsplit(self.path)
        path = split.path or "/"
        is_control = path.startswith(control_api.PREFIX)
        try:
            body = self._read_body()
        except BadRequest as exc:
            self.close_connection = True
            if not is_control:
                sb.faults.decide(path)  # still a request received
            self._send(error(exc.status, exc.code, exc.message))
            return
        if not is_control:
            decision = sb.faults.decide(path)
            if decision.latency_ms:
                time.sleep(decision.latency_ms / 1000)
            if decision.drop:
                self._drop()
                return
            if decision.error_status is not None:
                self._send(_fault_response(decision.error_status, path, decision.retry_after))
                return
        request = Request(
            method=self.command,
            path=path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            raw_target=self.path,
            headers=self.headers,
            body=body,
        )
        try:
            response = _route(sb, request)
        except BadRequest as exc:
            response = error(exc.status, exc.code, exc.message)
            if path.startswith("/plugipay"):
                response = plugipay_api.envelope_error(exc.status, exc.code, exc.message)
        except Exception:
            logger.exception("sandbox handler failed for %s %s", self.command, path)
            response = error(500, "sandbox/internal-error", "The sandbox failed on this request.")
        self._send(response)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise BadRequest("request/unsupported", "Chunked bodies are not supported.", 411)
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            raise BadRequest("request/bad-content-length", "Bad Content-Length.") from None
        if length < 0:
            raise BadRequest("request/bad-content-length", "Bad Content-Length.")
        if length > MAX_BODY_BYTES:
            raise BadRequest("request/too-large", "The body is too large.", 413)
        body = self.rfile.read(length)
        if len(body) != length:
            raise BadRequest("request/truncated", "The body ended early.")
        return body

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        body = response.body_bytes()
        try:
            self.send_response(response.status)
            if body or response.status != 204:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _fault_response(status: int, path: str, retry_after: int | None = None) -> Response:
    headers = {"Retry-After": "0"} if status == 429 else {}
    if retry_after is not None:
        headers = {"Retry-After": str(int(retry_after))}
    if path.startswith("/plugipay"):
        response = plugipay_api.envelope_error(status, "injected_fault", "Injected fault.")
        response.headers.update(headers)
        return response
    return error(status, "sandbox/injected-fault", "Injected fault.", **headers)


def _route(sb: Sandbox, request: Request) -> Response:
    response = control_api.handle(sb, request) or pluginlab_api.handle(sb, request)
    if response is None:
        response = plugipay_api.handle(sb.plugipay, request)
    return response or error(404, "request/not-found", "No such endpoint.")
