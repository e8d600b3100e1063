"""W3C trace context: parsing ``traceparent`` strictly, new ids, what goes upstream."""

from __future__ import annotations

import re

import pytest

from bastion.context import RequestContext
from bastion.observe.traceparent import (
    TraceParent,
    incoming_parent,
    incoming_tracestate,
    new_ids,
    parse_traceparent,
    start_trace,
    upstream_headers,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"  # the spec's example
OURS = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]")


def context(*headers: tuple[str, str]) -> RequestContext:
    ctx = RequestContext("r1", "/v1/chat/completions", 0.0)
    ctx.headers = [(k.encode(), v.encode()) for k, v in headers]
    return ctx


# ---------------------------------------------------------------------- parsing
def test_the_specs_example_parses() -> None:
    assert parse_traceparent(VALID) == TraceParent(TRACE, PARENT, 1)
    assert parse_traceparent(VALID.encode()) == TraceParent(TRACE, PARENT, 1)
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-00") == TraceParent(TRACE, PARENT, 0)


def test_unknown_flags_are_kept_and_surrounding_whitespace_ignored() -> None:
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-ff") == TraceParent(TRACE, PARENT, 0xFF)
    assert parse_traceparent(f"  {VALID}\t") == TraceParent(TRACE, PARENT, 1)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # version ff is forbidden
        f"00-{TRACE.upper()}-{PARENT}-01",  # uppercase hex
        f"00-{TRACE}-{PARENT.upper()}-01",
        f"00-{TRACE}-{PARENT}-0A",
        f"0A-{TRACE}-{PARENT}-01",
        f"00-{TRACE[:-1]}-{PARENT}-01",  # short trace id
        f"00-{TRACE}0-{PARENT}-01",  # long trace id
        f"00-{TRACE}-{PARENT[:-1]}-01",
        f"00-{TRACE}-{PARENT}-1",
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE}-{PARENT}-01-",
        f"00_{TRACE}_{PARENT}_01",
        f"00-{TRACE}-{PARENT}",
        f"0-{TRACE}-{PARENT}-01",
        f"00-{TRACE[:31]}g-{PARENT}-01",  # not hex
        f"01-{TRACE}-{PARENT}-01extra",  # a later version: more only after a dash
    ],
)
def test_invalid_traceparent_is_ignored(value: str) -> None:
    assert parse_traceparent(value) is None
    ctx = context(("traceparent", value))
    start_trace(ctx, value.encode())
    assert ctx.trace_id != TRACE, "an invalid header starts a new trace"


def test_a_later_version_is_parsed_for_its_first_four_fields() -> None:
    assert parse_traceparent(f"cc-{TRACE}-{PARENT}-01") == TraceParent(TRACE, PARENT, 1)
    assert parse_traceparent(f"01-{TRACE}-{PARENT}-01-what-comes-next") == TraceParent(
        TRACE, PARENT, 1
    )


def test_absent_header_is_none() -> None:
    assert parse_traceparent(None) is None


# ---------------------------------------------------------------------- new traces
def test_new_ids_are_lowercase_hex_nonzero_and_distinct() -> None:
    seen = set()
    for _ in range(1000):
        trace_id, span_id = new_ids()
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != "0" * 32
        assert re.fullmatch(r"[0-9a-f]{16}", span_id) and span_id != "0" * 16
        seen.add(trace_id)
    assert len(seen) == 1000


def test_request_without_traceparent_starts_a_sampled_trace() -> None:
    ctx = context()
    start_trace(ctx, None)
    assert ctx.trace_id and ctx.span_id
    assert ctx.traceparent == f"00-{ctx.trace_id}-{ctx.span_id}-01"
    assert parse_traceparent(ctx.traceparent) == TraceParent(ctx.trace_id, ctx.span_id, 1)
    assert incoming_parent(ctx) is None


def test_request_with_traceparent_joins_the_callers_trace() -> None:
    ctx = context(("traceparent", VALID))
    start_trace(ctx, VALID.encode())
    assert ctx.trace_id == TRACE
    assert ctx.span_id != PARENT, "the request has a span of its own"
    assert ctx.traceparent == f"00-{TRACE}-{ctx.span_id}-01", "our span is the upstream's parent"
    assert incoming_parent(ctx) == TraceParent(TRACE, PARENT, 1)


def test_the_callers_sampling_decision_is_propagated() -> None:
    header = f"00-{TRACE}-{PARENT}-00"
    ctx = context(("traceparent", header))
    start_trace(ctx, header.encode())
    assert ctx.traceparent is not None and ctx.traceparent.endswith("-00")
    for flags, sampled in (("03", "01"), ("02", "00"), ("0b", "01"), ("fe", "00")):
        header = f"00-{TRACE}-{PARENT}-{flags}"
        start_trace(ctx, header.encode())
        assert ctx.traceparent.endswith(f"-{sampled}"), flags


def test_fast_and_general_paths_agree() -> None:
    for value in (VALID, f" {VALID}", f"00-{TRACE}-{PARENT}-00", f"02-{TRACE}-{PARENT}-01-x"):
        ctx = context()
        start_trace(ctx, value.encode())
        parsed = parse_traceparent(value)
        assert parsed is not None and ctx.trace_id == parsed.trace_id


# ---------------------------------------------------------------------- upstream
def test_upstream_headers_carry_traceparent_and_the_callers_tracestate() -> None:
    ctx = context(("traceparent", VALID), ("tracestate", "congo=t61rcWkgMzE"),
                  ("tracestate", "rojo=00f067aa0ba902b7"))
    start_trace(ctx, VALID.encode())
    headers = dict(upstream_headers(ctx))
    assert headers[b"traceparent"] == ctx.traceparent.encode()  # type: ignore[union-attr]
    assert headers[b"tracestate"] == b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def test_tracestate_is_dropped_without_a_valid_traceparent() -> None:
    ctx = context(("traceparent", "00-bad"), ("tracestate", "congo=t61rcWkgMzE"))
    start_trace(ctx, b"00-bad")
    assert incoming_tracestate(ctx) is None
    assert [k for k, _ in upstream_headers(ctx)] == [b"traceparent"]


def test_long_tracestate_is_cut_at_a_member_boundary() -> None:
    members = [f"v{i}=" + "x" * 40 for i in range(20)]  # 20 x 43 chars + commas
    ctx = context(("traceparent", VALID), ("tracestate", ",".join(members)))
    start_trace(ctx, VALID.encode())
    state = incoming_tracestate(ctx)
    assert state is not None and len(state) <= 512
    assert state.split(",") == members[: len(state.split(","))]


def test_no_trace_no_headers() -> None:
    assert upstream_headers(context()) == []
