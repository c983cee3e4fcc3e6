"""The HTTP protocol `roomlog serve` runs: uvicorn's httptools protocol with the limits it lacks.

uvicorn times out a connection only once it has answered a request on it: one that connects
and sends nothing, or sends its headers a byte at a time, holds a socket (and a file
descriptor) for as long as it likes, and a few thousand of them starve the server. Nor does
it cap the size of the headers. Here:
- a request's headers must be complete within `ROOMLOG_HEADER_TIMEOUT` seconds of the
  connection opening or of the previous answer (default 10); otherwise the connection is
  closed;
- headers (request line included) larger than `ROOMLOG_MAX_HEADER_BYTES` (default 64 KiB)
  are answered 431 and the connection closed.
An idle keep-alive connection is closed after uvicorn's `timeout_keep_alive` (`serve
--keep-alive`, default 5 s).

It also writes each answer in one piece: uvicorn writes an answer's status line and headers,
then its body, and each write to a socket is a system call that, on a loopback or a busy
host, costs more than the rest of answering a single event (docs/PERFORMANCE.md). Writes made
in one turn of the event loop are joined and written once, at its end (`JoiningTransport`).

And it remembers which client addresses are trusted proxies (`--forwarded-allow-ips`):
uvicorn parses the client's address anew for every request to look it up (`KnownHosts`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any, Final, cast

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT: Final = 10.0
MAX_HEADER_BYTES: Final = 64 * 1024
KNOWN_AT_MOST: Final = 4096  # client addresses whose trust `KnownHosts` remembers
_TOO_LARGE: Final = (
    b'{"error":"invalid-request-error","info":"the request headers are larger than the server'
    b' accepts (%d bytes): send fewer or smaller headers"}'
)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request's headers and a cap on
    their size."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get("ROOMLOG_HEADER_TIMEOUT", HEADER_TIMEOUT))
        self.max_header_bytes = int(os.environ.get("ROOMLOG_MAX_HEADER_BYTES", MAX_HEADER_BYTES))
        self._deadline: asyncio.TimerHandle | None = None
        self._since = 0.0  # when the current request's headers began to be awaited
        self._in_headers = True  # until the current request's headers are complete
        self._header_bytes = 0
        self._too_large = False
        self._tail = b""
        app = self.app
        if isinstance(app, ProxyHeadersMiddleware) and not isinstance(
            app.trusted_hosts, KnownHosts
        ):
            app.trusted_hosts = cast(Any, KnownHosts(app.trusted_hosts))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn's flow control keeps the socket's own transport, which pauses it.
        self.transport = JoiningTransport(transport, self.loop)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            # Count what arrives before the blank line that ends the headers (which may be
            # split between two reads), so that headers are never buffered past the limit.
            end = (self._tail + data).find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = data[-3:]
            if self._header_bytes > self.max_header_bytes:
                self._too_large = True
                self.send_400_response("")
                return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if not self._too_large:  # uvicorn's answer to a request it cannot parse
            super().send_400_response(msg)
            return
        body = _TOO_LARGE % self.max_header_bytes
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        self._disarm()
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # the next request on a kept-alive connection
            self._in_headers, self._header_bytes, self._tail = True, 0, b""
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def _arm(self) -> None:
        # One timer per connection, not one per request: a kept-alive connection's requests
        # only note when they began, and the timer, when it fires, looks at the one under way.
        self._since = self.loop.time()
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self._in_headers or self.transport.is_closing():
            return  # the next request arms it again
        left = self._since + self.header_timeout - self.loop.time()
        if left > 0:
            self._deadline = self.loop.call_later(left, self._expire)
        else:
            self.transport.close()


class JoiningTransport(asyncio.Transport):
    """`transport`, with the writes made in one turn of `loop` joined into one, written at
    its end (or at once, with those before it, past `JOIN_AT_MOST` bytes waiting). Closing
    writes what waits first; aborting drops it, as the socket's transport drops its buffer."""

    JOIN_AT_MOST: Final = 64 * 1024

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._waiting: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._waiting:
            self._loop.call_soon(self._flush)
        self._waiting.append(bytes(data))
        self._size += len(data)
        if self._size > self.JOIN_AT_MOST:
            self._flush()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def _flush(self) -> None:
        if not self._waiting:
            return
        data = b"".join(self._waiting)
        self._waiting, self._size = [], 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._waiting, self._size = [], 0
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class KnownHosts:
    """uvicorn's trusted proxy addresses (`--forwarded-allow-ips`), each client address's
    answer remembered: uvicorn parses the client's address to look it up on every request,
    which costs more than the rest of its proxy-header handling."""

    def __init__(self, hosts: Any) -> None:
        self._hosts = hosts
        self._known: dict[object, bool] = {}

    def __contains__(self, host: object) -> bool:
        known = self._known.get(host)
        if known is None:
            known = host in self._hosts
            if len(self._known) >= KNOWN_AT_MOST:  # many clients: start over
                self._known.clear()
            self._known[host] = known
        return known

    def get_trusted_client_host(self, forwarded_for: str) -> str:
        """The client an `X-Forwarded-For` names, as uvicorn reads it."""
        found: str = self._hosts.get_trusted_client_host(forwarded_for)
        return found
