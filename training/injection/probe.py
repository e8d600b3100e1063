"""Score texts with the shipped scanner (rules + classifier), as the policy would see them.

    .venv/bin/python training/injection/probe.py            # hand-written sets, per set
    .venv/bin/python training/injection/probe.py -v c       # set C, every miss and alarm

A quick check of the real scanner (not train.py's re-implementation of its decisions):
a row is flagged when any finding scores >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bastion.guards.base import ScanContext  # noqa: E402
from bastion.guards.injection import make_scanner  # noqa: E402

HANDWRITTEN = Path(__file__).resolve().parent / "data" / "handwritten_eval.jsonl"
THRESHOLD = 0.5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sets", nargs="*", default=["a", "b", "c"])
    ap.add_argument("-v", action="store_true", help="print every wrong row")
    args = ap.parse_args()
    scanner = make_scanner({})
    rows = [json.loads(line) for line in HANDWRITTEN.open(encoding="utf-8")]
    for name in args.sets:
        sel = [r for r in rows if r["family"] == f"handwritten_{name}"]
        tp = fp = pos = neg = 0
        for r in sel:
            ctx = ScanContext(source=r.get("source", "prompt"))
            fs = scanner.scan(r["text"], ctx)
            top = max(fs, key=lambda f: f.score, default=None)
            flagged = top is not None and top.score >= THRESHOLD
            if r["label"]:
                pos += 1
                tp += flagged
            else:
                neg += 1
                fp += flagged
            if args.v and flagged != bool(r["label"]):
                why = f"{top.score:.2f} {top.detail}" if top else "-"
                print(f"  {'MISS' if r['label'] else 'FP  '} [{why}] {r['text'][:90]}")
        tpr, fpr = tp / max(pos, 1), fp / max(neg, 1)
        print(f"set {name}: n={len(sel)} TPR={tpr:.3f} ({tp}/{pos}) FPR={fpr:.3f} ({fp}/{neg}) "
              f"BA={(tpr + 1 - fpr) / 2:.3f}")


if __name__ == "__main__":
    main()
