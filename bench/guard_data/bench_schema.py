"""json_schema latency (CPU time of this thread) on valid and invalid answers of about 200,
2,000 and 8,000 characters, against a request's response_format schema:

    python bench/guard_data/bench_schema.py
"""

from __future__ import annotations

import json
import random
import statistics
import time
from typing import Any

from bastion.guards.base import ScanContext
from bastion.guards.output.schema import make_scanner

SCHEMA = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": {
            "type": "object",
            "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                           "qty": {"type": "integer", "minimum": 1},
                           "note": {"type": "string"}},
            "required": ["sku", "qty"], "additionalProperties": False}},
        "currency": {"enum": ["EUR", "USD"]},
    },
    "required": ["items", "currency"],
}
R = random.Random(1)


def answer(size: int, invalid: bool) -> str:
    items: list[dict[str, Any]] = []
    while len(json.dumps({"items": items, "currency": "EUR"})) < size:
        items.append({"sku": f"ABC-{R.randint(1000, 9999)}", "qty": R.randint(1, 9),
                      "note": "x" * R.randint(5, 40)})
    if invalid:
        items[-1]["qty"] = 0  # the last item: the validator reads everything before it
    return json.dumps({"items": items, "currency": "EUR"})


def main() -> None:
    ctx = ScanContext(stage="output", values={
        "json_schema": {"name": "order", "strict": True, "schema": SCHEMA}})
    scanner = make_scanner({})
    for size in (200, 2000, 8000):
        for invalid in (False, True):
            texts = [answer(size, invalid) for _ in range(20)]
            scanner.scan(texts[0], ctx)  # compile and cache the validator
            cpu = []
            for _ in range(10):
                for text in texts:
                    c0 = time.thread_time()
                    findings = scanner.scan(text, ctx)
                    cpu.append((time.thread_time() - c0) * 1000)
                    assert bool(findings) == invalid
            cpu.sort()
            p95 = cpu[int(0.95 * (len(cpu) - 1))]
            print(f"{size:>5} {'invalid' if invalid else 'valid':>7}  "
                  f"cpu p50 {statistics.median(cpu):.3f} ms  p95 {p95:.3f} ms")


if __name__ == "__main__":
    main()
