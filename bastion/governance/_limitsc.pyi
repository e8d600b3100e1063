"""Types of the rate limiter's C part (_limitsc.c); limits.py is the reference."""

from typing import Any

Triple = tuple[int | None, int | None, int | None]

class State:
    requests: float
    tokens: float
    stamp: float
    inflight: int
    limits: Triple
    def __init__(self, limits: Triple, now: float) -> None: ...
    def refill(self, limits: Triple, now: float) -> None: ...
    def idle(self) -> bool: ...

class Grant:
    @property
    def tokens(self) -> float: ...
    @property
    def headers(self) -> list[tuple[bytes, bytes]]: ...
    @property
    def held(self) -> tuple[State, ...]: ...
    @property
    def reserved(self) -> tuple[State, ...]: ...
    done: bool
    def settle(self, usage: dict[str, Any] | None) -> None: ...

def admit(table: dict[str, Any], scopes: list[Any], body: dict[str, Any], body_bytes: int,
          now: float, parallel: bool) -> Grant | None: ...
