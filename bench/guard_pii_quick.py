"""Quick PII scanner measurement until ``bastion guard eval`` lands.

    .venv/bin/python bench/guard_pii_quick.py FILE.jsonl [--no-ner] [--threshold 0.5]
    .venv/bin/python bench/guard_pii_quick.py --latency [--no-ner] [--cpu]

Accuracy: type-agnostic span F2 (a predicted span is a true positive if it overlaps a
gold span; a gold span is found if a prediction overlaps it), and per structured type
recall (gold spans of the type overlapped by a prediction of a matching kind) and
precision (predictions of the kind that overlap a gold span of a matching type).
Latency: p50/p95 of one scan over 200-, 2,000- and 8,000-character inputs cut from the
files given (default: the dev set and the generated sets).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from bastion.guards.base import ScanContext
from bastion.guards.pii import make_scanner

# our kind -> gold types it answers (for per-type scores)
MATCHES = {
    "LOCATION": {"GPE", "LOCATION", "STREET_ADDRESS"},
    "DATE_OF_BIRTH": {"DATE_TIME", "DATE_OF_BIRTH"},
    "DATE_TIME": {"DATE_TIME", "DATE_OF_BIRTH"},
    "URL": {"URL", "DOMAIN_NAME"},
    "STREET_ADDRESS": {"STREET_ADDRESS", "GPE", "LOCATION", "ZIP_CODE"},
    "ZIP_CODE": {"ZIP_CODE", "STREET_ADDRESS"},
}
STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
              "MAC_ADDRESS", "US_SSN", "DE_TAX_ID", "FR_NIR", "ES_NIF", "IT_FISCAL_CODE",
              "NL_BSN", "UK_NINO", "URL", "DATE_OF_BIRTH")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = [Path("/work/shared/data/pii_dev_en.jsonl"),
                 *sorted((ROOT / "bench" / "guard_data").glob("pii_*.jsonl"))]


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(path: Path, scanner: object, threshold: float, show: int) -> None:
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    tp_pred = n_pred = found_gold = n_gold = 0
    rec_hit: Counter[str] = Counter()
    rec_all: Counter[str] = Counter()
    prec_hit: Counter[str] = Counter()
    prec_all: Counter[str] = Counter()
    misses: list[str] = []
    ctx = ScanContext()
    for row in rows:
        text = row["text"]
        gold = [(e["start"], e["end"], e["type"]) for e in row["entities"]]
        pred = [f for f in scanner.scan(text, ctx) if f.score >= threshold]  # type: ignore[attr-defined]
        n_pred += len(pred)
        n_gold += len(gold)
        for f in pred:
            hit = [g for g in gold if overlaps(f.span, g[:2])]
            tp_pred += bool(hit)
            prec_all[f.kind] += 1
            if any(g[2] in MATCHES.get(f.kind, {f.kind}) for g in hit):
                prec_hit[f.kind] += 1
            elif f.kind in STRUCTURED and len(misses) < show:
                misses.append(f"FP {f.kind} {text[f.start:f.end]!r} gold={hit}")
        for g in gold:
            over = [f for f in pred if overlaps(f.span, g[:2])]
            found_gold += bool(over)
            rec_all[g[2]] += 1
            if any(g[2] in MATCHES.get(f.kind, {f.kind}) for f in over):
                rec_hit[g[2]] += 1
            elif g[2] in STRUCTURED and len(misses) < show:
                misses.append(f"FN {g[2]} {text[g[0]:g[1]]!r} in {text[max(0, g[0]-40):g[1]+20]!r}")
    p = tp_pred / n_pred if n_pred else 0.0
    r = found_gold / n_gold if n_gold else 0.0
    f2 = 5 * p * r / (4 * p + r) if p + r else 0.0
    print(f"\n{path.name}: {len(rows)} rows, {n_gold} gold spans, {n_pred} predicted "
          f"(score >= {threshold})")
    print(f"  type-agnostic: precision {p:.3f} recall {r:.3f} F2 {f2:.3f}")
    for kind in sorted(set(rec_all) | set(prec_all)):
        rc = f"{rec_hit[kind] / rec_all[kind]:.3f} ({rec_hit[kind]}/{rec_all[kind]})" \
            if rec_all[kind] else "-"
        pc = f"{prec_hit[kind] / prec_all[kind]:.3f} ({prec_hit[kind]}/{prec_all[kind]})" \
            if prec_all[kind] else "-"
        mark = "*" if kind in STRUCTURED else " "
        print(f"  {mark}{kind:16} recall {rc:18} precision {pc}")
    for line in misses:
        print("   ", line)


def latency(scanner: object, files: list[Path], repeat: int, cpu: bool = False) -> None:
    corpus = " ".join(json.loads(line)["text"] for path in files
                      for line in path.open(encoding="utf-8"))
    ctx = ScanContext()
    for size in (200, 2000, 8000):
        samples = []
        for i in range(repeat):
            start = (i * 997) % max(1, len(corpus) - size)
            text = corpus[start:start + size]
            clock = time.thread_time if cpu else time.perf_counter
            t0 = clock()
            scanner.scan(text, ctx)  # type: ignore[attr-defined]
            samples.append((clock() - t0) * 1000)
        samples.sort()
        p95 = samples[int(0.95 * (len(samples) - 1))]
        print(f"  {size:5} chars: p50 {statistics.median(samples):6.2f} ms  p95 {p95:6.2f} ms"
              f"  (n={repeat})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--no-ner", action="store_true")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--cpu", action="store_true",
                    help="time CPU spent by this thread, not wall clock: what a scan costs "
                         "when the shared cores are busy with other work")
    ap.add_argument("--show", type=int, default=0, help="print up to N structured misses")
    args = ap.parse_args()
    # cold model: no cache of earlier chunks (the latency inputs overlap)
    scanner = make_scanner({"ner": not args.no_ner, "ner_cache": not args.latency})
    scanner.warm()  # type: ignore[attr-defined]
    files = args.files or DEFAULT_FILES
    if args.latency:
        clock = "thread CPU time" if args.cpu else "wall clock"
        print(f"latency ({clock}), ner={'off' if args.no_ner else 'on'}:")
        latency(scanner, files, args.repeat, args.cpu)
        return
    for path in files:
        evaluate(path, scanner, args.threshold, args.show)


if __name__ == "__main__":
    main()
