"""Latency of the injection scanner per tier at 200, 2,000 and 8,000 characters.

    .venv/bin/python training/injection/bench.py [--repeat 5]

Inputs are built by concatenating random corpus rows (attacks and benign, several
languages) and cutting them to length, so they exercise the non-ASCII folding path and the
rules' anchors the way real prompts do. Reports wall-clock p50/p95 and the CPU time per
call (the CPU figure is what the scanner costs; the wall-clock p95 also contains whatever
else the machine is doing).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bastion.guards.base import ScanContext  # noqa: E402
from bastion.guards.injection import make_scanner  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "data" / "corpus.jsonl"


def inputs(n_chars: int, count: int, rng: random.Random) -> list[str]:
    pool = [json.loads(line)["text"] for line in CORPUS.open(encoding="utf-8")]
    out = []
    for _ in range(count):
        s = ""
        while len(s) < n_chars:
            s += rng.choice(pool) + "\n"
        out.append(s[:n_chars])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--count", type=int, default=40)
    args = ap.parse_args()
    rng = random.Random(7)  # noqa: S311 (benchmark inputs, not secrets)
    ctx = ScanContext()
    texts = {n: inputs(n, args.count, rng) for n in (200, 2000, 8000)}
    for tier in ("rules", "classifier", "both"):
        scanner = make_scanner({"tier": tier})
        for n, batch in texts.items():
            for t in batch[:3]:
                scanner.scan(t, ctx)  # warm caches
            wall, cpu = [], []
            for _ in range(args.repeat):
                for t in batch:
                    w0, c0 = time.perf_counter(), time.process_time()
                    scanner.scan(t, ctx)
                    wall.append((time.perf_counter() - w0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
            wall.sort()
            cpu.sort()
            print(f"{tier:10s} {n:5d} chars  p50 {wall[len(wall) // 2]:6.2f} ms  "
                  f"p95 {wall[int(len(wall) * 0.95)]:6.2f} ms  "
                  f"cpu p50 {cpu[len(cpu) // 2]:6.2f} ms  (n={len(wall)})")


if __name__ == "__main__":
    main()
