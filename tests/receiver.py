"""A webhook endpoint on loopback that records what it is sent and answers as told."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Received:
    def __init__(self, headers: dict[str, str], body: bytes) -> None:
        self.headers, self.body = headers, body

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def verified(secret: str, received: Received) -> bool:
    """Daily's algorithm, written out: base64(HMAC-SHA256(base64-decoded secret,
    timestamp + "." + body))."""
    timestamp = received.headers["x-webhook-timestamp"]
    key = base64.b64decode(secret)
    digest = hmac.new(key, f"{timestamp}.".encode() + received.body, hashlib.sha256).digest()
    return hmac.compare_digest(
        base64.b64encode(digest).decode(), received.headers["x-webhook-signature"]
    )


class Receiver:
    """`status` is what it answers (a callable may decide per request)."""

    def __init__(self, port: int = 0) -> None:
        self.status = 200
        self.delay = 0.0  # seconds it takes to answer, once it has read a request
        self.received: list[Received] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with owner._lock:
                    owner.received.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = owner.status
                time.sleep(owner.delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def events(self) -> list[Received]:
        """What was received, but the verification request."""
        with self._lock:
            return [r for r in self.received if r.json != {"test": "test"}]

    def types(self) -> list[str]:
        return [r.json["type"] for r in self.events()]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def running(port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(port)
    try:
        yield receiver
    finally:
        receiver.stop()
