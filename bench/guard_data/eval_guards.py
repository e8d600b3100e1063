"""Precision, recall, false-positive rate and latency of one scanner on a labelled JSONL set.

    python bench/guard_data/eval_guards.py SCANNER DATA.jsonl [--options JSON]
        [--threshold 0.5] [--latency] [--latency-from all|negatives]

A row is ``{"text", "label": 0/1, ...}``; it counts as flagged when the scanner reports a
finding with score >= threshold. Rows with ``entities`` are also scored by span: an entity
is found when a flagged finding overlaps it. A row may carry ``values`` (put into
ScanContext.values: canary, system_prompt, json_schema) and ``options`` (merged over
``--options`` for that row's scanner, e.g. banned_topics with its own topic list).
``--latency`` times the scanner on 200, 2,000 and 8,000 characters built from the set's
own texts (p50/p95 over repeated runs);
``--latency-from negatives`` builds them from the rows without findings only (ordinary
text, where most requests are; the default mixes in every positive, a worst case).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bastion.guards.base import ScanContext, Scanner
from bastion.guards.builtin import BUILTIN_SCANNERS, _lazy


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def evaluate(name: str, rows: list[dict[str, Any]], options: dict[str, Any],
             threshold: float) -> dict[str, Any]:
    factory = _lazy(BUILTIN_SCANNERS[name])
    scanners: dict[str, Scanner] = {}
    tp = fp = tn = fn = 0
    ent_total = ent_found = 0
    misses: Counter[str] = Counter()
    alarms: Counter[str] = Counter()
    for r in rows:
        row_options = {**options, **r.get("options", {})}
        key = json.dumps(row_options, sort_keys=True)
        if key not in scanners:
            scanners[key] = factory(row_options)
        scanner = scanners[key]
        ctx = ScanContext(stage="output", source="completion", values=dict(r.get("values", {})))
        findings = [f for f in scanner.scan(r["text"], ctx) if f.score >= threshold]
        flagged = bool(findings)
        label = bool(r["label"])
        tp += flagged and label
        fp += flagged and not label
        tn += not flagged and not label
        fn += not flagged and label
        if label and not flagged:
            misses[r.get("shape", "?")] += 1
        if flagged and not label:
            alarms[r.get("shape", "?")] += 1
        for e in r.get("entities", []):
            ent_total += 1
            ent_found += any(f.start < e["end"] and e["start"] < f.end for f in findings)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {
        "rows": len(rows), "positives": tp + fn, "precision": round(precision, 4),
        "recall": round(recall, 4), "fpr": round(fp / (fp + tn) if fp + tn else 0.0, 4),
        "f1": round(2 * precision * recall / (precision + recall) if tp else 0.0, 4),
        "span_recall": round(ent_found / ent_total, 4) if ent_total else None,
        "missed_by_shape": dict(misses.most_common()),
        "false_alarms_by_shape": dict(alarms.most_common()),
    }


def latency(name: str, rows: list[dict[str, Any]], options: dict[str, Any],
            sizes: tuple[int, ...] = (200, 2000, 8000), texts: int = 40,
            repeat: int = 5) -> dict[int, dict[str, float]]:
    scanner = _lazy(BUILTIN_SCANNERS[name])(options)
    rng = random.Random(7)
    values = next((r["values"] for r in rows if r.get("values")), {})
    ctx = ScanContext(stage="output", source="completion", values=dict(values))
    out: dict[int, dict[str, float]] = {}
    for size in sizes:
        inputs = []
        for _ in range(texts):
            parts: list[str] = []
            while sum(len(p) + 1 for p in parts) < size:
                parts.append(rng.choice(rows)["text"])
            inputs.append("\n".join(parts)[:size])
        for text in inputs[:3]:  # warm caches (compiled patterns, validators)
            scanner.scan(text, ctx)
        runs: list[list[float]] = [[] for _ in inputs]
        cpu: list[float] = []
        for _ in range(repeat):
            for i, text in enumerate(inputs):
                c0, t0 = time.thread_time(), time.perf_counter()
                scanner.scan(text, ctx)
                runs[i].append((time.perf_counter() - t0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)
        times = sorted(t for r in runs for t in r)
        cpu.sort()
        # the machine is shared: wall-clock p95 includes other processes' preemption; the
        # CPU time of this thread and the median of each input's runs show the scanner's cost
        medians = sorted(statistics.median(r) for r in runs)
        out[size] = {"p50_ms": round(statistics.median(times), 3),
                     "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3),
                     "p95_of_input_medians_ms": round(medians[int(0.95 * (len(medians) - 1))], 3),
                     "cpu_p50_ms": round(statistics.median(cpu), 3),
                     "cpu_p95_ms": round(cpu[int(0.95 * (len(cpu) - 1))], 3),
                     "max_ms": round(times[-1], 3)}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("scanner", choices=sorted(BUILTIN_SCANNERS))
    p.add_argument("data", type=Path)
    p.add_argument("--options", default="{}")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--latency", action="store_true")
    p.add_argument("--latency-from", choices=["all", "negatives"], default="all")
    args = p.parse_args()
    rows = load(args.data)
    options = json.loads(args.options)
    report: dict[str, Any] = evaluate(args.scanner, rows, options, args.threshold)
    if args.latency:
        pool = [r for r in rows if not r["label"]] if args.latency_from == "negatives" else rows
        # the scanner timed: --options if given, else the first row's own options
        timed = options if options else dict(rows[0].get("options", {}))
        report["latency"] = latency(args.scanner, pool, timed)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
