"""Indirect prompt injection: the real ``injection`` scanner on documents and tool output.

    .venv/bin/python bench/guard_data/gen_indirect.py    # writes the sets (once)
    .venv/bin/python bench/guard_indirect.py             # dev and holdout, three modes
    .venv/bin/python bench/guard_indirect.py --split holdout --errors 20

Three modes, so that the cost of hiding an instruction in a document can be read apart from
the cost of scanning it as a document:

* ``document``: each row scanned with ``ScanContext(source=row["source"])`` (document or
  tool), as the gateway scans retrieved text and tool results;
* ``prompt``: the same documents scanned as if a user had pasted them (``source="prompt"``);
* ``alone``: the inserted instruction (or hard negative) by itself, in prompt mode, from
  ``injection_indirect_{split}_alone.jsonl``.

A row is flagged when its best finding scores >= 0.5 (the policy's threshold). Recall, FPR
and precision are printed overall, per carrier and per insertion position, plus the
scanner's time per document in document mode (mean and p95 over the split, wall clock,
after one warm-up scan). ``bastion guard eval FILE --scanner injection --source document``
gives the same overall numbers for the document mode (rows marked ``tool`` are then read as
documents: the rule set is the same for both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bastion.guards.base import ScanContext, Scanner  # noqa: E402
from bastion.guards.injection import make_scanner  # noqa: E402

DATA = ROOT / "bench" / "guard_data"
THRESHOLD = 0.5
Row = dict[str, object]


def load(path: Path) -> list[Row]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def best(scanner: Scanner, text: str, source: str) -> tuple[float, str]:
    fs = scanner.scan(text, ScanContext(source=source))
    top = max(fs, key=lambda f: f.score, default=None)
    return (top.score, top.detail) if top is not None else (0.0, "-")


def rates(pairs: Iterable[tuple[int, bool]]) -> dict[str, float]:
    """recall, FPR, precision and counts from (label, flagged) pairs."""
    tp = fp = pos = neg = 0
    for label, flagged in pairs:
        if label:
            pos += 1
            tp += flagged
        else:
            neg += 1
            fp += flagged
    return {"recall": tp / pos if pos else float("nan"), "fpr": fp / neg if neg else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan"), "pos": pos, "neg": neg,
            "tp": tp, "fp": fp}


def fmt(m: dict[str, float]) -> str:
    return (f"recall {m['recall']:.3f} ({m['tp']}/{m['pos']})  FPR {m['fpr']:.3f} "
            f"({m['fp']}/{m['neg']})  precision {m['precision']:.3f}")


def run_mode(scanner: Scanner, rows: list[Row], mode: str) -> tuple[list[bool], list[float],
                                                                      list[str]]:
    """Flags, per-row wall time (ms) and the top finding's detail for one mode."""
    flags, times, details = [], [], []
    for r in rows:
        source = str(r["source"]) if mode == "document" else "prompt"
        t0 = time.perf_counter()
        score, detail = best(scanner, str(r["text"]), source)
        times.append((time.perf_counter() - t0) * 1000)
        flags.append(score >= THRESHOLD)
        details.append(f"{score:.2f} {detail}")
    return flags, times, details


def sliced(rows: list[Row], flags: list[bool], key: str) -> dict[str, dict[str, float]]:
    groups: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for r, f in zip(rows, flags, strict=True):
        groups[str(r.get(key, "-"))].append((int(str(r["label"])), f))
    return {k: rates(v) for k, v in sorted(groups.items())}


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) > 1 else xs[0]


def report_split(scanner: Scanner, split: str, errors: int, data: Path) -> dict[str, object]:
    docs = load(data / f"injection_indirect_{split}.jsonl")
    alone = load(data / f"injection_indirect_{split}_alone.jsonl")
    out: dict[str, object] = {}
    print(f"== {split}: {len(docs)} documents, {len(alone)} inserted texts alone")
    for mode, rows in (("document", docs), ("prompt", docs), ("alone", alone)):
        flags, times, details = run_mode(scanner, rows, mode)
        overall = rates((int(str(r["label"])), f) for r, f in zip(rows, flags, strict=True))
        out[mode] = {"overall": overall, "carrier": sliced(rows, flags, "carrier"),
                     "position": sliced(rows, flags, "position"),
                     "family": sliced(rows, flags, "family"),
                     "latency_ms": {"mean": statistics.fmean(times), "p95": p95(times)}}
        print(f"  {mode:8s} {fmt(overall)}  | {statistics.fmean(times):.2f} ms mean, "
              f"{p95(times):.2f} ms p95")
        if mode == "document":
            print_slices(out[mode])
            print_errors(rows, flags, details, errors)
    return out


def print_slices(res: object) -> None:
    assert isinstance(res, dict)
    for key in ("carrier", "position", "family"):
        for name, m in res[key].items():
            print(f"      {key:8s} {name:20s} {fmt(m)}")


def print_errors(rows: list[Row], flags: list[bool], details: list[str], n: int) -> None:
    shown = 0
    for r, f, d in zip(rows, flags, details, strict=True):
        if shown >= n or f == bool(r["label"]):
            continue
        shown += 1
        kind = "MISS" if r["label"] else "FP  "
        ins = str(r["inserted"]).replace("\n", " ")[:90]
        print(f"    {kind} {r['carrier']}/{r['wrap']}/{r['position']} [{d}] {ins}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["dev", "holdout", "both"], default="both")
    ap.add_argument("--errors", type=int, default=0, help="list up to N misses/false alarms")
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument("--data", type=Path, default=DATA,
                    help="directory of the sets (to run an older checkout's scanner on them)")
    args = ap.parse_args()
    scanner = make_scanner({})
    scanner.scan("warm-up " * 200, ScanContext(source="document"))
    splits = ["dev", "holdout"] if args.split == "both" else [args.split]
    results = {s: report_split(scanner, s, args.errors, args.data) for s in splits}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
