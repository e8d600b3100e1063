"""The metric families Gateway metrics expose, and the layout of the request rows they are
projected from (:mod:`bastion.observe.metrics` fills the rows; its C observer, ``_rowsc.c``,
uses the same slots)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# OpenTelemetry GenAI semantic conventions' advised boundaries
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                    20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0)

_OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
}
_ERROR_TYPES = {
    400: "invalid_request", 401: "authentication", 402: "budget_exceeded",
    403: "permission_denied",
    404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
    415: "unsupported_media_type", 429: "rate_limited", 499: "client_disconnected",
    500: "internal", 502: "upstream_error", 503: "overloaded", 504: "timeout",
}
_STATUS = {code: str(code) for code in (200, *_ERROR_TYPES)}
_BREAKER = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

Merge = Literal["add", "sum", "max", "min"]
Labels = tuple[str, ...]

# The request table. The observer adds each request to one row, keyed by
# (operation, model, provider, deployment, status, error type); every request family
# below is a projection of these rows, computed at scrape time, off the hot path.
OP, MODEL, PROVIDER, DEPLOYMENT, STATUS, ERROR = range(6)
_REQUESTS, _RETRIES, _COST, _CACHED = range(4)  # counters' slots in a row
_DUR = 4  # then one section per histogram: a count per bucket (+Inf last), then the sum
_OVH = _DUR + len(DURATION_BUCKETS) + 2
_TIN = _OVH + len(OVERHEAD_BUCKETS) + 2
_TOUT = _TIN + len(TOKEN_BUCKETS) + 2
_TTFT = _TOUT + len(TOKEN_BUCKETS) + 2
_TPOT = _TTFT + len(TTFT_BUCKETS) + 2
ROW_SIZE = _TPOT + len(TPOT_BUCKETS) + 2
_DUR_SUM, _OVH_SUM = _OVH - 1, _TIN - 1
_TIN_SUM, _TOUT_SUM, _TTFT_SUM, _TPOT_SUM = _TOUT - 1, _TTFT - 1, _TPOT - 1, ROW_SIZE - 1


@dataclass(frozen=True, slots=True)
class FromRows:
    """A family computed from the request rows: ``labels`` are positions in the row key;
    each part reads the row at ``offset`` (a histogram section or one counter slot) and
    adds ``extra`` label values. Series that stay at zero are left out."""

    labels: tuple[int, ...]
    parts: tuple[tuple[int, Labels], ...]
    errors_only: bool = False


@dataclass(frozen=True, slots=True)
class Family:
    """One metric. ``merge``: ``add`` keeps it across workers' deaths (counters and
    histograms); ``sum``/``max``/``min`` combine the live workers' values (gauges)."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: Labels = ()
    buckets: tuple[float, ...] = ()
    merge: Merge = "add"
    rows: FromRows | None = None


_GENAI = ("gen_ai_operation_name", "gen_ai_request_model", "gen_ai_provider_name")
_G = (OP, MODEL, PROVIDER)

FAMILIES: tuple[Family, ...] = (
    Family("gen_ai_client_operation_duration_seconds", "histogram",
           "GenAI operation duration, as the gateway served it",
           (*_GENAI, "deployment", "error_type"), DURATION_BUCKETS,
           rows=FromRows((*_G, DEPLOYMENT, ERROR), ((_DUR, ()),))),
    Family("gen_ai_client_token_usage", "histogram",
           "Number of input and output tokens used, per request",
           (*_GENAI, "gen_ai_token_type"), TOKEN_BUCKETS,
           rows=FromRows(_G, ((_TIN, ("input",)), (_TOUT, ("output",))))),
    Family("gen_ai_server_time_to_first_token_seconds", "histogram",
           "Time to the first token of successful streamed responses",
           (*_GENAI, "deployment"), TTFT_BUCKETS,
           rows=FromRows((*_G, DEPLOYMENT), ((_TTFT, ()),))),
    Family("gen_ai_server_time_per_output_token_seconds", "histogram",
           "Time per output token after the first, of successful streamed responses",
           (*_GENAI, "deployment"), TPOT_BUCKETS,
           rows=FromRows((*_G, DEPLOYMENT), ((_TPOT, ()),))),
    Family("bastion_gateway_overhead_seconds", "histogram",
           "The gateway's own time per request: its whole time less the wait for the "
           "backend, a stream's generation counting as waiting (a trace's overhead_ms; "
           "x-bastion-overhead-ms is the same, so far)",
           ("gen_ai_operation_name",), OVERHEAD_BUCKETS, rows=FromRows((OP,), ((_OVH, ()),))),
    Family("bastion_requests_total", "counter", "Requests answered",
           ("model", "deployment", "status"),
           rows=FromRows((MODEL, DEPLOYMENT, STATUS), ((_REQUESTS, ()),))),
    Family("bastion_tokens_total", "counter", "Tokens used", ("model", "type"),
           rows=FromRows((MODEL,), ((_TIN_SUM, ("input",)), (_TOUT_SUM, ("output",))))),
    Family("bastion_cached_tokens_total", "counter",
           "Input tokens served from the provider's prompt cache (part of type=input)",
           ("model",), rows=FromRows((MODEL,), ((_CACHED, ()),))),
    Family("bastion_cost_usd_total", "counter", "Cost of the requests in US dollars",
           ("model",), rows=FromRows((MODEL,), ((_COST, ()),))),
    Family("bastion_errors_total", "counter", "Requests that ended in an error",
           ("model", "error_type"),
           rows=FromRows((MODEL, ERROR), ((_REQUESTS, ()),), errors_only=True)),
    Family("bastion_retries_total", "counter",
           "Backend calls beyond the first (retries and failovers)", ("model",),
           rows=FromRows((MODEL,), ((_RETRIES, ()),))),
    Family("bastion_guard_decisions_total", "counter", "Guard scanner decisions",
           ("scanner", "action")),
    Family("bastion_guard_errors_total", "counter",
           "Guard scanners that failed (raised) on a text, by what the rule then did: closed "
           "(503 guard_error, the answer withheld) or open (allowed, flagged)",
           ("scanner", "fails")),
    Family("bastion_cache_requests_total", "counter", "Response cache lookups", ("result",)),
    Family("bastion_budget_events_total", "counter",
           "Budgets that reached their soft limit (soft) or their limit (exceeded), once "
           "a period each", ("scope", "event")),
    Family("bastion_limit_backend_errors_total", "counter",
           "Rate-limit decisions made without Redis (limits.redis_url did not answer), by "
           "what limits.fail did: open (this process's in-memory limits) or closed (503)",
           ("mode",)),
    Family("bastion_budget_backend_errors_total", "counter",
           "Budget decisions made without Redis (budgets.redis_url did not answer), by what "
           "budgets.fail did: open (this process's in-memory ledger) or closed (503); lost: "
           "requests whose cost never reached Redis (every try of their settlement failed)",
           ("mode",)),
    Family("bastion_auth_failures_total", "counter",
           "Requests refused with 401 (counted here, not traced): missing, malformed or "
           "invalid key", ("reason",)),
    Family("bastion_tls_reloads_total", "counter",
           "server.tls certificate reloads after its files changed: ok, or failed (the old "
           "certificate kept serving)", ("result",)),
    Family("bastion_traces_dropped_total", "counter",
           "Traces dropped because the spool files could not be written and its memory "
           "bound (tracing.spool_memory_mb) was reached"),
    Family("bastion_queue_depth", "gauge", "Requests waiting in a model's queue",
           ("model",), merge="sum"),
    Family("bastion_deployment_in_flight", "gauge", "Requests in flight to a deployment",
           ("deployment",), merge="sum"),
    Family("bastion_deployment_breaker_state", "gauge",
           "Circuit breaker: 0 closed, 1 half-open, 2 open (the worst over the workers)",
           ("deployment",), merge="max"),
    Family("bastion_deployment_ready", "gauge",
           "1 when the deployment's backend is ready in every worker", ("deployment",),
           merge="min"),
    Family("bastion_workers", "gauge", "Live worker processes", merge="sum"),
    Family("bastion_cpu_seconds_total", "counter",
           "CPU time of every worker, restarted ones included"),
    Family("bastion_resident_memory_bytes", "gauge", "Resident memory of the live workers",
           merge="sum"),
    Family("bastion_open_fds", "gauge", "Open file descriptors of the live workers",
           merge="sum"),
    Family("bastion_process_cpu_seconds_total", "counter", "CPU time of a live worker",
           ("worker",), merge="sum"),
    Family("bastion_process_resident_memory_bytes", "gauge", "Resident memory of a worker",
           ("worker",), merge="sum"),
    Family("bastion_process_open_fds", "gauge", "Open file descriptors of a worker",
           ("worker",), merge="sum"),
    Family("bastion_gpu_utilization_ratio", "gauge", "GPU utilisation (NVML)",
           ("gpu", "name"), merge="max"),
    Family("bastion_gpu_memory_used_bytes", "gauge", "GPU memory in use (NVML)",
           ("gpu", "name"), merge="max"),
    Family("bastion_gpu_memory_total_bytes", "gauge", "GPU memory (NVML)", ("gpu", "name"),
           merge="max"),
)
_BY_NAME = {f.name: f for f in FAMILIES}
