"""The transport honours the environment's proxies as ``requests`` does,
but reads them once per host instead of on every request."""

from __future__ import annotations

import pytest
import requests

from pluginlab_django.clients.transport import Transport, TransportFailure, TransportOptions

#: Nothing listens here: a request sent through this proxy fails at once.
DEAD_PROXY = "http://127.0.0.1:9"
QUICK = TransportOptions(connect_timeout=2, read_timeout=5, retry_total=0)


def cert_url(sandbox) -> str:
    return f"{sandbox.url}/auth/admin/v1/cert"


@pytest.fixture
def clean_proxy_environment(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_a_proxy_from_the_environment_is_used(pluginlab_sandbox, clean_proxy_environment):
    clean_proxy_environment.setenv("HTTP_PROXY", DEAD_PROXY)
    with pytest.raises(TransportFailure):
        Transport(QUICK).request("GET", cert_url(pluginlab_sandbox))


def test_no_proxy_exempts_a_host(pluginlab_sandbox, clean_proxy_environment):
    clean_proxy_environment.setenv("HTTP_PROXY", DEAD_PROXY)
    clean_proxy_environment.setenv("NO_PROXY", "127.0.0.1")
    response = Transport(QUICK).request("GET", cert_url(pluginlab_sandbox))
    assert response.status_code == 200


def test_the_environment_is_read_once_per_host(pluginlab_sandbox, clean_proxy_environment):
    lookups: list[str] = []
    real = requests.utils.get_environ_proxies

    def counting(url, no_proxy=None):
        lookups.append(url)
        return real(url, no_proxy=no_proxy)

    clean_proxy_environment.setattr(requests.utils, "get_environ_proxies", counting)
    clean_proxy_environment.setattr(
        requests.sessions, "get_environ_proxies", counting, raising=False
    )
    transport = Transport(QUICK)
    for _ in range(10):
        assert transport.request("GET", cert_url(pluginlab_sandbox)).status_code == 200
    assert len(lookups) == 1
