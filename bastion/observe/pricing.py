"""The price table: what each deployment's requests cost, and which version priced them.

Prices come from the configuration (``models[].pricing``, else ``models[].price`` per 1M
tokens for input and output alike). The table's version is a digest of its contents, so a
trace records exactly which prices produced its cost, and ``bastion traces reprice``
recomputes the cost of stored traces under the current table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from bastion.config import Settings


@dataclass(frozen=True, slots=True)
class Price:
    input: float = 0.0  # USD per 1M tokens
    output: float = 0.0
    cached: float = 0.0
    per_hour: float = 0.0


class PriceBook:
    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices
        canonical = orjson.dumps(
            {name: [p.input, p.output, p.cached, p.per_hour] for name, p in prices.items()},
            option=orjson.OPT_SORT_KEYS,
        )
        self.version = hashlib.sha256(canonical).hexdigest()[:12]

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceBook:
        prices: dict[str, Price] = {}
        for spec in settings.models:
            p = spec.pricing
            if p is not None:
                cached = p.input if p.cached is None else p.cached
                prices[spec.name] = Price(p.input, p.output, cached, p.per_hour)
            elif spec.price:
                prices[spec.name] = Price(spec.price, spec.price, spec.price, 0.0)
        return cls(prices)

    def cost(
        self, deployment: str, input_tokens: int, output_tokens: int, cached_tokens: int,
        seconds: float,
    ) -> float | None:
        """USD for one request; None when the deployment has no price."""
        p = self.prices.get(deployment)
        if p is None:
            return None
        cached = min(cached_tokens, input_tokens)
        usd = (
            (input_tokens - cached) * p.input + cached * p.cached + output_tokens * p.output
        ) / 1_000_000
        usd += seconds * p.per_hour / 3600
        return round(usd, 10)
