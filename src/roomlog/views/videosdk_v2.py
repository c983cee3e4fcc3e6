"""VideoSDK's current (v2) shapes: `/v2/sessions`, a session's participants, `/v2/rooms`.

The same sessions as v1 (`roomlog.views.videosdk`), with `roomId` for the room, a `status`
and `links`: absolute URLs built on the base URL the caller reached roomlog at. Fields that
roomlog cannot know (the VideoSDK account's `userId` and `user`, participants' device
information, quality statistics and mic/webcam events, a session's region and HLS log) are
left out; `customRoomId` is null, since a room's name is its only id.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

import msgspec

from roomlog.domain.events import rfc3339
from roomlog.domain.sessions import MeetingSession
from roomlog.views.videosdk import SessionParticipant, active_duration, participants

Status = Literal["ongoing", "ended"]


class SessionLinks(msgspec.Struct):
    get_room: str
    get_session: str


class ActiveLinks(msgspec.Struct):
    get_session: str
    get_all_participants: str


class SessionV2(msgspec.Struct):
    """A session as `/v2/sessions` lists it."""

    id: str
    roomId: str  # noqa: N815 - VideoSDK's field names
    start: str
    end: str | None
    participants: list[SessionParticipant]
    status: Status
    links: SessionLinks


class SessionV2Detail(msgspec.Struct):
    """One session, as `/v2/sessions/{sessionId}` answers it."""

    id: str
    roomId: str  # noqa: N815
    start: str
    end: str | None
    participants: list[SessionParticipant]
    activeDuration: int  # noqa: N815
    chatLink: str | None  # noqa: N815
    status: Status
    links: SessionLinks


class SessionParticipants(msgspec.Struct):
    """The `data` of `/v2/sessions/{sessionId}/participants`: the session and one page of its
    participants."""

    id: str
    roomId: str  # noqa: N815
    customRoomId: None  # noqa: N815
    participants: list[SessionParticipant]
    links: SessionLinks


class ActiveSession(msgspec.Struct, rename={"id": "_id"}):
    """An entry of `/v2/sessions/{sessionId}/participants/active`: the session and one page
    of the participants present now."""

    id: str
    apiKey: str  # noqa: N815
    start: str
    end: str | None
    participants: list[SessionParticipant]
    roomId: str  # noqa: N815
    status: Status
    links: ActiveLinks


class RoomV2(msgspec.Struct):
    """A room as `/v2/rooms` answers it: created at its first event, updated at its latest."""

    roomId: str  # noqa: N815
    customRoomId: None  # noqa: N815
    disabled: bool
    createdAt: str  # noqa: N815
    updatedAt: str  # noqa: N815
    id: str
    links: SessionLinks


class Links:
    """The absolute URLs of rooms and sessions under one base URL."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def room(self, name: str) -> str:
        return f"{self.base}/v2/rooms/{quote(name, safe='')}"

    def session(self, session_id: str = "") -> str:
        return f"{self.base}/v2/sessions/{quote(session_id, safe='')}"

    def of_session(self, session: MeetingSession) -> SessionLinks:
        return SessionLinks(self.room(session.room), self.session(session.id))


def status(session: MeetingSession) -> Status:
    return "ongoing" if session.end is None else "ended"


def _end(session: MeetingSession) -> str | None:
    return None if session.end is None else rfc3339(session.end)


def session_v2(session: MeetingSession, links: Links) -> SessionV2:
    return SessionV2(
        id=session.id,
        roomId=session.room,
        start=rfc3339(session.start),
        end=_end(session),
        participants=participants(session.participants),
        status=status(session),
        links=links.of_session(session),
    )


def session_v2_detail(
    session: MeetingSession, now: int, links: Links, chat_link: str | None
) -> SessionV2Detail:
    return SessionV2Detail(
        id=session.id,
        roomId=session.room,
        start=rfc3339(session.start),
        end=_end(session),
        participants=participants(session.participants),
        activeDuration=active_duration(session.participants, now),
        chatLink=chat_link,
        status=status(session),
        links=links.of_session(session),
    )


def session_participants(
    session: MeetingSession, page: list[SessionParticipant], links: Links
) -> SessionParticipants:
    return SessionParticipants(session.id, session.room, None, page, links.of_session(session))


def active_session(
    session: MeetingSession, page: list[SessionParticipant], api_key: str, links: Links
) -> ActiveSession:
    return ActiveSession(
        id=session.id,
        apiKey=api_key,
        start=rfc3339(session.start),
        end=_end(session),
        participants=page,
        roomId=session.room,
        status=status(session),
        links=ActiveLinks(links.session(session.id), f"{links.session(session.id)}/participants"),
    )


def room_v2(name: str, first_at: int, latest_at: int, links: Links) -> RoomV2:
    """Room `name`, whose first and latest events are at `first_at` and `latest_at` (µs)."""
    return RoomV2(
        roomId=name,
        customRoomId=None,
        disabled=False,
        createdAt=rfc3339(first_at),
        updatedAt=rfc3339(latest_at),
        id=name,
        links=SessionLinks(links.room(name), links.session()),
    )
