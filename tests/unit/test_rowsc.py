"""The metrics observer in C (bastion/observe/_rowsc.c) against Python's
(Metrics.observe): for any finished request both leave the request table exactly alike;
what the C one cannot read goes whole to Python's, counted once."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.config import Settings, load_settings
from bastion.context import RequestContext
from bastion.observe import families
from bastion.observe import metrics as m

pytestmark = pytest.mark.skipif(
    m._CRows is None and os.environ.get("CI") != "true",
    reason="the C observer is not built (pip install -e . builds it)",
)


def test_the_c_observer_is_built_where_the_suite_runs_in_ci() -> None:
    assert m._CRows is not None, "setup.py's extension did not build"


def make_settings() -> Settings:
    models = [
        {"name": "gpu-a", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
         "alias": "chat", "pricing": {"input": 0.5, "output": 1.5, "cached": 0.25}},
        {"name": "gpu-b", "backend": "vllm", "base_url": "http://127.0.0.1:9/v1",
         "alias": "chat"},
    ]
    return load_settings(env={}, overrides={"models": models})


SETTINGS = make_settings()


def pair() -> tuple[m.Metrics, m.Metrics]:
    c, python = m.Metrics(SETTINGS), m.Metrics(SETTINGS, fast=False)
    assert "Rows" in repr(c.observe) and "Rows" not in repr(python.observe)
    return c, python


def assert_same_rows(c: m.Metrics, python: m.Metrics) -> None:
    assert c.state.rows.keys() == python.state.rows.keys()
    for key, row in python.state.rows.items():
        ours = c.state.rows[key]
        assert all(type(v) is float for v in ours), key
        assert ours == row, key  # the same updates in the same order: equal floats


times = st.none() | st.floats(min_value=0.0, max_value=30.0)
tokens = st.none() | st.integers(0, 10**7) | st.just("12") | st.just(True)


@settings(max_examples=int(os.environ.get("ROWSC_EXAMPLES", "400")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(st.fixed_dictionaries({
        "endpoint": st.sampled_from(["/v1/chat/completions", "/v1/completions",
                                     "/v1/embeddings", "/v1/models", "/health/ready"]),
        "operation": st.none() | st.sampled_from(["", "chat", "embeddings"]),
        "backend": st.none() | st.sampled_from(["", "gpu-a", "gpu-b", "gone"]),
        "model": st.none() | st.sampled_from(["", "chat", "other"]),
        "provider": st.none() | st.sampled_from(["", "ollama"]),
        "status": st.sampled_from([200, 400, 429, 499, 502, 503, 418, 299]),
        "error": st.none() | st.just("boom"),
        "stream": st.booleans(),
        "attempts": st.integers(0, 5),
        "received": st.floats(min_value=1.0, max_value=1e6),
        "finished": st.floats(min_value=0.0, max_value=100.0),
        "started": times, "headers": times, "done": times, "first": times, "last": times,
        "prompt": tokens, "completion": tokens, "cached": tokens,
        "usage": st.sampled_from(["dict", "empty", "none"]),
    }), min_size=1, max_size=8),
)
def test_any_requests_leave_the_same_table(requests: list[dict[str, Any]]) -> None:
    c, python = pair()
    for r in requests:
        base = r["received"]
        ctx = RequestContext("r", r["endpoint"], base, operation=r["operation"],
                             backend=r["backend"], model=r["model"], provider=r["provider"],
                             status=r["status"], error=r["error"], stream=r["stream"],
                             attempts=r["attempts"])
        ctx.finished_at = base + r["finished"]  # never 0.0: Python would read the clock
        for name, key in (("backend_started_at", "started"), ("backend_headers_at", "headers"),
                          ("backend_done_at", "done"), ("first_token_at", "first"),
                          ("last_token_at", "last")):
            setattr(ctx, name, None if r[key] is None else base + r[key])
        if r["usage"] == "dict":
            usage: dict[str, Any] = {"prompt_tokens": r["prompt"],
                                     "completion_tokens": r["completion"]}
            if r["cached"] is not None:
                usage["prompt_tokens_details"] = {"cached_tokens": r["cached"]}
            ctx.usage = usage
        elif r["usage"] == "empty":
            ctx.usage = {}
        c.observe(ctx)
        python.observe(ctx)
    assert_same_rows(c, python)


def test_what_it_cannot_read_goes_whole_to_python() -> None:
    c, python = pair()
    odd = RequestContext("r", "/v1/chat/completions", 10.0, model="chat", backend="gpu-a")
    odd.finished_at = None  # Python reads the clock
    c.observe(odd)
    weird = RequestContext("r", "/v1/chat/completions", 10.0, model="chat", backend="gpu-a")
    weird.finished_at, weird.attempts = 10.5, 2**70  # beyond 64 bits
    c.observe(weird)
    python.observe(weird)
    (row,) = [r for k, r in c.state.rows.items()]
    assert row[m._REQUESTS] == 2.0, "each counted once"
    assert sum(row[m._DUR:m._DUR + len(m.DURATION_BUCKETS) + 1]) == 2.0


def test_a_reload_gives_the_c_observer_new_prices_and_providers() -> None:
    class View:  # what Metrics reads of the gateway: its router and its settings
        router = type("Router", (), {"routes": {}})()
        settings = SETTINGS

    view = View()
    metrics = m.Metrics(SETTINGS, view)  # type: ignore[arg-type]
    models = [{"name": "gpu-c", "backend": "tgi", "base_url": "http://127.0.0.1:9/v1",
               "alias": "chat", "pricing": {"input": 2.0, "output": 4.0}}]
    view.settings = load_settings(env={}, overrides={"models": models})
    metrics.sample()  # a reload: new deployments, new prices
    ctx = RequestContext("r", "/v1/chat/completions", 1.0, model="chat", backend="gpu-c")
    ctx.finished_at, ctx.usage = 1.5, {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    metrics.observe(ctx)
    (key,) = metrics.state.rows
    assert key[families.PROVIDER] == "tgi"
    assert metrics.state.rows[key][m._COST] == 2.0


def test_a_deleted_field_goes_to_python_not_a_crash() -> None:
    c, python = pair()
    for metrics in (c, python):
        ctx = RequestContext("r", "/v1/chat/completions", 1.0, model="chat", backend="gpu-a")
        ctx.finished_at = 1.5
        del ctx.usage
        with pytest.raises(AttributeError):
            metrics.observe(ctx)
    assert_same_rows(c, python)  # whatever Python's observer did, the C one did not add
