"""What the write path takes and answers: a request's events for one project, what became of
them, and the settings it applies them with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import msgspec

from roomlog.domain import strings
from roomlog.domain.events import MICROS, ChatMessage, PresenceEvent, RoomEvent
from roomlog.domain.rules import DEFAULT_RULES, Rules
from roomlog.domain.strings import Refused
from roomlog.ingest.webhook import RoomEnd, Snapshot
from roomlog.store.projects import Project


class Rejected(msgspec.Struct):
    """One item of a batch that was not stored, and why."""

    index: int
    reason: str


class IngestResult(msgspec.Struct, omit_defaults=True):
    """What became of a request's events; `changed`: how many joins and leaves its new room
    ends and snapshots made, as the rooms stood."""

    accepted: int
    duplicates: int
    rejected: list[Rejected]
    changed: int = 0


@dataclass(frozen=True, slots=True)
class Settings:
    rules: Rules = DEFAULT_RULES
    # Events stamped more than this before `now` may arrive and are applied incrementally;
    # later than that they make the room rebuild from its event log (still exact, slower).
    late_window: int = 600 * MICROS
    # How far ahead of the server's clock an event may be stamped.
    max_skew: int = 60 * MICROS
    # Rooms fall into this many partitions (a hash of project and room), each applied by one
    # process at a time. Fixed for a database by its first server.
    partitions: int = 16
    # PostgreSQL: the writer's threads, each appending groups on a connection of its own
    # (`roomlog serve --writers`). SQLite has one writer at a time, and one thread.
    writers: int = 2
    # Threads of an applier, each applying some of its partitions (`serve --apply-threads`):
    # while one waits for the database (SQLite's one writer, a commit), another computes.
    apply_threads: int = 2
    # Events, sessions and chat older than this are removed (`serve --retention-days`), and
    # events stamped that long ago are refused. 0: keep everything.
    retention: int = 0

    def window(self, now: int) -> Window:
        """The stamps an item received at `now` may carry."""
        earliest = now - self.retention if self.retention else 0
        return Window(earliest, now + self.max_skew, now)


@dataclass(frozen=True, slots=True)
class Window:
    """The stamps the server accepts now: not older than the retention (`earliest`, 0 for no
    bound) nor further ahead than its clock allows (`latest`)."""

    earliest: int
    latest: int
    now: int


@dataclass(frozen=True, slots=True)
class Submission:
    """One request's events for one project, each with its index in the request.

    `room_ends`, `snapshots` and `room_events` are room-wide events (SESSION-RULES step 1b):
    stored in the log like any event, they close (and, for a snapshot, open) the presences of
    their room at their instant, whenever they arrive.
    """

    project: Project
    events: Sequence[tuple[int, PresenceEvent]]
    room_ends: Sequence[tuple[int, RoomEnd]] = ()
    snapshots: Sequence[tuple[int, Snapshot]] = ()
    # A provider's redelivery may differ from the first delivery where the provider sends no
    # time (roomlog stamps arrival): its id alone says it is the same event.
    id_is_identity: bool = False
    chats: Sequence[tuple[int, ChatMessage]] = ()
    room_events: Sequence[tuple[int, RoomEvent]] = ()
    # Apply to the sessions in the append's own transaction rather than behind it: for a
    # request that waits for its events to be applied (`?wait=applied`).
    apply_now: bool = False


def conflict(index: int, event: PresenceEvent | ChatMessage | RoomEvent) -> Rejected:
    return Rejected(index, f"id {event.id!r} is already used by a different event")


def too_far(index: int, what: str, latest: int, now: int) -> Rejected:
    """Item `index` is stamped after `latest`, the most the server's clock (`now`) allows."""
    allowance = (latest - now) // MICROS
    clock = datetime.fromtimestamp(now / MICROS, UTC).isoformat(timespec="seconds")
    return Rejected(
        index,
        f"{what} is further in the future than the server allows ({allowance} s ahead of its"
        f" clock, which reads {clock.replace('+00:00', 'Z')}): check the sender's clock",
    )


Item = TypeVar("Item", PresenceEvent, ChatMessage, RoomEvent)


def admitted(
    given: Item,
    clean: Callable[[Item], Item],
    index: int,
    rejected: list[Rejected],
    window: Window,
    what: str = "`at`",
) -> Item | None:
    """`given` as it is stored (`clean`, domain/strings.py), or None once its rejection is
    listed in `rejected`: a string it cannot be stored with, or a stamp outside `window`."""
    try:
        item = clean(given)
    except Refused as exc:
        rejected.append(Rejected(index, str(exc)))
        return None
    if item.at > window.latest:
        rejected.append(too_far(index, what, window.latest, window.now))
        return None
    if item.at < window.earliest:
        rejected.append(too_old(index, what, window))
        return None
    return item


def all_admitted(events: Sequence[tuple[int, PresenceEvent]], window: Window) -> bool:
    """Whether `admitted` would take every one of `events` as it is given (its strings kept
    by `strings.presence`, its stamp within `window`): checked for the whole batch at once,
    so that the usual batch is not checked event by event."""
    if not events:
        return True
    given = [event for _, event in events]
    stamps = [event.at for event in given]
    if min(stamps) < window.earliest or max(stamps) > window.latest:
        return False
    return strings.all_kept(given)


def too_old(index: int, what: str, window: Window) -> Rejected:
    days = (window.now - window.earliest) / MICROS / 86_400
    return Rejected(
        index,
        f"{what} is older than the server keeps anything ({days:g} days, `--retention-days`):"
        " what old would be removed at once, so it is not stored",
    )
