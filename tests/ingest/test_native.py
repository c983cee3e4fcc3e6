"""The native event format: what is accepted, and the message for what is not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomlog.domain.events import JOINED, LATEST_AT, MICROS, PresenceEvent
from roomlog.ingest.native import (
    InvalidEvent,
    NativeEvent,
    parse_event,
    to_presence,
    to_presences,
)


def test_a_full_event_is_parsed() -> None:
    event = parse_event(
        b'{"id":"e1","type":"participant.joined","room":"r","participant_id":"p",'
        b'"user_id":"u","user_name":"Ada","at":1700000000.25,"extra":"ignored"}'
    )
    assert event.type == JOINED
    assert event.at == 1_700_000_000 * MICROS + 250_000
    assert (event.user_id, event.user_name) == ("u", "Ada")


def test_rfc3339_and_integer_times_mean_the_same_instant() -> None:
    base = '{"id":"e","type":"participant.left","room":"r","participant_id":"p","at":%s}'
    assert (
        parse_event(base % '"2023-11-14T22:13:20Z"').at
        == parse_event(base % "1700000000").at
        == parse_event(base % '"2023-11-14T23:13:20+01:00"').at
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "truncated"),
        ("{x", "JSON is malformed"),
        ("[]", "Expected `object`, got `array`"),
        ('{"type":"participant.joined","room":"r","participant_id":"p","at":1}', "`id`"),
        ('{"id":"e","type":"joined","room":"r","participant_id":"p","at":1}', "`$.type`"),
        ('{"id":"e","type":"participant.left","room":"","participant_id":"p","at":1}', "$.room"),
        ('{"id":"e","type":"participant.left","room":"r","participant_id":7,"at":1}', "$.partic"),
        ('{"id":"e","type":"participant.left","room":"r","participant_id":"p","at":true}', "at"),
        ('{"id":"e","type":"participant.left","room":"r","participant_id":"p","at":-5}', "1970"),
        ('{"id":"e","type":"participant.left","room":"r","participant_id":"p","at":"x"}', "RFC"),
        (
            '{"id":"e","type":"participant.left","room":"r","participant_id":"p",'
            '"at":"2023-11-14T22:13:20"}',
            "no UTC offset",
        ),
    ],
)
def test_invalid_documents_name_what_is_wrong(document: str, message: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(document)
    assert message in str(caught.value)


# Stamps of every kind a client may send: in range and out, at the edges, not numbers at all.
stamps = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1.0, max_value=LATEST_AT + 1.0),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-2, max_value=2).map(lambda n: LATEST_AT + n),
    st.booleans(),
    st.sampled_from(["2023-11-14T22:13:20.5Z", "2023-11-14T22:13:20", "x", "1700000000"]),
)


@given(st.lists(stamps, max_size=20))
def test_a_batch_is_converted_as_each_of_its_events_is(ats: list[int | float | str]) -> None:
    natives = [
        NativeEvent(id=f"e{n}", type="participant.joined", room="r", participant_id="p", at=at)
        for n, at in enumerate(ats)
    ]
    made, invalid = to_presences(natives)
    expected: list[tuple[int, PresenceEvent]] = []
    reasons: list[tuple[int, str]] = []
    for index, native in enumerate(natives):
        try:
            expected.append((index, to_presence(native)))
        except InvalidEvent as exc:
            reasons.append((index, str(exc)))
    assert made == expected
    assert [type(event) for _, event in made] == [PresenceEvent] * len(made)
    assert invalid == reasons
