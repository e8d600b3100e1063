"""The gateway-overhead figure excludes time spent waiting on the backend."""

from __future__ import annotations

import pytest

from bastion.context import RequestContext


def test_overhead_without_backend_is_all_elapsed_time() -> None:
    ctx = RequestContext("r", "/v1/models", received_at=10.0)
    assert ctx.overhead(10.25) == pytest.approx(0.25)


def test_overhead_excludes_a_complete_non_streamed_backend_call() -> None:
    ctx = RequestContext("r", "/v1/chat/completions", received_at=10.0)
    ctx.backend_started_at = 10.001
    ctx.first_token_at = 10.5  # first token long before the end: irrelevant here
    ctx.backend_done_at = 13.0
    assert ctx.overhead(13.002) == pytest.approx(0.003)


def test_stream_overhead_is_measured_up_to_the_backend_headers() -> None:
    ctx = RequestContext("r", "/v1/chat/completions", received_at=10.0, stream=True)
    ctx.backend_started_at = 10.001
    ctx.backend_headers_at = 10.2
    assert ctx.overhead(10.2005) == pytest.approx(0.0015)


def test_backend_still_running_counts_as_backend_time() -> None:
    ctx = RequestContext("r", "/v1/chat/completions", received_at=10.0, stream=True)
    ctx.backend_started_at = 10.002
    assert ctx.overhead(11.0) == pytest.approx(0.002)
