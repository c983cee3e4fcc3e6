"""Provider webhooks over real HTTP: signed as each provider signs them (LiveKit and Twilio with
their own packages), they end as the sessions `roomlog sessionize` computes from the same
presences; forged ones are refused and store nothing; duplicates and shuffles change nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.protobuf.json_format import MessageToJson
from livekit import api
from livekit.protocol import models as lk_models
from livekit.protocol import webhook as lk_webhook
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from roomlog.ingest.daily import signature
from roomlog.store.db import Database, migrate, open_database
from roomlog.store.providers import PROVIDERS, set_credentials
from roomlog.store.schema import events
from tests.fixtures import make_project, scratch_database
from tests.servers import Server
from tests.test_processes import expected, listed, recent_history

LIVEKIT_KEY, LIVEKIT_SECRET = "APIroomlogtest", "livekit-secret-for-the-tests-0123456789"
DAILY_HMAC = base64.b64encode(b"daily-secret-for-the-tests").decode()
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
JITSI_SECRET = "jitsi-shared-secret"
VIDEOSDK_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
VIDEOSDK_PEM = (
    VIDEOSDK_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)

Body = dict[str, Any]


class Served:
    def __init__(self, server: Server, key: str, database: Database) -> None:
        self.server, self.key, self.database = server, key, database
        self.url = server.url

    def stored(self, room: str) -> int:
        with self.database.engine.connect() as connection:
            count: int = connection.execute(
                select(func.count()).where(events.c.room == room)
            ).scalar_one()
            return count


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder: Path = tmp_path_factory.mktemp("providers")
    with scratch_database(request.param, folder) as url:
        database = open_database(url)
        migrate(database)
        project, key = make_project(database, "default")
        credentials = {
            "livekit": {"api_key": LIVEKIT_KEY, "api_secret": LIVEKIT_SECRET},
            "daily": {"hmac": DAILY_HMAC},
            "twilio": {"auth_token": TWILIO_TOKEN},
            "videosdk": {"public_key": VIDEOSDK_PEM},
            "jitsi": {"secret": JITSI_SECRET},
        }
        assert set(credentials) == set(PROVIDERS)
        with database.engine.begin() as connection:
            for provider, values in credentials.items():
                set_credentials(connection, project.id, provider, values)
        server = Server(url, folder / "server.log")
        try:
            yield Served(server, key, database)
        finally:
            server.stop()
            database.dispose()


def native(bodies: list[Body], names: bool = True) -> list[Body]:
    """The native events a provider's webhooks stand for (Twilio has no display names)."""
    dropped = {"joined_at"} if names else {"joined_at", "user_name"}
    return [{k: v for k, v in b.items() if k not in dropped} for b in bodies]


# -- each provider's requests, made as the provider makes them -------------------------------

Request = tuple[str, bytes, dict[str, str]]


def livekit_request(
    kind: str,
    event_id: str,
    room: str,
    at: int,
    person: Body | None = None,
    secret: str = LIVEKIT_SECRET,
) -> Request:
    event = lk_webhook.WebhookEvent(
        event=kind, id=event_id, created_at=at, room=lk_models.Room(name=room)
    )
    if person is not None:
        event.participant.CopyFrom(
            lk_models.ParticipantInfo(
                sid=person["participant_id"],
                identity=person["user_id"],
                name=person["user_name"],
                joined_at=person["joined_at"],
            )
        )
    body = MessageToJson(event).encode()
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(LIVEKIT_KEY, secret).with_sha256(digest).to_jwt()
    headers = {"Authorization": token, "Content-Type": "application/webhook+json"}
    return "/v1/ingest/livekit", body, headers


def livekit(body: Body) -> Request:
    kind = "participant_joined" if body["type"] == "participant.joined" else "participant_left"
    return livekit_request(kind, body["id"], body["room"], body["at"], body)


def daily_sign(body: bytes, secret: str = DAILY_HMAC, age: int = 0) -> dict[str, str]:
    timestamp = str(int(time.time()) - age)
    return {
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": signature(secret, timestamp, body),
        "Content-Type": "application/json",
    }


def daily(body: Body) -> Request:
    payload: Body = {
        "room": body["room"],
        "session_id": body["participant_id"],
        "user_id": body["user_id"],
        "user_name": body["user_name"],
        "joined_at": body["joined_at"],
        "owner": False,
    }
    if body["type"] == "participant.left":
        payload["duration"] = body["at"] - body["joined_at"]
    envelope = {
        "version": "1.0.0",
        "type": body["type"],
        "id": body["id"],
        "payload": payload,
        "event_ts": body["at"] + 1,
    }
    raw = json.dumps(envelope).encode()
    return "/v1/ingest/daily", raw, daily_sign(raw)


def twilio_request(base: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> Request:
    path = "/v1/ingest/twilio?project=default"
    validator: Any = cast("type[Any]", RequestValidator)(token)
    signed: str = validator.compute_signature(base + path, params)
    headers = {
        "X-Twilio-Signature": signed,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return path, urlencode(params).encode(), headers


def rfc3339(at: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(at))


def twilio(base: str) -> Callable[[Body], Request]:
    def make(body: Body) -> Request:
        joined = body["type"] == "participant.joined"
        params = {
            "StatusCallbackEvent": "participant-connected"
            if joined
            else "participant-disconnected",
            "RoomName": body["room"],
            "RoomSid": "RM" + hashlib.md5(body["room"].encode()).hexdigest(),
            "ParticipantSid": body["participant_id"],
            "ParticipantIdentity": body["user_id"],
            "SequenceNumber": body["id"],
            "Timestamp": rfc3339(body["at"]),
        }
        return twilio_request(base, params)

    return make


def jitsi(body: Body) -> Request:
    joined = body["type"] == "participant.joined"
    occupant: Body = {
        "occupant_jid": body["participant_id"],
        "joined_at": body["joined_at"],
        "id": body["user_id"],
        "name": body["user_name"],
    }
    if not joined:
        occupant["left_at"] = body["at"]
    post = {
        "event_name": "muc-occupant-joined" if joined else "muc-occupant-left",
        "room_name": body["room"],
        "room_jid": f"{body['room']}@conference.meet.example.com",
        "is_breakout": False,
        "occupant": occupant,
    }
    path = "/v1/ingest/jitsi/events/occupant/" + ("joined" if joined else "left")
    headers = {"Authorization": f"Bearer {JITSI_SECRET}", "Content-Type": "application/json"}
    return path, json.dumps(post).encode(), headers


def send(served: Served, request: Request) -> httpx.Response:
    path, body, headers = request
    return httpx.post(served.url + path, content=body, headers=headers, timeout=30)


# -- sessions from each provider -------------------------------------------------------------


@pytest.mark.parametrize("provider", ["livekit", "daily", "twilio", "jitsi"])
def test_shuffled_duplicated_webhooks_end_as_sessionize_says(served: Served, provider: str) -> None:
    room = f"{provider}-0"
    bodies = recent_history(len(provider), rooms=1, prefix=provider, whole_seconds=True)
    maker: Callable[[Body], Request] = {
        "livekit": livekit,
        "daily": daily,
        "twilio": twilio(served.url),
        "jitsi": jitsi,
    }[provider]
    requests = [maker(b) for b in bodies]
    rnd = random.Random(7)
    deliveries = requests + rnd.sample(requests, len(requests) // 3)
    rnd.shuffle(deliveries)
    for request in deliveries:
        answer = send(served, request)
        assert answer.status_code == 200, answer.text
        assert answer.json()["rejected"] == []
    assert served.stored(room) == len(bodies)
    presences = native(bodies, names=provider != "twilio")
    want = [m for m in expected(presences, "default") if m["room"] == room]
    assert len(want) >= 5
    got = [m for m in listed(served.url, served.key) if m["room"] == room]
    assert got == want


def test_a_finished_livekit_room_closes_every_open_presence(served: Served) -> None:
    room, start = "livekit-finished", int(time.time()) - 600
    people = [
        {
            "participant_id": f"PA_{n}",
            "user_id": f"u{n}",
            "user_name": f"U{n}",
            "joined_at": start + n,
        }
        for n in range(3)
    ]
    for n, person in enumerate(people):
        assert (
            send(
                served, livekit_request("participant_joined", f"EV_j{n}", room, start + n, person)
            ).status_code
            == 200
        )
    finished = livekit_request("room_finished", "EV_end", room, start + 300)
    assert send(served, finished).json()["changed"] == 3  # one room end, closing three
    assert send(served, finished).json() == {
        "accepted": 0,
        "duplicates": 1,
        "rejected": [],
        "ignored": None,
        "changed": 0,
    }
    (meeting,) = [m for m in listed(served.url, served.key) if m["room"] == room]
    assert (meeting["start_time"], meeting["duration"], meeting["ongoing"]) == (
        start,
        300,
        False,
    )
    assert sorted(p["duration"] for p in meeting["participants"]) == [298, 299, 300]


def test_a_twilio_room_end_and_a_jitsi_room_destroyed_close_presences(served: Served) -> None:
    start = int(time.time()) - 900
    base = {"RoomName": "twilio-ended", "RoomSid": "RMended", "Timestamp": rfc3339(start)}
    for n in range(2):
        params = {
            **base,
            "StatusCallbackEvent": "participant-connected",
            "ParticipantSid": f"PA{n}",
            "ParticipantIdentity": f"id{n}",
            "SequenceNumber": str(n),
        }
        assert send(served, twilio_request(served.url, params)).json()["accepted"] == 1
    ended = {
        **base,
        "StatusCallbackEvent": "room-ended",
        "SequenceNumber": "9",
        "Timestamp": rfc3339(start + 120),
    }
    assert send(served, twilio_request(served.url, ended)).json()["changed"] == 2
    destroyed = {
        "event_name": "muc-room-destroyed",
        "room_name": "twilio-ended",
        "destroyed_at": start + 60,
    }
    headers = {"Authorization": f"Bearer {JITSI_SECRET}"}
    answer = httpx.post(
        f"{served.url}/v1/ingest/jitsi/default/events/room/destroyed",
        json=destroyed,
        headers=headers,
    )
    assert answer.json()["changed"] == 2  # an earlier end: the presences close there
    (meeting,) = [m for m in listed(served.url, served.key) if m["room"] == "twilio-ended"]
    assert (meeting["duration"], meeting["max_participants"]) == (60, 2)


def videosdk_request(
    webhook_type: str, data: Body, key: rsa.RSAPrivateKey = VIDEOSDK_KEY
) -> Request:
    body = json.dumps({"webhookType": webhook_type, "data": data}).encode()
    signed = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    headers = {"videosdk-signature": base64.b64encode(signed).decode()}
    return "/v1/ingest/videosdk", body, headers


def test_videosdk_webhooks_stamp_arrival_and_session_ended_closes(served: Served) -> None:
    room = "videosdk-room"
    for pid in ("a", "b"):
        data = {
            "meetingId": room,
            "sessionId": "s1",
            "participantId": pid,
            "participantName": pid.upper(),
        }
        request = videosdk_request("participant-joined", data)
        assert send(served, request).json()["accepted"] == 1
        assert send(served, request).json()["duplicates"] == 1
    ended = videosdk_request("session-ended", {"meetingId": room, "sessionId": "s1"})
    assert send(served, ended).json()["changed"] == 2
    with served.database.engine.connect() as connection:
        rows = connection.execute(
            select(events.c.joined, events.c.participant_id, events.c.user_name, events.c.at)
            .where(events.c.room == room)
            .order_by(events.c.at, events.c.joined.desc(), events.c.participant_id)
        ).all()
    # The joins, then the session's end: a room end (2) in the log, which closes them both.
    assert [(r.joined, r.participant_id, r.user_name) for r in rows] == [
        (1, "a", "A"),
        (1, "b", "B"),
        (2, "", None),
    ]
    assert abs(rows[0].at / 1e6 - time.time()) < 600  # stamped on arrival
    present = httpx.get(
        f"{served.url}/v1/rooms/{room}/presence",
        headers={"Authorization": f"Bearer {served.key}"},
    ).json()
    assert present["total_count"] == 0


# -- refusals --------------------------------------------------------------------------------


def forged_requests(base: str) -> list[tuple[str, Request]]:
    person = {
        "participant_id": "PA_x",
        "user_id": "x",
        "user_name": "X",
        "joined_at": int(time.time()),
    }
    good_path, good_body, good_headers = livekit_request(
        "participant_joined", "EV_forged", "forged", int(time.time()), person
    )
    _, other_body, _ = livekit_request(
        "participant_left", "EV_other", "forged", int(time.time()), person
    )
    daily_body = json.dumps(
        {
            "version": "1.0.0",
            "type": "participant.joined",
            "id": "d-forged",
            "payload": {"room": "forged", "session_id": "x", "joined_at": 1},
        }
    ).encode()
    twilio_params = {
        "StatusCallbackEvent": "participant-connected",
        "RoomName": "forged",
        "RoomSid": "RMf",
        "ParticipantSid": "PAf",
        "SequenceNumber": "1",
    }
    path, body, headers = twilio_request(base, twilio_params)
    jitsi_post = json.dumps(
        {
            "event_name": "muc-occupant-joined",
            "room_name": "forged",
            "occupant": {"occupant_jid": "x@y/z", "joined_at": 1},
        }
    ).encode()
    return [
        (
            "livekit: another secret",
            livekit_request("participant_joined", "EV_f", "forged", 1, person, secret="x" * 40),
        ),
        ("livekit: no token", (good_path, good_body, {})),
        ("livekit: another body", (good_path, other_body, good_headers)),
        (
            "daily: another secret",
            (
                "/v1/ingest/daily",
                daily_body,
                daily_sign(daily_body, base64.b64encode(b"no").decode()),
            ),
        ),
        ("daily: unsigned", ("/v1/ingest/daily", daily_body, {})),
        ("twilio: another token", twilio_request(base, twilio_params, token="not-the-token")),
        ("twilio: a changed form", (path, body.replace(b"PAf", b"PAg"), headers)),
        (
            "videosdk: another key",
            videosdk_request(
                "participant-joined",
                {"meetingId": "forged", "participantId": "x"},
                key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ),
        ),
        (
            "jitsi: another secret",
            (
                "/v1/ingest/jitsi/events/occupant/joined",
                jitsi_post,
                {"Authorization": "Bearer nope"},
            ),
        ),
        ("jitsi: no secret", ("/v1/ingest/jitsi/events/occupant/joined", jitsi_post, {})),
    ]


def test_forged_or_unsigned_webhooks_are_refused_and_store_nothing(served: Served) -> None:
    for name, request in forged_requests(served.url):
        answer = send(served, request)
        assert answer.status_code == 401, name
        assert answer.json()["error"] == "authentication-error", name
    assert served.stored("forged") == 0


def test_daily_verification_request_is_answered_and_stores_nothing(served: Served) -> None:
    for project in ("default", "not-set-up-yet"):
        answer = httpx.post(
            f"{served.url}/v1/ingest/daily?project={project}", json={"test": "test"}
        )
        assert answer.status_code == 200
        assert answer.json()["ignored"] == "Daily's verification request"


def test_unknown_provider_project_or_credentials(served: Served, tmp_path: Path) -> None:
    assert httpx.post(f"{served.url}/v1/ingest/zoom", content=b"{}").status_code == 404
    answer = httpx.post(f"{served.url}/v1/ingest/livekit?project=nope", content=b"{}")
    assert answer.status_code == 401
    assert "roomlog providers set livekit --project nope" in answer.json()["info"]


def test_a_verified_but_unreadable_webhook_is_a_400(served: Served) -> None:
    body = b'{"version": "1.0.0", "type": "participant.joined", "id": "x", "payload": {"room": 3}}'
    answer = send(served, ("/v1/ingest/daily", body, daily_sign(body)))
    assert answer.status_code == 400
    assert "payload" in answer.json()["info"]
    other = b'{"type": "recording.started", "id": "y", "payload": {}}'
    assert send(served, ("/v1/ingest/daily", other, daily_sign(other))).json()["ignored"]


def test_a_room_end_stamped_in_the_future_is_refused(served: Served) -> None:
    room, start = "livekit-future-end", int(time.time()) - 60
    person = {"participant_id": "PA_f", "user_id": "f", "user_name": "F", "joined_at": start}
    send(served, livekit_request("participant_joined", "EV_fj", room, start, person))
    answer = send(served, livekit_request("room_finished", "EV_fe", room, start + 7200))
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 0
    assert "future" in answer.json()["rejected"][0]["reason"]
    assert served.stored(room) == 1


# -- hostile input through the receivers ----------------------------------------------------


def _person(room: str, name: str) -> Body:
    at = int(time.time()) - 60
    serial = random.randrange(10**9)
    return {
        "id": f"nul-{serial}",
        "type": "participant.joined",
        "room": room,
        "participant_id": f"p-{serial}",
        "user_id": f"u-{serial}",
        "user_name": name,
        "at": at,
        "joined_at": at,
    }


def _videosdk(body: Body) -> Request:
    data = {
        "meetingId": body["room"],
        "sessionId": "s1",
        "participantId": body["participant_id"],
        "participantName": body["user_name"],
    }
    return videosdk_request("participant-joined", data)


_MAKERS: dict[str, Callable[[Body], Request]] = {
    "livekit": livekit,
    "daily": daily,
    "jitsi": jitsi,
    "videosdk": _videosdk,
}


@pytest.mark.parametrize("provider", sorted(_MAKERS))
def test_a_nul_in_a_display_name_is_replaced_and_the_join_kept(
    served: Served, provider: str
) -> None:
    """Any end user can type one: a correctly signed webhook must not be lost over it."""
    make = _MAKERS[provider]
    room = f"nul-name-{provider}-{random.randrange(10**9)}"
    answer = send(served, make(_person(room, "Ann\x00Lee")))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    with served.database.engine.connect() as connection:
        name = connection.execute(select(events.c.user_name).where(events.c.room == room))
        assert name.scalar_one() == "Ann\ufffdLee"


@pytest.mark.parametrize("provider", [*sorted(_MAKERS), "twilio"])
def test_a_nul_in_a_room_name_is_refused_by_name(served: Served, provider: str) -> None:
    make = twilio(served.url) if provider == "twilio" else _MAKERS[provider]
    answer = send(served, make(_person("bad\x00room", "Ann")))
    assert answer.status_code < 500, answer.text
    assert "`room` contains U+0000" in answer.text
    assert served.stored("bad\x00room".replace("\x00", "")) == 0


def test_a_daily_webhook_signed_too_long_ago_is_refused(served: Served) -> None:
    """Replays are harmless (ids repeat), but signed webhooks keep to a 300 s window."""
    body = _person(f"daily-old-{random.randrange(10**9)}", "Ann")
    _, raw, _ = daily(body)
    old = send(served, ("/v1/ingest/daily", raw, daily_sign(raw, age=301 + 5)))
    assert old.status_code == 401
    assert "300 s" in old.json()["info"]
    assert "old" in old.json()["info"]
    fresh = send(served, ("/v1/ingest/daily", raw, daily_sign(raw, age=60)))
    assert fresh.status_code == 200
    assert fresh.json()["accepted"] == 1
