"""The rollups' log histograms: percentiles within 2 % of percentile_cont, merging."""

from __future__ import annotations

import random

import pytest

from bastion.store import histogram
from bastion.store.stats import percentile


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_are_within_two_percent_of_the_exact_ones(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(rng.uniform(0, 8), rng.uniform(0.1, 2.0))
              for _ in range(rng.randint(1, 5000))]
    hist = histogram.of(values)
    ordered = sorted(values)
    for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
        exact = percentile(ordered, q)
        assert exact is not None
        got = histogram.percentile(hist, q)
        assert got == pytest.approx(exact, rel=0.021), q


def test_merged_histograms_are_the_histogram_of_all_values() -> None:
    rng = random.Random(3)
    a = [rng.expovariate(0.01) for _ in range(700)]
    b = [rng.expovariate(0.001) for _ in range(300)]
    merged = histogram.of(a)
    histogram.merge(merged, histogram.of(b))
    assert merged == histogram.of(a + b)
    assert histogram.loads(histogram.dumps(merged)) == merged


def test_zero_tiny_and_empty() -> None:
    assert histogram.percentile({}, 0.5) is None
    assert histogram.dumps({}) is None and histogram.loads(None) == {}
    hist = histogram.of([0.0, 0.0, 0.0, 0.0005, 250.0])
    assert histogram.percentile(hist, 0.5) == 0.0
    assert histogram.percentile(hist, 1.0) == pytest.approx(250.0, rel=0.021)
    assert histogram.bin_of(1.0) == 0
    assert histogram.bin_of(histogram.RATIO * 1.0000001) == 1
