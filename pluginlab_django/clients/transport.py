"""The HTTP transport shared by both clients: pooled sessions, timeouts, retries.

Retries are urllib3's ``Retry`` (exponential backoff with jitter, ``Retry-After``
honoured) mounted on a ``requests`` adapter. Two sessions share one policy but
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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

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
        return Retry(
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


class TransportFailure(Exception):
    """The request got no HTTP answer (connection refused, dropped, timed out)."""


class Transport:
    """Sends requests; returns the final ``requests.Response`` or raises
    ``TransportFailure``. Knows nothing of either API's payloads."""

    def __init__(self, options: TransportOptions | None = None) -> None:
        self.options = options or TransportOptions()
        self._safe = self._session(SAFE_METHODS)
        self._idempotent = self._session(SAFE_METHODS | {"POST"})

    def _session(self, methods: frozenset[str]) -> requests.Session:
        session = requests.Session()
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
            )
        except requests.RequestException as exc:
            # The exception text names the host and the failure, never headers.
            logger.warning("%s %s failed: %s", method, _path(url), type(exc).__name__)
            raise TransportFailure(_describe(exc)) from None
        logger.debug(
            "%s %s -> %s in %.0f ms",
            method,
            _path(url),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def close(self) -> None:
        self._safe.close()
        self._idempotent.close()


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
