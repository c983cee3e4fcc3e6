"""Which clients `roomlog serve` believes about the forwarded headers: uvicorn's rules for
`--forwarded-allow-ips`, each client address's answer remembered (`KnownHosts`)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn.middleware.proxy_headers import _TrustedHosts
from uvicorn.server import ServerState

from roomlog.api.server import KNOWN_AT_MOST, GuardedProtocol, KnownHosts
from tests.servers import free_port

TRUSTED = ("127.0.0.1", "10.0.0.0/8, ::1", "*", "proxy.internal, 192.0.2.7")
CLIENTS = ("127.0.0.1", "10.1.2.3", "192.0.2.7", "198.51.100.1", "::1", "proxy.internal", "", None)


@pytest.mark.parametrize("trusted", TRUSTED)
def test_known_hosts_answer_as_uvicorn_does_also_from_memory(trusted: str) -> None:
    uvicorns = _TrustedHosts(trusted)
    known = KnownHosts(_TrustedHosts(trusted))
    for _ in range(2):  # the second time from memory
        assert [c in known for c in CLIENTS] == [c in uvicorns for c in CLIENTS]
    forwarded = "203.0.113.9, 10.1.2.3"
    assert known.get_trusted_client_host(forwarded) == uvicorns.get_trusted_client_host(forwarded)


def test_known_hosts_stay_right_past_what_they_remember() -> None:
    known = KnownHosts(_TrustedHosts("10.0.0.0/8"))
    many = [f"10.{n // 65536}.{n // 256 % 256}.{n % 256}" for n in range(KNOWN_AT_MOST + 10)]
    assert all(host in known for host in many)
    assert "198.51.100.1" not in known
    assert "10.0.0.1" in known


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    client = scope["client"][0] if scope.get("client") else ""
    body = f"{scope['scheme']} {client}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def _serving(trusted: str) -> Iterator[str]:
    """`_echo` served by uvicorn on roomlog's protocol, trusting `trusted`."""
    port = free_port()
    config = uvicorn.Config(
        _echo,
        port=port,
        loop="uvloop",
        http=GuardedProtocol,
        forwarded_allow_ips=trusted,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize(
    ("trusted", "seen"), [("127.0.0.1", "https 203.0.113.9"), ("10.0.0.1", "http 127.0.0.1")]
)
def test_only_a_trusted_proxys_forwarded_headers_are_believed(trusted: str, seen: str) -> None:
    with _serving(trusted) as url, httpx.Client() as client:
        # Twice: the second request's client is looked up in what `KnownHosts` remembers.
        assert [client.get(url, headers=FORWARDED).text for _ in range(2)] == [seen, seen]
        assert client.get(url).text == "http 127.0.0.1"


def test_the_protocol_makes_uvicorns_trusted_hosts_remember_once() -> None:
    config = uvicorn.Config(_echo, forwarded_allow_ips="10.0.0.0/8", log_level="warning")
    config.load()
    state = ServerState()
    loop = asyncio.new_event_loop()
    try:
        GuardedProtocol(config=config, server_state=state, app_state={}, _loop=loop)
        remembered = config.loaded_app.trusted_hosts
        assert isinstance(remembered, KnownHosts)
        GuardedProtocol(config=config, server_state=state, app_state={}, _loop=loop)
        assert config.loaded_app.trusted_hosts is remembered
    finally:
        loop.close()
