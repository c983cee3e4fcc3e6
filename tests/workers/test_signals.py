"""Wake-ups through pipes (`workers/signals.py`): each kind ends a wait already under way."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from roomlog.workers.signals import Receiver, pipe


def _woken_while_waiting(receiver: Receiver, wake: Callable[[], None]) -> list[bool]:
    """What a wait of a minute answered, when `wake` came while it was under way (empty:
    it had not ended 10 s later)."""
    answered: list[bool] = []
    waiting = threading.Thread(target=lambda: answered.append(receiver.wait(60)), daemon=True)
    waiting.start()
    time.sleep(0.1)  # the wait is under way
    wake()
    waiting.join(10)
    return answered


def test_a_wake_up_from_the_other_end_ends_a_wait() -> None:
    receiver, sender = pipe()
    assert _woken_while_waiting(receiver, sender.set) == [True]
    receiver.clear()
    assert receiver.wait(0) is False


def test_a_wake_up_from_the_waiting_process_itself_ends_a_wait() -> None:
    """The server's writer wakes the server's watcher this way, after applying events itself:
    the watcher must look at once, not at the end of its poll."""
    receiver, _sender = pipe()
    assert _woken_while_waiting(receiver, receiver.set) == [True]
    receiver.clear()
    assert receiver.wait(0) is False


def test_the_other_end_going_away_ends_a_wait_and_is_seen() -> None:
    receiver, sender = pipe()
    assert _woken_while_waiting(receiver, sender.close) == [True]
    assert receiver.gone
    receiver.close()
