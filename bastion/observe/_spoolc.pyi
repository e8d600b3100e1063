"""Types of the trace spool's C encoder (_spoolc.c)."""

from collections.abc import Callable, Sequence
from typing import Any

class Lines:
    def __init__(
        self,
        version: int,
        ctx_type: type,
        fields: Sequence[str],
        times: Sequence[str],
        span_type: type,
        claim_type: type,
        *,
        prefix: str = "",
        skip: str = "",
        python: Callable[[Any], object] | None = None,
        on_full: Callable[[], object] | None = None,
        full: int = 64,
        bodies: bool = True,
        omit: Sequence[str] | None = None,
    ) -> None: ...
    def add(self, ctx: Any) -> int: ...
    def observe(self, ctx: Any) -> None: ...
    def take(self) -> bytes: ...
    def __len__(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
