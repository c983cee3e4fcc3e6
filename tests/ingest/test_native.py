"""The native event format: what is accepted, and the message for what is not."""

from __future__ import annotations

import pytest

from roomlog.domain.events import JOINED, MICROS
from roomlog.ingest.native import InvalidEvent, parse_event


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
