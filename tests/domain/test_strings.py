"""The string rules (domain/strings.py) checked for a batch at once agree with them event by
event."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from roomlog.domain import strings
from roomlog.domain.events import PresenceEvent
from roomlog.store.writes import Rejected, Window, admitted, all_admitted

# Mostly plain text, with what the rules look for: U+0000, and white space of several kinds
# (ASCII, the separators U+001C..U+001F, an ideographic space) at the edges or alone.
texts = st.text(alphabet=st.sampled_from("ab\x00 \t\n\x1c\x1f\u3000\u00a0\u200b"), max_size=4)
plain = st.text(alphabet="abc", min_size=1, max_size=3)
events = st.builds(
    PresenceEvent,
    id=st.one_of(plain, texts),
    type=st.sampled_from(["participant.joined", "participant.left"]),
    room=st.one_of(plain, texts),
    participant_id=st.one_of(plain, texts),
    at=st.integers(min_value=0, max_value=100),
    user_id=st.one_of(st.none(), plain, texts),
    user_name=st.one_of(st.none(), plain, texts),
)


def kept(event: PresenceEvent) -> bool:
    try:
        return strings.presence(event) == event
    except strings.Refused:
        return False


@given(st.lists(events, max_size=8))
def test_a_batch_is_kept_as_given_exactly_when_each_of_its_events_is(
    batch: list[PresenceEvent],
) -> None:
    assert strings.all_kept(batch) == all(kept(event) for event in batch)


@given(
    st.lists(events, max_size=8),
    st.integers(min_value=-1, max_value=101),
    st.integers(min_value=-1, max_value=101),
)
def test_a_batch_is_admitted_as_given_exactly_when_each_of_its_events_is(
    batch: list[PresenceEvent], earliest: int, latest: int
) -> None:
    window = Window(earliest, latest, now=50)
    rejected: list[Rejected] = []
    taken = [admitted(e, strings.presence, n, rejected, window) for n, e in enumerate(batch)]
    expected = not rejected and taken == batch
    assert all_admitted(list(enumerate(batch)), window) == expected
