"""Whose X-Forwarded-For the API believes (RNNLAB_FORWARDED_ALLOW_IPS), against a real `rnnlab api`.

Anonymous generation is rate-limited per client address. A proxy in front of the API (compose's
published port, a load balancer) makes every client arrive from the proxy's address, so the proxy's
X-Forwarded-For must set the address; anybody else's must not, or a client could pick a fresh bucket
per request. Both sides over real TCP: the server trusts 127.0.0.1 (the default), and an untrusted
client connects from 127.0.0.2 (Linux routes all of 127.0.0.0/8 to the loopback interface).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.core.settings import Settings
from tests.conftest import PYTHON, free_port, settings_env, start_server, stop_process

pytestmark = pytest.mark.slow  # a server process

BURST = 2  # anonymous requests per address before 429, with (practically) no refill


@pytest.fixture
def api_url(sqlite_settings: Settings, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = settings_env(sqlite_settings) | {
        "RNNLAB_RATE_LIMIT_BURST": str(BURST),
        "RNNLAB_RATE_LIMIT_PER_MINUTE": "0.001",
        # The default, spelled out: this test is about it.
        "RNNLAB_FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    proc = start_server(
        [PYTHON, "-m", "app.cli", "api", "--port", str(port)], env, tmp_path / "api.log", port
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def _from(address: str, url: str) -> httpx.Client:
    return httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=address), timeout=30)


def _generate(client: httpx.Client, forwarded_for: str | None = None) -> int:
    """An anonymous GET /generate (rate-limited before anything else looks at it); its status."""
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    return client.get("/generate", params={"job_id": 999999, "length": 1}, headers=headers).status_code


def test_a_spoofed_header_from_an_untrusted_address_does_not_change_the_bucket(api_url: str) -> None:
    with _from("127.0.0.2", api_url) as untrusted:
        assert [_generate(untrusted, f"203.0.113.{n}") for n in range(BURST)] == [404] * BURST
        # Every request so far counted against 127.0.0.2, whatever the header said:
        assert _generate(untrusted, "203.0.113.99") == 429
        assert _generate(untrusted) == 429
    with _from("127.0.0.1", api_url) as trusted:
        # ...and not against the addresses it named: a trusted proxy's client 203.0.113.0 is untouched.
        assert _generate(trusted, "203.0.113.0") == 404


def test_a_trusted_proxys_header_sets_the_clients_bucket(api_url: str) -> None:
    with _from("127.0.0.1", api_url) as proxy:
        assert [_generate(proxy, "198.51.100.1") for _ in range(BURST)] == [404] * BURST
        assert _generate(proxy, "198.51.100.1") == 429  # that client's bucket is empty
        assert _generate(proxy, "198.51.100.2") == 404  # another client behind the same proxy is not
        assert _generate(proxy) == 404  # nor the proxy's own address
