#!/usr/bin/env python3
"""Latency of a whole input policy (every rule, actions applied), as a request pays it.

    .venv/bin/python bench/guard_pipeline.py [--policy standard] [--lengths 200,2000,8000]
        [--samples 20] [--repeat 3] [--set pii.ner_max_chars=1500 ...]

Inputs of exact lengths are cut from the shared data (PII rows and benign prompts,
joined by ``latency.length_inputs``: realistic text with names, numbers and findings). Each input is
scanned ``--repeat`` times through ``GuardEngine.scan`` with the NER cache off (every scan
cold, as a new message is), after one untimed warm-up scan of a different text. Prints
p50/p95/p99 of the whole policy and of each rule (its own time, from the decisions and
separate timing), in milliseconds of wall clock and of this thread's CPU time (the
machine is shared: CPU time is the steadier number). ``--set RULE.OPTION=VALUE`` changes
an option of every rule of that scanner (values read as YAML).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bastion.config import GuardSettings  # noqa: E402
from bastion.evaluation.latency import length_inputs, percentile  # noqa: E402
from bastion.guards.base import ScanContext  # noqa: E402
from bastion.guards.engine import STANDARD, GuardEngine  # noqa: E402
from bastion.plugins import plugin_manager, scanner_factories  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def texts() -> list[str]:
    out = [json.loads(line)["text"] for line in (DATA / "pii_dev_en.jsonl").open()]
    out += [json.loads(line)["text"] for line in (DATA / "injection_train.jsonl").open()
            if json.loads(line)["label"] == 0]
    random.Random(3).shuffle(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="standard")
    ap.add_argument("--lengths", default="200,2000,8000")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    spec = STANDARD.model_dump()
    spec["output"] = []
    for item in args.sets:
        target, _, value = item.partition("=")
        scanner, _, option = target.partition(".")
        for rule in spec["input"]:
            if rule["scanner"] == scanner:
                rule["options"][option] = yaml.safe_load(value)
    for rule in spec["input"]:
        if rule["scanner"] == "pii":
            rule["options"].setdefault("ner_cache", False)
    settings = GuardSettings.model_validate({"policies": {args.policy: spec}})
    engine = GuardEngine(settings, scanner_factories(plugin_manager()))
    policy = engine.policy(args.policy)
    pool = texts()
    print(f"policy {args.policy}: " + "; ".join(
        f"{r.name} {r.spec.action} {r.spec.options or ''}" for r in policy.input))
    for length in (int(v) for v in args.lengths.split(",")):
        cases = length_inputs(pool, length, args.samples)
        engine.scan(policy, "input", length_inputs(pool[::-1], length, 1)[0], session="w")
        wall: list[float] = []
        cpu: list[float] = []
        per_rule: dict[str, list[float]] = {r.name + ":" + r.spec.action: [] for r in policy.input}
        for i, text in enumerate(cases):
            for k in range(args.repeat):
                c0, w0 = time.thread_time(), time.perf_counter()
                engine.scan(policy, "input", text, session=f"{length}:{i}:{k}")
                wall.append((time.perf_counter() - w0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)
            for rule in policy.input:  # each rule alone, on the original text
                c0 = time.thread_time()
                rule.scanner.scan(text, ScanContext())
                key = rule.name + ":" + rule.spec.action
                per_rule[key].append((time.thread_time() - c0) * 1000)
        print(f"{length:>6} chars  wall p50 {statistics.median(wall):7.2f}  p95 "
              f"{percentile(wall, 95):7.2f}"
              f"  p99 {percentile(wall, 99):7.2f} ms | cpu p50 {statistics.median(cpu):7.2f}  p95 "
              f"{percentile(cpu, 95):7.2f} ms | per rule cpu p50/p95: " + ", ".join(
                  f"{k} {statistics.median(v):.2f}/{percentile(v, 95):.2f}"
                  for k, v in per_rule.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
