"""Time conversions: exact microseconds in, RFC 3339 with milliseconds out."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomlog.domain.events import (
    LATEST_AT,
    MICROS,
    InvalidTime,
    micros_from_at,
    micros_from_rfc3339,
    rfc3339,
)
from roomlog.domain.sessions import SESSION_NAMESPACE, session_id


def test_fractions_of_a_second_are_kept_to_the_microsecond() -> None:
    assert micros_from_at(1.000001) == 1_000_001
    assert micros_from_at("1970-01-01T00:00:01.000001Z") == 1_000_001


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1, LATEST_AT + 1, True])
def test_unusable_unix_seconds_are_refused(bad: float) -> None:
    with pytest.raises(InvalidTime):
        micros_from_at(bad)


@given(st.integers(min_value=0, max_value=LATEST_AT * MICROS))
def test_rfc3339_round_trips_at_millisecond_precision(micros: int) -> None:
    assert micros_from_rfc3339(rfc3339(micros)) == micros // 1000 * 1000


def test_rfc3339_is_written_as_videosdk_writes_it() -> None:
    assert rfc3339(1_634_630_135_807_000) == "2021-10-19T07:55:35.807Z"


@given(st.text(max_size=20), st.text(max_size=20), st.integers())
def test_session_ids_are_uuid5_names(tenant: str, room: str, start: int) -> None:
    expected = uuid.uuid5(SESSION_NAMESPACE, f"{tenant}\x1f{room}\x1f{start}")
    assert session_id(tenant, room, start) == str(expected)
