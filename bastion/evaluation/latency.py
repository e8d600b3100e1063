"""Latency statistics for the guard evaluations: percentiles, per-length buckets, and
inputs of exact lengths built from a dataset's texts (``bastion.evaluation.guards``, the
benches)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LENGTH_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("<=500", 500), ("<=4000", 4000), (">4000", None),
)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    n: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencyStats | None:
        if not seconds:
            return None
        ms = [s * 1000 for s in seconds]
        return cls(len(ms), sum(ms) / len(ms), percentile(ms, 50), percentile(ms, 95),
                   percentile(ms, 99), max(ms))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean_ms": self.mean_ms, "p50_ms": self.p50_ms,
                "p95_ms": self.p95_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms}


def length_bucket(length: int) -> str:
    for name, limit in LENGTH_BUCKETS:
        if limit is None or length <= limit:
            return name
    raise AssertionError("unreachable")


@dataclass(slots=True)
class LatencyReport:
    overall: LatencyStats | None
    by_bucket: dict[str, LatencyStats]
    by_length: dict[int, LatencyStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict() if self.overall else None,
            "by_bucket": {k: v.to_dict() for k, v in self.by_bucket.items()},
            "by_length": {str(k): v.to_dict() for k, v in self.by_length.items()},
        }


def length_inputs(texts: Sequence[str], length: int, samples: int) -> list[str]:
    """``samples`` inputs of exactly ``length`` characters, each the dataset's texts joined
    by newlines from a different starting row (cycling), cut at ``length``."""
    if length <= 0:
        raise ValueError("lengths must be positive")
    pool = [t for t in texts if t]
    if not pool:
        raise ValueError("the dataset has no text to build inputs from")
    count = min(samples, len(pool))
    inputs = []
    for k in range(count):
        i = k * len(pool) // count
        parts: list[str] = []
        size = 0
        while size - 1 < length:  # size counts a newline after each part
            text = pool[i % len(pool)]
            parts.append(text)
            size += len(text) + 1
            i += 1
        inputs.append("\n".join(parts)[:length])
    return inputs
