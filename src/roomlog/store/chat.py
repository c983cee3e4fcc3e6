"""The chat log: chat messages appended beside the events, with the same duplicate rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from roomlog.domain import strings
from roomlog.domain.events import ChatMessage
from roomlog.store.schema import chat_messages
from roomlog.store.writes import IngestResult, Submission, Window, admitted, conflict


def write_chats(
    connection: Connection,
    insert: Any,
    window: Window,
    submissions: Sequence[Submission],
    results: list[IngestResult],
    now: int,
) -> None:
    """Append the chat messages to their log, with the same duplicate rules as events."""
    first: dict[tuple[int, str], tuple[int, int, ChatMessage]] = {}
    repeats: list[tuple[int, int, ChatMessage]] = []
    for n, submission in enumerate(submissions):
        for index, given in submission.chats:
            message = admitted(given, strings.chat, index, results[n].rejected, window)
            if message is None:
                continue
            if (submission.project.id, message.id) in first:
                repeats.append((n, index, message))
            else:
                first[(submission.project.id, message.id)] = (n, index, message)
    if not first:
        return
    rows = [
        {"project_id": pid, "received_at": now, **message._asdict()}
        for (pid, _), (_, _, message) in sorted(first.items(), key=lambda kv: kv[0])
    ]
    statement = (
        insert(chat_messages)
        .on_conflict_do_nothing(index_elements=["project_id", "id"])
        .returning(chat_messages.c.project_id, chat_messages.c.id)
    )
    inserted = {(r[0], r[1]) for r in connection.execute(statement, rows)}
    existing: dict[tuple[int, str], tuple[Any, ...]] = {}
    for pid, eid in first.keys() - inserted:
        row = connection.execute(
            select(*(chat_messages.c[f] for f in ChatMessage._fields)).where(
                chat_messages.c.project_id == pid, chat_messages.c.id == eid
            )
        ).first()
        if row is not None:
            existing[(pid, eid)] = tuple(row)
    for key, (n, index, message) in first.items():
        if key in inserted:
            results[n].accepted += 1
        elif existing.get(key) == tuple(message):
            results[n].duplicates += 1
        else:
            results[n].rejected.append(conflict(index, message))
    for n, index, message in repeats:
        if first[(submissions[n].project.id, message.id)][2] == message:
            results[n].duplicates += 1
        else:
            results[n].rejected.append(conflict(index, message))
