#!/usr/bin/env python3
"""Cost of the metrics observer per request (µs), against prometheus_client doing the same.

Feeds ``Metrics.observe`` finished request contexts (a non-streamed chat with usage, a
stream, an error) in a tight loop, then does the same counting with prometheus_client
Counters and Histograms (single process, no multiprocess mmap files), for comparison.

    .venv/bin/python bench/metrics_observer.py [--n 200000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from bastion.config import load_settings
from bastion.context import RequestContext
from bastion.observe import metrics as m


def contexts() -> list[RequestContext]:
    t = time.perf_counter()
    plain = RequestContext("a", "/v1/chat/completions", t, model="chat", backend="gpu-a",
                           attempts=1, operation="chat", provider="openai")
    plain.backend_started_at, plain.backend_done_at, plain.finished_at = t + 1e-4, t + 0.3, t + 0.3
    plain.usage = {"prompt_tokens": 42, "completion_tokens": 128, "total_tokens": 170}
    stream = RequestContext("b", "/v1/chat/completions", t, model="chat", backend="gpu-b",
                            stream=True, attempts=2, operation="chat", provider="openai")
    stream.backend_started_at, stream.backend_headers_at = t + 1e-4, t + 0.05
    stream.first_token_at, stream.last_token_at, stream.finished_at = t + 0.06, t + 1.2, t + 1.2
    stream.usage = {"prompt_tokens": 12, "completion_tokens": 64,
                    "prompt_tokens_details": {"cached_tokens": 8}}
    error = RequestContext("c", "/v1/chat/completions", t, model="chat", status=502,
                           error="upstream failed", attempts=3)
    error.finished_at = t + 0.02
    return [plain, stream, error]


def bench_ours(n: int, only: int | None = None, fast: bool = True) -> float:
    """``fast``: the C observer (bastion/observe/_rowsc.c) where built, else Python's."""
    metrics = m.Metrics(load_settings(env={}, overrides={"models": [
        {"name": "gpu-a", "backend": "openai", "base_url": "http://127.0.0.1:1/v1"}]}),
        fast=fast)
    ctxs = contexts() if only is None else [contexts()[only]] * 3
    observe = metrics.observe
    start = time.perf_counter()
    for i in range(n):
        observe(ctxs[i % 3])
    return (time.perf_counter() - start) / n * 1e6


def bench_prometheus_client(n: int) -> float:
    reg = CollectorRegistry()
    genai = ["gen_ai_operation_name", "gen_ai_request_model", "gen_ai_provider_name"]
    requests = Counter("r", "", ["model", "deployment", "status"], registry=reg)
    tokens = Counter("t", "", ["model", "type"], registry=reg)
    errors = Counter("e", "", ["model", "error_type"], registry=reg)
    retries = Counter("rt", "", ["model"], registry=reg)
    duration = Histogram("d", "", [*genai, "deployment", "error_type"],
                         buckets=m.DURATION_BUCKETS, registry=reg)
    usage = Histogram("u", "", [*genai, "gen_ai_token_type"], buckets=m.TOKEN_BUCKETS,
                      registry=reg)
    overhead = Histogram("o", "", ["gen_ai_operation_name"], buckets=m.OVERHEAD_BUCKETS,
                         registry=reg)
    ttft = Histogram("f", "", [*genai, "deployment"], buckets=m.TTFT_BUCKETS, registry=reg)
    ctxs = contexts()

    def observe(ctx: Any) -> None:
        model, dep = ctx.model or "", ctx.backend or ""
        op, prov = ctx.operation or "chat", ctx.provider or ""
        err = str(ctx.status) if ctx.status >= 400 else ""
        requests.labels(model, dep, str(ctx.status)).inc()
        duration.labels(op, model, prov, dep, err).observe(ctx.finished_at - ctx.received_at)
        overhead.labels(op).observe(ctx.overhead(ctx.finished_at))
        if err:
            errors.labels(model, err).inc()
        if ctx.attempts > 1:
            retries.labels(model).inc(ctx.attempts - 1)
        if ctx.usage:
            usage.labels(op, model, prov, "input").observe(ctx.usage["prompt_tokens"])
            usage.labels(op, model, prov, "output").observe(ctx.usage["completion_tokens"])
            tokens.labels(model, "input").inc(ctx.usage["prompt_tokens"])
            tokens.labels(model, "output").inc(ctx.usage["completion_tokens"])
        if ctx.stream and ctx.first_token_at:
            ttft.labels(op, model, prov, dep).observe(ctx.first_token_at - ctx.received_at)

    start = time.perf_counter()
    for i in range(n):
        observe(ctxs[i % 3])
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    rounds = 5  # best of: the least disturbed by the rest of the machine
    ours = min(bench_ours(args.n) for _ in range(rounds))
    kinds = [min(bench_ours(args.n // 2, k) for _ in range(rounds)) for k in range(3)]
    python = min(bench_ours(args.n, fast=False) for _ in range(rounds))
    theirs = min(bench_prometheus_client(args.n) for _ in range(rounds))
    which = "C" if m._CRows is not None else "Python (C not built)"
    print(f"Metrics.observe ({which}), mix of 3: {ours:.2f} us/request")
    print("  non-stream / stream / error:  " + " / ".join(f"{k:.2f}" for k in kinds))
    print(f"Metrics.observe in Python, mix of 3: {python:.2f} us/request "
          f"({python / ours:.1f}x the C one)")
    print(f"prometheus_client (same work): {theirs:.2f} us/request")


if __name__ == "__main__":
    main()
