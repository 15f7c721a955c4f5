"""Remote checks: does each host answer, with these credentials, and how fast?

Each makes one cheap read (list one member, fetch the JWKS, read one
member's quota, list API keys) with clients built for the doctor: no
retries, so a dead host is reported at once and the latency is one call's.
The event host has no read to make and is not probed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import requests

from ..clients import PluginLabClient, PlugipayClient
from ..clients.exceptions import RemoteError, RemoteUnavailable
from ..clients.transport import TransportOptions
from ..conf import pluginlab_settings
from ..tokens import build_key_set
from .registry import Result, doctor_check

_member_seen: dict[str, str] = {}  # a member id the auth check saw, for the quota check


def _options() -> TransportOptions:
    return dataclasses.replace(TransportOptions.from_settings(), retry_total=0)


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    value = call()
    return value, round((time.monotonic() - start) * 1000, 1)


def _remote_failure(setting: str, url: str, exc: RemoteError) -> Result:
    """Say which host failed and what to look at, from the error's status and code."""
    where = f"{setting} {url}"
    if isinstance(exc, RemoteUnavailable):
        return Result.fail(f"{where} cannot be reached: {exc.message}", error=str(exc))
    if exc.status in (401, 403):
        return Result.fail(
            f"{where} refused the credentials (HTTP {exc.status} {exc.code or ''}): "
            "check the secret and the id".replace(" )", ")"),
            status=exc.status,
            code=exc.code,
        )
    if exc.status == 404:
        hint = (
            "check PLUGIN_ID"
            if exc.code == "auth/plugin-not-found"
            else f"check {setting}'s path (it must be the API's base)"
        )
        return Result.fail(
            f"{where} answered 404 {exc.code or '(no code)'}: {hint}",
            status=404,
            code=exc.code,
        )
    return Result.fail(f"{where} answered with an error: {exc}", status=exc.status, code=exc.code)


def _pluginlab_client() -> PluginLabClient:
    pluginlab_settings.require_pluginlab()
    return PluginLabClient(
        plugin_id=pluginlab_settings.PLUGIN_ID,
        admin_secret=pluginlab_settings.ADMIN_SECRET,
        auth_url=pluginlab_settings.AUTH_URL,
        monetization_url=pluginlab_settings.MONETIZATION_URL,
        event_url=pluginlab_settings.EVENT_URL,
        options=_options(),
    )


@doctor_check("pluginlab.auth", remote=True)
def auth_host() -> Result:
    """List one member: the auth host answers and takes PLUGIN_ID/ADMIN_SECRET."""
    client = _pluginlab_client()
    url = pluginlab_settings.AUTH_URL
    try:
        page, latency = _timed(lambda: client.list_members(limit=1))
    except RemoteError as exc:
        return _remote_failure("AUTH_URL", url, exc)
    finally:
        client.transport.close()
    _member_seen.clear()
    if page.items:
        _member_seen["id"] = page.items[0].id
    result = Result.ok(
        f"AUTH_URL {url} answers with these credentials ({page.total} members) in {latency:g} ms",
        members=page.total,
    )
    result.latency_ms = latency
    return result


@doctor_check("pluginlab.cert", remote=True)
def cert_host() -> Result:
    """Fetch the JWKS: its usable PS256 key ids (what token verification needs)."""
    url = pluginlab_settings.CERT_URL
    timeout = (pluginlab_settings.CONNECT_TIMEOUT, pluginlab_settings.READ_TIMEOUT)
    start = time.monotonic()
    try:
        response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        return Result.fail(f"CERT_URL {url} cannot be reached: {type(exc).__name__}")
    latency = round((time.monotonic() - start) * 1000, 1)
    if response.status_code != 200:
        return Result.fail(
            f"CERT_URL {url} answered HTTP {response.status_code}: check its path "
            "(it must be the JWKS itself)",
            status=response.status_code,
        )
    try:
        document = json.loads(response.content)
    except ValueError:
        return Result.fail(f"CERT_URL {url} answered with a body that is not JSON")
    key_set = build_key_set(document, fetched_at=time.time(), expires_at=time.time())
    kids = [jwk.get("kid") for jwk in key_set.jwks["keys"]]
    if not kids:
        return Result.fail(f"CERT_URL {url} publishes no usable PS256 key")
    result = Result.ok(
        f"CERT_URL {url} publishes {len(kids)} signing key(s) "
        f"({', '.join(str(k) for k in kids)}) in {latency:g} ms",
        kids=kids,
    )
    result.latency_ms = latency
    return result


@doctor_check("pluginlab.monetization", remote=True)
def monetization_host() -> Result:
    """Read the quota of one member PluginLab lists (or the first mirrored one)."""
    from ..models import Member

    client = _pluginlab_client()
    url = pluginlab_settings.MONETIZATION_URL
    member_id = _member_seen.get("id")
    listed = member_id is not None
    if member_id is None:
        member_id = Member.objects.values_list("remote_id", flat=True).order_by("pk").first()
    if member_id is None:
        client.transport.close()
        return Result.warn(f"MONETIZATION_URL {url} not probed: no member to read the quota of")
    try:
        usage, latency = _timed(lambda: client.get_quota_usage(member_id))
    except RemoteError as exc:
        return _remote_failure("MONETIZATION_URL", url, exc)
    finally:
        client.transport.close()
    if usage is None:
        summary = f"MONETIZATION_URL {url} answered 404 for member {member_id}"
        if listed:  # PluginLab just listed that member: the path is wrong
            return Result.fail(f"{summary}: check MONETIZATION_URL's path", member=member_id)
        return Result.warn(f"{summary} (a mirrored member PluginLab may have deleted)")
    result = Result.ok(f"MONETIZATION_URL {url} answers in {latency:g} ms", member=member_id)
    result.latency_ms = latency
    return result


@doctor_check("plugipay.apikeys", remote=True)
def plugipay_host() -> Result:
    """List API keys: Plugipay answers and accepts the signed requests."""
    url = pluginlab_settings.PLUGIPAY_BASE_URL
    if not pluginlab_settings.plugipay_configured:
        return Result.warn(f"PLUGIPAY_BASE_URL {url} not probed: Plugipay is not configured")
    client = PlugipayClient(
        key_id=pluginlab_settings.PLUGIPAY_KEY_ID,
        secret=pluginlab_settings.PLUGIPAY_SECRET,
        base_url=url,
        options=_options(),
    )
    try:
        keys, latency = _timed(client.list_api_keys)
    except RemoteError as exc:
        return _remote_failure("PLUGIPAY_BASE_URL", url, exc)
    finally:
        client.transport.close()
    result = Result.ok(
        f"PLUGIPAY_BASE_URL {url} answers with these credentials ({len(keys)} API keys) "
        f"in {latency:g} ms",
        api_keys=len(keys),
    )
    result.latency_ms = latency
    return result
