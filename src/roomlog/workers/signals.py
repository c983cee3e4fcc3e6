"""Wake-ups between a server and its applier process, through pipes.

A `multiprocessing.Event` shares a lock between the processes: a process killed while
holding it (a server killed with SIGKILL while its writer woke the applier) leaves the other
waiting for that lock for ever, without a timeout. A pipe shares no lock: the sender writes
a byte without blocking (a full pipe already means "wake up"), and the receiver polls with
a timeout, drains what came, and sees the end of the pipe when the sender is gone.

Each side is handed only its own end, so that the receiver does see that end.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import threading
import weakref
from multiprocessing.connection import Connection


def pipe() -> tuple[Receiver, Sender]:
    reader, writer = multiprocessing.Pipe(duplex=False)
    return Receiver(reader), Sender(writer)


class Sender:
    def __init__(self, end: Connection) -> None:
        self.end = end
        self._ready = False

    def set(self) -> None:
        if not self._ready:  # in the process that uses it, not the one that made it
            os.set_blocking(self.end.fileno(), False)
            self._ready = True
        with contextlib.suppress(BlockingIOError, BrokenPipeError):  # already awake, or gone
            os.write(self.end.fileno(), b"\0")

    def clear(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:
        raise TypeError("a Sender only wakes the other side")

    def __getstate__(self) -> Connection:  # only the pipe's end goes to the other process
        return self.end

    def __setstate__(self, end: Connection) -> None:
        self.__init__(end)  # type: ignore[misc]

    def close(self) -> None:
        self.end.close()


class Receiver:
    """The waiting end. A wake-up from its own process (`set`: the server's writer waking the
    server's watcher, or a stop) goes through a pipe of its own, so that it ends a wait
    already under way, as one from the other process does."""

    def __init__(self, end: Connection) -> None:
        self.end = end
        self.gone = False  # the sender's end is closed: its process has ended or let go
        self._local = threading.Event()
        self._nudge, self._nudged = os.pipe()
        for fd in (self._nudge, self._nudged):
            os.set_blocking(fd, False)
        self._fds = weakref.finalize(self, _close, self._nudge, self._nudged)

    def __getstate__(self) -> Connection:
        return self.end

    def __setstate__(self, end: Connection) -> None:
        self.__init__(end)  # type: ignore[misc]

    def set(self) -> None:
        self._local.set()
        with contextlib.suppress(BlockingIOError):  # a full pipe already wakes the waiter
            os.write(self._nudged, b"\0")

    def clear(self) -> None:
        self._local.clear()
        with contextlib.suppress(BlockingIOError):
            os.read(self._nudge, 65536)

    def wait(self, timeout: float | None = None) -> bool:
        """Whether woken (or the sender gone) within `timeout` seconds."""
        if self._local.is_set():
            return True
        if self.gone:
            self._local.wait(timeout)
            return True
        ready = multiprocessing.connection.wait([self.end, self._nudge], timeout)
        if self.end not in ready:
            return self._local.is_set()
        try:
            drained = os.read(self.end.fileno(), 65536)
        except BlockingIOError:
            return True
        if not drained:
            self.gone = True
        return True

    def close(self) -> None:
        self.end.close()
        self._fds()


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
