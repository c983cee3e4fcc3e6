"""The limits `roomlog serve` puts on connections: idle and slow ones are closed, oversized
headers are refused, and the limits are printed by `serve --help`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("limits")
    running = Server(
        f"sqlite:///{folder / 'roomlog.db'}",
        folder / "server.log",
        ["--header-timeout", "1", "--max-header-bytes", "8192"],
    )
    try:
        yield running
    finally:
        running.stop()


def connect(server: Server) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    connection.settimeout(15)
    return connection


def closed_by_server(connection: socket.socket) -> bool:
    """Whether the server closes `connection` (reading until it does, or 15 s pass)."""
    try:
        while connection.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with connect(server) as connection:
        assert closed_by_server(connection)
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_headers_sent_a_byte_at_a_time_are_cut_off(server: Server) -> None:
    with connect(server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        trickled = 0
        try:
            for _ in range(60):  # 60 bytes, 0.25 s apart: far past the 1 s allowed
                connection.sendall(b"X")
                trickled += 1
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert trickled < 60 or closed_by_server(connection)


def test_a_kept_alive_connection_gets_the_deadline_for_each_request(server: Server) -> None:
    with connect(server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        connection.sendall(b"GET /health HTTP/1.1\r\n")  # and never the rest
        assert closed_by_server(connection)


def test_oversized_headers_are_a_431(server: Server) -> None:
    answer = httpx.get(f"{server.url}/health", headers={"X-Big": "x" * 20_000})
    assert answer.status_code == 431
    assert answer.json()["error"] == "invalid-request-error"
    assert "8192 bytes" in answer.json()["info"]
    assert httpx.get(f"{server.url}/health", headers={"X-Small": "x" * 2000}).status_code == 200


def test_serve_help_prints_the_limits(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "roomlog", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ("--header-timeout", "--keep-alive", "--max-header-bytes", "5 MiB"):
        assert option in shown


def test_a_large_body_is_not_counted_as_headers(server: Server) -> None:
    body = b"[" + b",".join([b'{"id":"x","type":"participant.joined"}'] * 20_000) + b"]"
    assert len(body) > 500_000
    answer = httpx.post(
        f"{server.url}/v1/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400  # no key: refused by the API, not by the header limit
    assert answer.json()["error"] == "authorization-header-error"
