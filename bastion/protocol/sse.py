"""Server-sent events, read and written in one place.

An event is the text up to a blank line; its data is its ``data:`` lines' values, joined
with newlines (one space after the colon dropped, as the SSE specification says), and an
event with no data (a comment, a keep-alive) has ``b""``. The OpenAI stream ends with the
data ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

DONE = b"[DONE]"


def event_data(event: bytes) -> bytes:
    """The data of one event (``b""`` for none), surrounding whitespace stripped."""
    parts = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(parts) if len(parts) != 1 else parts[0]


def event_json(event: bytes) -> dict[str, Any] | None:
    """The JSON object of an event's data; None for no data, ``[DONE]``, malformed JSON or
    anything but an object."""
    data = event_data(event)
    if not data or data == DONE:
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def split_events(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The events of a byte stream cut anywhere (an event may span chunks), in order; a
    last event without its blank line is yielded too."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            yield event
    if buffer.strip():
        yield buffer


def encode(payload: dict[str, Any]) -> bytes:
    """One event whose data is ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"
