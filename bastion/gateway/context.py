"""Per-request state carried through the pipeline and handed to observers at the end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bastion.routing.fairqueue import DEFAULT_CLAIM, Claim


@dataclass(slots=True)
class RequestContext:
    request_id: str
    endpoint: str
    received_at: float  # time.perf_counter() when the request was parsed
    model: str | None = None
    backend: str | None = None
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
    finished_at: float | None = None
    wall_time: float = field(default_factory=time.time)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def overhead(self, now: float) -> float:
        """The gateway's own time so far: elapsed time less the time spent waiting on the
        backend (for a stream, until its headers; otherwise until its complete result)."""
        elapsed = now - self.received_at
        started = self.backend_started_at
        if started is None:
            return elapsed
        waited_until = self.backend_headers_at if self.stream else self.backend_done_at
        return max(0.0, elapsed - ((waited_until or now) - started))
