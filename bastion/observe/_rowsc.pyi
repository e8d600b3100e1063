"""Types of the metrics request table's C observer (_rowsc.c)."""

from collections.abc import Callable, Sequence
from typing import Any

class Rows:
    providers: dict[str, str]
    prices: dict[str, tuple[float, float, float]]
    def __init__(
        self,
        ctx_type: type,
        rows: dict[Any, list[float]],
        operations: dict[str, str],
        error_types: dict[int, str],
        status_names: dict[int, str],
        providers: dict[str, str],
        prices: dict[str, tuple[float, float, float]],
        counters: tuple[int, int, int, int],
        sections: Sequence[tuple[int, Sequence[float]]],
        row_size: int,
        python: Callable[[Any], object],
    ) -> None: ...
    def observe(self, ctx: Any) -> None: ...
