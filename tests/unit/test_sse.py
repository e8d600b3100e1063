"""bastion.protocol.sse: the one reader and writer of server-sent events."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from bastion.protocol.sse import encode, event_data, event_json, split_events

STREAM = (b': keep-alive\n\ndata: {"a": 1}\n\nevent: x\ndata: {"b":\ndata:  2}\n\n'
          b"data: [DONE]\n\n")


def test_event_data_joins_data_lines_and_ignores_the_rest() -> None:
    assert event_data(b": comment") == b""
    assert event_data(b'data: {"a": 1}') == b'{"a": 1}'
    assert event_data(b'event: x\ndata: {"b":\ndata:  2}') == b'{"b":\n2}'
    assert event_json(b'event: x\ndata: {"b":\ndata:  2}') == {"b": 2}
    for nothing in (b"data: [DONE]", b": ping", b"data: {bad", b"data: [1, 2]", b""):
        assert event_json(nothing) is None


def test_encode_round_trips() -> None:
    (event,) = split_events([encode({"x": "é\n"})])
    assert event_json(event) == {"x": "é\n"}


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=8))
def test_events_are_the_same_however_the_stream_is_cut(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in pairwise(points)]
    events = list(split_events(chunks))
    assert [event_json(e) for e in events] == [None, {"a": 1}, {"b": 2}, None]
    assert event_data(events[-1]) == b"[DONE]"


def test_crlf_streams_and_a_last_event_without_its_blank_line() -> None:
    assert [event_json(e) for e in split_events([b'data: {"a": 1}\r\n\r\ndata: {"b": 2}'])] == [
        {"a": 1}, {"b": 2}]
