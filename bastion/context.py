"""Per-request state carried through the pipeline and handed to observers at the end.

Once ``finish`` has run, nothing mutates the context any more: observers may keep it (the
trace writer hands it to a background thread, which turns it into a trace record there,
off the request path)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.governance.budgets import Hold
from bastion.governance.keys import MASTER, Principal
from bastion.governance.limits import Ticket
from bastion.routing.fairqueue import DEFAULT_CLAIM, Claim

if TYPE_CHECKING:
    from bastion.governance._limitsc import Grant


@dataclass(slots=True)
class Span:
    """One timed stage of a request (perf_counter seconds); ``attrs`` say what it did."""

    name: str  # e.g. "admission", "queue", "backend"
    start: float
    end: float
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestContext:
    request_id: str
    endpoint: str
    received_at: float  # time.perf_counter() when the request was parsed
    # stage marks (perf_counter): three float stores instead of three Span objects; the
    # trace builder turns them into the auth, admission and parse spans (stages())
    authenticated_at: float | None = None
    admitted_at: float | None = None
    parsed_at: float | None = None  # the body is decoded and validated
    record_id: str = ""  # the trace's id when request_id is the client's (else request_id)
    model: str | None = None
    backend: str | None = None
    fallback: bool = False  # served by a fallback alias
    stream: bool = False
    status: int = 200
    attempts: int = 0  # backend calls made (retries and failovers included)
    deadline: float | None = None  # time.monotonic() by which the request must be answered
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # the request's
    claim: Claim = DEFAULT_CLAIM  # priority and tenant, for queues (the admission stage)
    queued_s: float = 0.0  # time spent waiting in the router's queue
    error: str | None = None
    usage: dict[str, Any] | None = None
    backend_started_at: float | None = None
    backend_headers_at: float | None = None  # response headers (or first result) arrived
    backend_done_at: float | None = None  # a non-streamed result is complete
    first_token_at: float | None = None
    last_token_at: float | None = None  # a stream's last content event
    finished_at: float | None = None
    wall_time: float = field(default_factory=time.time)
    operation: str | None = None  # GenAI operation: chat, text_completion, embeddings
    provider: str | None = None  # the serving deployment's backend kind
    body: dict[str, Any] | None = None  # the validated request (not mutated downstream)
    raw_body: bytes | None = None  # the request body as received
    response_body: bytes | None = None  # a non-streamed response, as sent
    chunks: list[bytes] | None = None  # a stream's events, as sent (when content is kept)
    stream_events: int = 0  # content events sent on a stream
    spans: list[Span] = field(default_factory=list)  # stages and backend attempts
    principal: Principal = MASTER  # who is asking (a virtual key's, or the master key)
    limit: Ticket | Grant | None = None  # what the key's rate limits reserved for this request
    budget: Hold | None = None  # what its budgets reserved (bastion.gateway.spend)
    key_id: str | None = None  # the principal's key and team, as traced
    team: str | None = None
    user: str | None = None  # the request's ``user`` field
    session: str | None = None  # x-bastion-session or metadata.session_id
    traceparent: str | None = None  # W3C trace context to propagate upstream
    trace_id: str | None = None  # OpenTelemetry ids of this request's span (hex)
    span_id: str | None = None
    # guards (bastion.guards.stage): the policy applied, its decisions (as dicts) and the
    # strongest action, the body sent upstream when they changed it, the session whose
    # pseudonyms the answer gets back, and per-request values (canary, json schema...)
    guard_policy: str | None = None
    guards: list[dict[str, Any]] | None = None
    guard_action: str | None = None
    guarded_body: dict[str, Any] | None = None
    guard_session: str | None = None
    guard_values: dict[str, Any] | None = None

    def stages(self) -> list[Span]:
        """Every stage as a span: auth, admission and parse from their marks, then the
        recorded ones (queue, each backend attempt, guards...), in time order."""
        out: list[Span] = []
        previous = self.received_at
        for name, mark in (("auth", self.authenticated_at), ("admission", self.admitted_at),
                           ("parse", self.parsed_at)):
            if mark is not None:
                out.append(Span(name, previous, mark))
                previous = mark
        out.extend(self.spans)
        out.sort(key=lambda s: s.start)
        return out

    @property
    def trace_key(self) -> str:
        """The id the trace is stored under (unique, ours)."""
        return self.record_id or self.request_id

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def overhead(self, now: float) -> float:
        """The gateway's own time so far: elapsed time less the time spent waiting on the
        backend. The one definition behind the ``x-bastion-overhead-ms`` header, the
        ``bastion_gateway_overhead_seconds`` metric and the trace's ``overhead_ms``.

        The wait runs from the backend call until its complete result; for a stream, until
        its last event was relayed (generation is the backend's time, not ours), or until
        its headers while no event has been relayed yet (the header is written then)."""
        elapsed = now - self.received_at
        started = self.backend_started_at
        if started is None:
            return elapsed
        if self.stream:
            waited_until = self.last_token_at or self.backend_headers_at
        else:
            waited_until = self.backend_done_at
        return max(0.0, elapsed - ((waited_until or now) - started))
