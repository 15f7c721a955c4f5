"""Signed webhook deliveries, sent from one background thread.

Changes are queued by the store's notify hook and posted in order by a
daemon worker, so an API call never waits on the receiver (which may be the
very Django test server that made the call).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import queue
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

MAX_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.2
SEND_TIMEOUT_SECONDS = 5


class WebhookSender:
    """Queues events and posts them signed to ``url`` (when one is set)."""

    def __init__(self, *, plugin_id: str, secret: str, url: str | None = None) -> None:
        self.plugin_id, self.secret = plugin_id, secret
        self.set_url(url)
        self.hook_id = (
            f"hook_{hashlib.sha1(plugin_id.encode(), usedforsecurity=False).hexdigest()[:16]}"
        )
        self._queue: queue.Queue[tuple[int, str, str, bytes] | None] = queue.Queue()
        self._lock = threading.Condition()
        self._records: list[dict[str, Any]] = []
        self._generation = 0  # bumped by clear(): queued items of old generations drop
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=SEND_TIMEOUT_SECONDS * MAX_ATTEMPTS)
            self._thread = None

    def clear(self) -> None:
        """Forget recorded deliveries and drop the ones not yet sent."""
        with self._lock:
            self._generation += 1
            self._records = []
            self._lock.notify_all()

    def set_url(self, url: str | None) -> None:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must be http:// or https://")
        self.url = url or None

    # --- producing -----------------------------------------------------
    def enqueue(self, event: str, member: dict[str, Any]) -> None:
        url = self.url
        if not url:
            return
        delivery_id = f"dlv_{uuid.uuid4().hex}"
        body = json.dumps(
            {
                "event": event,
                "deliveryId": delivery_id,
                "createdAtMs": int(time.time() * 1000),
                "data": {"member": member},
            },
            separators=(",", ":"),
        ).encode()
        with self._lock:
            generation = self._generation
        self._queue.put((generation, url, event, body))

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records]

    def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Block until at least ``count`` deliveries finished (or time out)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._records) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return [dict(r) for r in self._records]

    # --- sending -------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            generation, url, event, body = item
            with self._lock:
                if generation != self._generation:
                    continue
            try:
                record = self._send(url, event, body)
            except Exception as exc:  # never let the worker die
                record = {
                    "delivery_id": "",
                    "event": event,
                    "member_id": None,
                    "status_code": None,
                    "attempts": 0,
                    "ok": False,
                    "error": type(exc).__name__,
                }
            record["status"] = record["status_code"]  # alias some callers read
            with self._lock:
                if generation == self._generation:
                    self._records.append(record)
                    self._lock.notify_all()

    def _send(self, url: str, event: str, body: bytes) -> dict[str, Any]:
        payload = json.loads(body)
        record: dict[str, Any] = {
            "delivery_id": payload["deliveryId"],
            "event": event,
            "member_id": payload["data"]["member"].get("id"),
            "status_code": None,
            "attempts": 0,
            "ok": False,
        }
        signature = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            record["attempts"] = attempt
            headers = {
                "Content-Type": "application/json",
                "X-PluginLab-Signature": signature,
                "X-PluginLab-Event": event,
                "X-PluginLab-Delivery-Id": payload["deliveryId"],
                "X-PluginLab-Hook-Id": self.hook_id,
                "X-PluginLab-Plugin-Id": self.plugin_id,
                "X-PluginLab-Signature-Version": "1",
                "X-PluginLab-Signature-Algorithm": "sha256",
                "X-PluginLab-Timestamp": str(int(time.time() * 1000)),
                "X-Powered-By": "PluginLab",
            }
            try:
                record["status_code"] = _post(url, body, headers)
            except (OSError, ValueError, http.client.HTTPException):
                record["status_code"] = None
            status = record["status_code"]
            record["ok"] = status is not None and 200 <= status < 300
            # A 4xx is the receiver's verdict on this body: resending won't change it.
            if record["ok"] or (status is not None and 400 <= status < 500 and status != 429):
                break
            time.sleep(RETRY_PAUSE_SECONDS * attempt)
        return record


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST with http.client, which keeps header names as written (urllib would
    turn ``X-PluginLab-Signature`` into ``X-Pluginlab-Signature``)."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.netloc, timeout=SEND_TIMEOUT_SECONDS)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
