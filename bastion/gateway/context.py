"""Per-request state carried through the pipeline and handed to observers at the end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RequestContext:
    request_id: str
    endpoint: str
    received_at: float  # time.perf_counter() when the request was parsed
    model: str | None = None
    backend: str | None = None
    stream: bool = False
    status: int = 200
    error: str | None = None
    usage: dict[str, Any] | None = None
    backend_started_at: float | None = None
    backend_headers_at: float | None = None  # response headers (or first result) arrived
    first_token_at: float | None = None
    finished_at: float | None = None
    wall_time: float = field(default_factory=time.time)

    def backend_wait(self) -> float:
        """Seconds spent waiting on the backend before it answered (0 if not called)."""
        if self.backend_started_at is None or self.backend_headers_at is None:
            return 0.0
        return self.backend_headers_at - self.backend_started_at
