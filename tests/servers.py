"""Real `roomlog serve` processes on loopback, for tests that cross process boundaries."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def children(pid: int, running: bytes = b"") -> list[int]:
    """The live processes whose parent is `pid` and whose command line holds `running`
    (from /proc: Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if fields[1] == str(pid) and fields[0] != "Z" and running in command:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (and is not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`roomlog serve` in a child process; `kill()` ends it like a crash would."""

    def __init__(self, database_url: str, log: Path, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "roomlog",
                "serve",
                "--database-url",
                database_url,
                "--port",
                str(self.port),
                "--wait",
                "applied",
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own process group, for `_wait_ready` to end
        )
        self._wait_ready(log)

    def _wait_ready(self, log: Path) -> None:
        try:
            self._poll_ready(log)
        except RuntimeError:
            # A server that did not come up must not outlive its test, nor its workers.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self._log.close()
            raise

    def _poll_ready(self, log: Path) -> None:
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"roomlog serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"roomlog serve did not come up: {log.read_text()[-2000:]}")

    def wait_ready(self) -> None:
        """Wait until `/ready` answers 200: the applier has claimed its partitions."""
        for _ in range(300):
            if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"roomlog serve did not get ready: {self._path.read_text()[-2000:]}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
