#!/usr/bin/env python3
"""Summarise a py-spy raw (collapsed) profile by function and by module.

    python bench/pyspy_summary.py PROFILE.txt [TOP]

Line numbers are dropped, so each function is one row. "self" is time in the
function's own bytecode (and C calls it makes directly: socket writes show up as self
time of the function calling transport.write); "incl" includes callees. Module rows
group self time by source file, which is the split used in docs/benchmarks.md.
"""
import collections
import re
import sys

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
tot = 0
selff: collections.Counter[str] = collections.Counter()
incl: collections.Counter[str] = collections.Counter()
mod: collections.Counter[str] = collections.Counter()
strip = re.compile(r":\d+\)$")
with open(path) as fh:
    lines = fh.read().splitlines()
for line in lines:
    line = line.rstrip()
    if not line:
        continue
    stack, _, n = line.rpartition(" ")
    k = int(n)
    tot += k
    frames = [strip.sub(")", f) for f in stack.split(";")]
    selff[frames[-1]] += k
    m = re.search(r"\(([^)]*)\)$", frames[-1])
    mod[m.group(1) if m else frames[-1]] += k
    for f in set(frames):
        incl[f] += k
print(f"samples {tot}")
print("--- self by module")
for f, k in mod.most_common(top):
    print(f"{k * 100 / tot:5.1f}% {f}")
print("--- self by function")
for f, k in selff.most_common(top):
    print(f"{k * 100 / tot:5.1f}% {f[:150]}")
print("--- inclusive by function")
for f, k in incl.most_common(top + 15):
    print(f"{k * 100 / tot:5.1f}% {f[:150]}")
