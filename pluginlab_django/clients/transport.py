"""The HTTP transport shared by both clients: pooled sessions, timeouts, retries.

Retries are urllib3's ``Retry`` (exponential backoff with jitter, ``Retry-After``
honoured) mounted on a ``requests`` adapter. A ``Retry-After`` longer than
``RETRY_BACKOFF_MAX`` is not waited for (urllib3 would sleep for any value,
holding a request thread or a sync for minutes): the call fails at once with
``RetryAfterTooLong``, which says so. Two sessions share one policy but
differ in what may be repeated:

* the *safe* session retries connection errors for every method (the request
  never reached the server) but read errors and 429/5xx answers only for
  methods whose repetition is harmless: GET, HEAD, OPTIONS, PUT, DELETE and
  PATCH (PluginLab's PATCH sets fields to given values, so a repeat changes
  nothing more);
* the *idempotent* session also repeats POSTs, and is used only for requests
  that carry an ``Idempotency-Key`` the server deduplicates on.

So a POST without an idempotency key (create member, refresh, custom event)
is never sent twice once it may have reached the server.

The environment's proxy settings (``HTTPS_PROXY``, ``NO_PROXY``...) and CA
bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) are honoured as
``requests`` honours them, but read once (per host for proxies) rather than
on every request: ``requests`` walks the whole environment for each call,
which was most of the CPU a custom event cost to send. A change to those
variables takes effect in a new process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from typing_extensions import Self
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

from .. import __version__

logger = logging.getLogger("pluginlab_django.clients")

USER_AGENT = f"django-pluginlab/{__version__}"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})


@dataclass(frozen=True)
class TransportOptions:
    """Timeouts, retry policy and pool size; see ``conf.DEFAULTS`` for meanings."""

    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    retry_total: int = 3
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.25
    status_forcelist: tuple[int, ...] = (429, 502, 503, 504)
    pool_maxsize: int = 10

    @classmethod
    def from_settings(cls) -> TransportOptions:
        from ..conf import pluginlab_settings as s

        return cls(
            connect_timeout=float(s.CONNECT_TIMEOUT),
            read_timeout=float(s.READ_TIMEOUT),
            retry_total=int(s.RETRY_TOTAL),
            backoff_factor=float(s.RETRY_BACKOFF_FACTOR),
            backoff_max=float(s.RETRY_BACKOFF_MAX),
            backoff_jitter=float(s.RETRY_BACKOFF_JITTER),
            status_forcelist=tuple(s.RETRY_STATUS_FORCELIST),
            pool_maxsize=int(s.POOL_MAXSIZE),
        )

    def retry(self, methods: frozenset[str]) -> Retry:
        return CappedRetry(
            total=self.retry_total,
            connect=self.retry_total,
            read=self.retry_total,
            status=self.retry_total,
            other=0,
            redirect=0,
            allowed_methods=methods,
            status_forcelist=self.status_forcelist,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            backoff_jitter=self.backoff_jitter,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )


class CappedRetry(Retry):
    """``Retry`` that never sleeps longer than ``backoff_max`` for a ``Retry-After``.

    A longer one ends the retries (``raise_on_status=False``: urllib3 then
    returns that answer), and ``Transport.request`` turns it into
    ``RetryAfterTooLong``.
    """

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if response is not None and self.respect_retry_after_header:
            retry_after = self.get_retry_after(response)
            if retry_after is not None and retry_after > self.backoff_max:
                raise MaxRetryError(
                    # urllib3's own increment passes a missing pool the same way.
                    _pool,  # type: ignore[arg-type]
                    url,
                    ResponseError("Retry-After exceeds backoff_max"),
                )
        return super().increment(
            method, url, response=response, error=error, _pool=_pool, _stacktrace=_stacktrace
        )


class TransportFailure(Exception):
    """The request got no usable HTTP answer (connection refused, dropped,
    timed out, or asked to wait longer than ``RETRY_BACKOFF_MAX``)."""


class RetryAfterTooLong(TransportFailure):
    """The server asked to retry after longer than ``RETRY_BACKOFF_MAX``: not waited for."""

    def __init__(self, status: int, retry_after: float, backoff_max: float) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(
            f"it answered HTTP {status} asking to retry after {retry_after:g} s, longer than "
            f"RETRY_BACKOFF_MAX ({backoff_max:g} s); not waiting, try again later"
        )


class Transport:
    """Sends requests; returns the final ``requests.Response`` or raises
    ``TransportFailure``. Knows nothing of either API's payloads."""

    def __init__(self, options: TransportOptions | None = None) -> None:
        self.options = options or TransportOptions()
        self._safe = self._session(SAFE_METHODS)
        self._idempotent = self._session(SAFE_METHODS | {"POST"})
        self._proxies: dict[tuple[str, str], dict[str, str]] = {}
        self._proxies_lock = threading.Lock()

    def _session(self, methods: frozenset[str]) -> requests.Session:
        session = requests.Session()
        # The environment is read here and in proxies_for(), once (module doc).
        session.trust_env = False
        session.verify = _ca_bundle_from_environment()
        adapter = HTTPAdapter(
            max_retries=self.options.retry(methods),
            pool_connections=4,
            pool_maxsize=self.options.pool_maxsize,
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        return session

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        idempotent: bool = False,
    ) -> requests.Response:
        """Send one logical request (several attempts when retries allow).

        ``idempotent=True`` allows repeating a POST: pass it only when the
        request carries a key the server deduplicates on.
        """
        session = self._idempotent if idempotent else self._safe
        started = time.monotonic()
        try:
            response = session.request(
                method,
                url,
                headers=dict(headers or {}),
                params=params,
                data=data,
                timeout=(self.options.connect_timeout, self.options.read_timeout),
                allow_redirects=False,
                proxies=self.proxies_for(url),
            )
        except requests.RequestException as exc:
            # The exception text names the host and the failure, never headers.
            logger.warning("%s %s failed: %s", method, _path(url), type(exc).__name__)
            raise TransportFailure(_describe(exc)) from None
        self._refuse_long_retry_after(response)
        logger.debug(
            "%s %s -> %s in %.0f ms",
            method,
            _path(url),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for ``url``'s host (none if ``NO_PROXY``
        exempts it), looked up once per scheme and host."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        proxies = self._proxies.get(key)
        if proxies is None:
            proxies = requests.utils.get_environ_proxies(url)
            with self._proxies_lock:
                self._proxies[key] = proxies
        return proxies

    def _refuse_long_retry_after(self, response: requests.Response) -> None:
        """Fail at once on a retryable answer whose ``Retry-After`` we won't wait for."""
        if response.status_code not in self.options.status_forcelist:
            return
        header = response.headers.get("Retry-After")
        if not header:
            return
        try:
            retry_after = Retry().parse_retry_after(header)
        except InvalidHeader:  # ignored, as urllib3 ignores it
            return
        if retry_after > self.options.backoff_max:
            logger.warning(
                "%s -> %s with Retry-After %s s (> RETRY_BACKOFF_MAX): failing at once",
                _path(response.url),
                response.status_code,
                header,
            )
            raise RetryAfterTooLong(response.status_code, retry_after, self.options.backoff_max)

    def close(self) -> None:
        self._safe.close()
        self._idempotent.close()


def _ca_bundle_from_environment() -> str | bool:
    """What ``requests`` would verify with: a CA bundle named in the
    environment, else its own (``True``)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def _path(url: str) -> str:
    """The URL without its query string (which may hold an email)."""
    return url.split("?", 1)[0]


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "the request timed out"
    if isinstance(exc, requests.exceptions.RetryError):
        return "gave up after the configured retries"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect, or the connection was dropped"
    return f"request failed ({type(exc).__name__})"
