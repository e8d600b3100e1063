"""The C trace encoder (bastion/observe/_spoolc.c) against Python's (spool.encode): every
line it writes is JSON on one line and decodes to what Python's line decodes to; what it
cannot write it leaves to Python, keeping nothing of it."""

from __future__ import annotations

import gc
import json
import math
import os
import weakref
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.context import RequestContext, Span
from bastion.observe import spool as spool_module
from bastion.observe.spool import _FIELDS, _TIMES, Spool, c_lines, decode, encode
from bastion.routing.fairqueue import Claim

pytestmark = pytest.mark.skipif(
    c_lines() is None and os.environ.get("CI") != "true",
    reason="the C encoder is not built (pip install -e . builds it)",
)


def test_the_c_encoder_is_built_where_the_suite_runs_in_ci() -> None:
    assert spool_module._CLines is not None, "setup.py's extension did not build"


def base_ctx(**extra: Any) -> RequestContext:
    c = RequestContext("r-1", "/v1/chat/completions", 1234.5)
    c.body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    c.raw_body = orjson.dumps(c.body)
    c.response_body = b'{"choices":[{"message":{"role":"assistant","content":"yo"}}]}'
    c.finished_at = 1234.75
    c.spans = [Span("backend", 1234.5001, 1234.7, {"deployment": "d", "status": 200})]
    for name, value in extra.items():
        setattr(c, name, value)
    return c


def c_line(c: RequestContext) -> bytes | None:
    lines = c_lines()
    held = lines.add(c)
    if not held:
        assert lines.nbytes == 0 and len(lines) == 0, "nothing of a refused line stays"
        return None
    out = lines.take()
    assert lines.nbytes == 0 and len(lines) == 0
    return bytes(out)


def close(a: Any, b: Any) -> bool:
    """Equal; floats within a few nanoseconds (or an ulp of a large one)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=4e-16, abs_tol=3e-9)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return bool(a == b) and type(a) is type(b)


def assert_same(c: RequestContext) -> bytes | None:
    """c's C line, if it writes one, decodes like its Python line; returns the C line."""
    line = c_line(c)
    if line is None:
        return None
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    json.loads(line)  # strict JSON (the standard library's parser, not only orjson's)
    ours, reference = decode(line), decode(encode(c))
    for name in (*_FIELDS, "received_at", "endpoint", "body", "chunks"):
        assert close(getattr(ours, name), getattr(reference, name)), name
    assert ours.claim == reference.claim
    assert [(s.name, s.attrs) for s in ours.spans] == [(s.name, s.attrs) for s in reference.spans]
    assert close([(s.start, s.end) for s in ours.spans],
                 [(s.start, s.end) for s in reference.spans])
    assert orjson.loads(ours.response_body or b"null") == orjson.loads(
        reference.response_body or b"null")
    return line


def test_a_typical_line_matches_and_writes_times_since_received_at() -> None:
    c = base_ctx(authenticated_at=1234.500010, backend_started_at=1234.5001, model="m",
                 usage={"prompt_tokens": 3, "completion_tokens": 1}, queued_s=0.0)
    line = assert_same(c)
    assert line is not None
    data = orjson.loads(line)
    assert data[0] == spool_module.C_VERSION
    assert data[1 + _FIELDS.index("received_at")] == 1234.5
    assert data[1 + _FIELDS.index("finished_at")] == 250_000_000  # ns after received_at
    assert data[1 + _FIELDS.index("authenticated_at")] == 10_000
    assert data[1 + _FIELDS.index("queued_s")] == 0.0


def test_bodies_are_embedded_as_sent_and_multi_line_ones_handled() -> None:
    c = base_ctx()
    line = assert_same(c)
    assert line is not None and (c.raw_body or b"") in line and (c.response_body or b"") in line
    pretty = base_ctx(raw_body=orjson.dumps({"model": "m"}, option=orjson.OPT_INDENT_2),
                      body={"model": "m"})
    line = assert_same(pretty)
    assert line is not None and decode(line).body == {"model": "m"}
    # a multi-line response is parsed and re-encoded: Python's job
    assert c_line(base_ctx(response_body=b'{\n "a": 1}')) is None


def test_stream_events_are_one_string_with_bad_bytes_replaced() -> None:
    chunks = [b'data: {"choices":[{"delta":{"content":"h\\u00e9 \\"q\\""}}]}\n\n',
              b"data: caf\xc3\xa9 \xff\xfe\n\n", b"data: [DONE]\n\n"]
    line = assert_same(base_ctx(stream=True, chunks=chunks, response_body=None,
                                first_token_at=1234.6, last_token_at=1234.7))
    assert line is not None
    assert decode(line).chunks == [b"".join(chunks).decode("utf-8", "replace").encode()]


def test_what_it_does_not_write_is_left_to_python() -> None:
    for value in (b"bytes", 2**64, {1: "int key"}, [object()], float("nan")):
        c = base_ctx(error=value) if not isinstance(value, float) else base_ctx(usage={"x": value})
        line = c_line(c)
        if isinstance(value, float):  # nan: null, as orjson writes it
            assert line is not None and decode(line).usage == {"x": None}
        else:
            assert line is None, value
    assert c_line(base_ctx(error="\ud800 lone surrogate")) is None
    assert c_line(base_ctx(finished_at=7)) is None  # a mark that is not a float
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    assert c_line(base_ctx(usage={"deep": deep})) is None


def test_lines_checks_the_layout_it_reads() -> None:
    with pytest.raises(AttributeError):
        spool_module._CLines(4, RequestContext, ("no_such_field",), (), Span, Claim)
    with pytest.raises(TypeError):  # stages() is a method, not a slot
        spool_module._CLines(4, RequestContext, ("stages",), (), Span, Claim)


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text | st.floats(
    allow_nan=False, allow_infinity=False)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    text, inner, max_size=4), max_leaves=12)
times = st.none() | st.floats(min_value=0.0, max_value=3600.0)


@settings(max_examples=int(os.environ.get("SPOOLC_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(received=st.floats(min_value=0.0, max_value=5e6), strings=st.lists(text, min_size=6,
       max_size=6), marks=st.lists(times, min_size=len(_TIMES), max_size=len(_TIMES)),
       usage=st.none() | st.dictionaries(text, values, max_size=4), guards=st.none() | st.lists(
       st.dictionaries(text, values, max_size=3), max_size=3), status=st.integers(0, 599),
       queued=st.floats(min_value=0.0, max_value=100.0), attrs=st.dictionaries(
       text, values, max_size=3), tenant=text, priority=st.integers(0, 9))
def test_any_context_decodes_the_same_from_either_encoder(
    received: float, strings: list[str], marks: list[float | None], usage: Any, guards: Any,
    status: int, queued: float, attrs: dict[str, Any], tenant: str, priority: int,
) -> None:
    c = base_ctx(model=strings[0], backend=strings[1], error=strings[2] or None,
                 user=strings[3], session=strings[4], key_id=strings[5], usage=usage,
                 guards=guards, status=status, queued_s=queued,
                 claim=Claim(priority=priority, tenant=tenant))
    c.received_at = received
    for name, mark in zip(_TIMES, marks, strict=True):
        setattr(c, name, None if mark is None else received + mark)
    c.spans = [Span(strings[0], received + 0.001, received + 0.002, attrs)]
    c.body = {"messages": [{"role": "user", "content": strings[2]}]}
    c.raw_body = orjson.dumps(c.body)
    assert assert_same(c) is not None


def test_spool_observe_is_the_c_one_and_falls_back_line_by_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path, chunk_lines=4)
    assert "Lines" in repr(spool.observe)
    for i in range(9):
        spool.observe(base_ctx(request_id=f"c{i}"))
    spool.observe(base_ctx(request_id="py", error=b"bytes"))  # left to Python
    spool.observe(RequestContext("h", "/health/ready", 1.0))
    spool.observe(RequestContext("a", "/api/traces", 1.0))
    written = [x for f in spool.dir.glob("*.open") for x in f.read_bytes().splitlines()]
    assert len(written) == 8  # on_full at 4 lines, twice: written to the spool file
    assert spool.flush() == 10
    lines = [x for f in sorted(spool.dir.glob("*.jsonl")) for x in f.read_bytes().splitlines()]
    assert sorted(decode(x).request_id for x in lines) == sorted([*(f"c{i}" for i in range(9)),
                                                                  "py"])
    assert sorted(orjson.loads(x)[0] for x in lines) == [3] + [4] * 9


def test_a_spool_and_its_c_lines_are_collected(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ref = weakref.ref(spool)
    del spool
    gc.collect()
    assert ref() is None, "the Spool <-> Lines cycle is collectable"


def test_a_deleted_field_is_left_to_python() -> None:
    for name in ("model", "spans", "body", "chunks", "claim", "endpoint"):
        c = base_ctx()
        delattr(c, name)
        lines = c_lines()
        assert lines is not None and lines.add(c) == 0 and lines.nbytes == 0, name
