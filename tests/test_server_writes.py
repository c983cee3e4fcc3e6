"""How `roomlog serve` writes its answers: the writes of one turn of the event loop joined
into one (`JoiningTransport`), over real sockets on uvloop, the loop the server runs."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Iterator

import pytest
import uvloop

from roomlog.api.server import JoiningTransport
from tests.servers import Server

Check = Callable[[JoiningTransport, socket.socket], Awaitable[None]]


def run(check: Check) -> None:
    """Run `check` on uvloop with a joining transport over one end of a socket pair and the
    other end, non-blocking, as the peer."""

    async def connected() -> None:
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        joining = JoiningTransport(transport, loop)
        try:
            await check(joining, peer)
        finally:
            transport.abort()
            peer.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(connected())


def received(peer: socket.socket) -> bytes:
    """What the peer can read now, without waiting."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


async def turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def test_the_writes_of_one_turn_leave_together_at_its_end_in_order() -> None:
    async def check(joining: JoiningTransport, peer: socket.socket) -> None:
        joining.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        joining.write(b"")
        joining.writelines([b"o", b"k"])
        assert received(peer) == b""  # nothing is written before the turn ends
        assert joining.get_write_buffer_size() == 40
        await turns()
        assert received(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        assert joining.get_write_buffer_size() == 0

    run(check)


def test_past_the_bound_what_waits_is_written_at_once() -> None:
    async def check(joining: JoiningTransport, peer: socket.socket) -> None:
        head, body = b"head;", b"x" * JoiningTransport.JOIN_AT_MOST
        joining.write(head)
        joining.write(body)
        assert joining.get_write_buffer_size() < len(head) + len(body)
        await turns()
        got = b""
        for _ in range(100):
            got += received(peer)
            if len(got) == len(head) + len(body):
                break
            await asyncio.sleep(0.01)
        assert got == head + body

    run(check)


def test_closing_writes_what_waits_first_and_aborting_drops_it() -> None:
    async def closing(joining: JoiningTransport, peer: socket.socket) -> None:
        joining.write(b"last words")
        joining.close()
        assert joining.is_closing()
        await turns()
        assert received(peer) == b"last words"
        assert peer.recv(16) == b""  # and then the end of the stream

    async def aborting(joining: JoiningTransport, peer: socket.socket) -> None:
        joining.write(b"never sent")
        joining.abort()
        await turns()
        assert received(peer) == b""

    run(closing)
    run(aborting)


def test_a_write_after_the_peer_went_is_dropped_quietly() -> None:
    async def check(joining: JoiningTransport, peer: socket.socket) -> None:
        joining.write(b"to no one")
        joining.abort()
        joining.write(b"nor this")
        await turns()
        assert joining.is_closing()

    run(check)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("writes")
    running = Server(f"sqlite:///{folder / 'roomlog.db'}", folder / "server.log")
    try:
        yield running
    finally:
        running.stop()


def answers(raw: bytes) -> list[tuple[bytes, bytes]]:
    """The status lines and bodies of the complete HTTP/1.1 answers at the start of `raw`."""
    found = []
    while b"\r\n\r\n" in raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        sizes = [
            line.split(b":", 1)[1] for line in lines if line.lower().startswith(b"content-length:")
        ]
        length = int(sizes[0])
        if len(rest) < length:
            break
        found.append((lines[0], rest[:length]))
        raw = rest[length:]
    return found


def test_pipelined_requests_are_answered_whole_and_in_order(server: Server) -> None:
    request = (
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /schema/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as connection:
        connection.sendall(request)
        raw, found = b"", list[tuple[bytes, bytes]]()
        while len(found) < 3:
            chunk = connection.recv(1 << 16)
            assert chunk, "the server closed the connection before answering"
            raw += chunk
            found = answers(raw)
    statuses = [status for status, _ in found]
    assert statuses == [b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]
    assert json.loads(found[0][1])["status"] == "ok"
    assert json.loads(found[1][1])["error"] == "not-found"
    schema = found[2][1]
    assert len(schema) > 50_000
    assert json.loads(schema)["paths"]["/v1/events"]
