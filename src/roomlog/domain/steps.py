"""The batch face's steps 1-3 over numpy columns of every room at once: kept presences, the
occupancy changes they make, and the windows of the sessions (see `roomlog.domain.batch`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from roomlog.domain.rules import Rules

Ints = NDArray[np.int64]
Flags = NDArray[np.bool_]
# (participant_id, user_id, user_name) of one event.
Person = tuple[str, str | None, str | None]
# Who the events at the given positions are about: asked for only where needed (the joins that
# opened kept presences, about half the events). Large asks come in ascending positions, which
# read memory in order: several times faster than reading it at random.
Who = Callable[[list[int]], list[Person]]


def _user_order(user_id: str | None, user_name: str | None) -> tuple[bool, str, bool, str]:
    return (user_id is not None, user_id or "", user_name is not None, user_name or "")


def narrow(codes: Ints) -> NDArray[np.integer[Any]]:
    """Codes in 16 bits where they fit, which numpy sorts by radix, several times faster."""
    return codes.astype(np.uint16) if len(codes) and int(codes.max()) < 1 << 16 else codes


class Presences(NamedTuple):
    """Kept presences (SESSION-RULES step 1), in (room, participant, start) order."""

    room: Ints
    start: Ints
    end: Ints  # `now` while open
    open: Flags
    event: Ints  # the join that opened it: who it is


def kept_presences(
    stamps: Ints,
    room_codes: Ints,
    pid_codes: Ints,
    now: int,
    rules: Rules,
    who: Who,
) -> Presences:
    """SESSION-RULES step 1 for every participant of every room at once."""
    upto = now * 2 + 1
    taken = np.flatnonzero(stamps <= upto) if int(stamps.max()) > upto else None
    if taken is not None:  # events stamped after `now` are not yet history
        stamps, room_codes, pid_codes = stamps[taken], room_codes[taken], pid_codes[taken]
    # By participant, then stamp: participant codes follow first appearances, which follow
    # time, so this sort finds long sorted runs. A participant id seen in several rooms is a
    # different participant in each: then the sort is by room first.
    order = np.lexsort((stamps, pid_codes))
    r = room_codes[order]
    p = pid_codes[order]
    if np.any((p[1:] == p[:-1]) & (r[1:] != r[:-1])):
        order = np.lexsort((stamps, pid_codes, room_codes))
        r = room_codes[order]
        p = pid_codes[order]
    s = stamps[order]
    if taken is not None:
        order = taken[order]
    size = len(order)
    joined = (s & 1).astype(np.bool_)
    # A join while absent opens a presence, a leave while present closes it; the first event
    # of each participant follows an absence.
    first = np.ones(size, np.bool_)
    first[1:] = (p[1:] != p[:-1]) | (r[1:] != r[:-1])
    after_join = np.zeros(size, np.bool_)
    after_join[1:] = joined[:-1]
    after_join &= ~first
    opens = joined & ~after_join
    turns = np.flatnonzero(opens | (~joined & after_join))
    turn_opens = opens[turns]
    at_open = np.flatnonzero(turn_opens)
    # Opens and closes alternate within a participant: an open's close is the next turn.
    following = at_open + 1
    closed = following < len(turns)
    closed[closed] = ~turn_opens[following[closed]]
    start_pos = turns[at_open]
    start = s[start_pos] >> 1
    end = np.full(len(start), now, np.int64)
    end[closed] = s[turns[following[closed]]] >> 1
    keep = end - start >= rules.min_presence
    start_pos = start_pos[keep]
    event = order[start_pos]
    _settle_joint_joins(event, start_pos, order, s, first, who)
    return Presences(r[start_pos], start[keep], end[keep], ~closed[keep], event)


def _settle_joint_joins(
    event: Ints, start_pos: Ints, order: Ints, s: Ints, first: Flags, who: Who
) -> None:
    """Where joins of one participant share the opening instant, take the least user.

    As in the incremental face: the order the joins arrived in must not matter.
    """
    size = len(s)
    # Each event's run of equal stamps of one participant ends where `breaks` says.
    breaks = np.ones(size, np.bool_)
    breaks[:-1] = (s[1:] != s[:-1]) | first[1:]
    run_end = np.flatnonzero(breaks)
    stop = run_end[np.searchsorted(run_end, start_pos)] + 1
    tied = np.flatnonzero(stop - start_pos > 1)
    if not len(tied):
        return
    lengths = (stop - start_pos)[tied]
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    rows = np.repeat(start_pos[tied] - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
    candidates = order[rows].tolist()
    keys = [_user_order(user_id, user_name) for _, user_id, user_name in who(candidates)]
    bounds = offsets.tolist()
    for k, lo, hi in zip(tied.tolist(), bounds[:-1], bounds[1:], strict=True):
        mine = keys[lo:hi]
        event[k] = candidates[lo + mine.index(min(mine))]


class Changes(NamedTuple):
    """Occupancy changes (SESSION-RULES step 2), in (room, instant) order, none of them zero."""

    room: Ints
    at: Ints
    after: Ints  # the occupancy after the change
    before: Ints  # and before it
    last_in_room: Flags
    of_start: Ints  # for each presence, the latest change at or before its start


def occupancy_changes(kept: Presences) -> Changes:
    n = len(kept.start)
    closed = np.flatnonzero(~kept.open)
    room = np.concatenate((kept.room, kept.room[closed]))
    at = np.concatenate((kept.start, kept.end[closed]))
    delta = np.concatenate((np.ones(n, np.int64), np.full(len(closed), -1, np.int64)))
    order = np.lexsort((at, narrow(room)))
    room, at, delta = room[order], at[order], delta[order]
    fresh = np.ones(len(at), np.bool_)
    fresh[1:] = (at[1:] != at[:-1]) | (room[1:] != room[:-1])
    heads = np.flatnonzero(fresh)
    net = np.add.reduceat(delta, heads)
    # The changes at one instant take effect together: a swap or a reconnect is no change.
    real = net != 0
    # Where each presence's start landed: its instant's group, then the latest real change
    # at or before it (a reconnect's instant nets to zero; the room is occupied through it).
    group = np.cumsum(fresh) - 1
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    of_start = (np.cumsum(real) - 1)[group[position[:n]]]
    room, at, delta = room[heads][real], at[heads][real], net[real]
    size = len(at)
    room_first = np.ones(size, np.bool_)
    room_first[1:] = room[1:] != room[:-1]
    last_in_room = np.ones(size, np.bool_)
    last_in_room[:-1] = room_first[1:]
    total = np.cumsum(delta)
    head = np.maximum.accumulate(np.where(room_first, np.arange(size), 0))
    count = total - (total[head] - delta[head])
    return Changes(room, at, count, count - delta, last_in_room, of_start)


class Sessions(NamedTuple):
    """Sessions (SESSION-RULES step 3), in (room, start) order."""

    room: Ints
    start: Ints
    end: Ints  # `now` while ongoing
    ongoing: Flags
    most: Ints  # max_participants
    episode: Ints
    first_change: Ints  # the first change inside the session


def session_windows(c: Changes, now: int, rules: Rules) -> tuple[Sessions, Ints]:
    """The sessions, and each change's episode."""
    size = len(c.at)
    begins = np.flatnonzero(c.before == 0)
    empties = np.flatnonzero(c.after == 0)
    episode_of = np.cumsum(c.before == 0) - 1
    # Episodes and the changes that empty the room alternate within a room.
    k = np.searchsorted(empties, begins)
    ended = k < len(empties)
    k = np.minimum(k, max(len(empties) - 1, 0))
    if len(empties):
        ended &= c.room[empties[k]] == c.room[begins]
    stop = np.where(ended, empties[k] if len(empties) else 0, 0)
    # An episode still open at `now` runs to its room's last change.
    room_stop = np.flatnonzero(c.last_in_room) + 1
    room_index = np.cumsum(np.r_[True, c.room[1:] != c.room[:-1]]) - 1
    stop = np.where(ended, stop, room_stop[room_index[begins]])
    t0 = c.at[begins]
    t1 = np.where(ended, c.at[np.minimum(stop, size - 1)], now)
    padded = np.append(c.after, 0)
    busiest = np.maximum.reduceat(padded, np.ravel(np.column_stack((begins, stop))))[::2]
    makes = (busiest >= 2) | (t1 - t0 >= rules.solo_start)
    # Splits: a fall to one, and no change by the reset timer's deadline (a change at that
    # very instant cancels it; with no change at all, a deadline up to `now` has come).
    falls = np.flatnonzero((c.before >= 2) & (c.after == 1))
    deadline = c.at[falls] + rules.solo_reset
    nxt = c.at[np.minimum(falls + 1, size - 1)]
    splits = np.where(c.last_in_room[falls], deadline <= now, nxt > deadline)
    falls, deadline = falls[splits], deadline[splits]

    made = np.flatnonzero(makes)
    episode = np.concatenate((made, episode_of[falls]))
    start = np.concatenate((t0[made], deadline))
    lo = np.concatenate((begins[made], falls + 1))
    order = np.lexsort((start, episode))
    episode, start, lo = episode[order], start[order], lo[order]
    count = len(start)
    same = np.zeros(count, np.bool_)
    same[:-1] = episode[1:] == episode[:-1]
    nxt_start = np.append(start[1:], 0)
    nxt_lo = np.append(lo[1:], 0)
    end = np.where(same, nxt_start, t1[episode])
    hi = np.where(same, nxt_lo, stop[episode])
    most = np.maximum.reduceat(padded, np.ravel(np.column_stack((lo, hi))))[::2]
    most = np.where(lo < hi, np.maximum(most, 1), 1)
    ongoing = ~same & ~ended[episode]
    room = c.room[begins][episode]
    return Sessions(room, start, end, ongoing, most, episode, lo), episode_of
