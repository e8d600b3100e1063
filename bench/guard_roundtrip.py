#!/usr/bin/env python3
"""Round trip of pseudonymization: restore(pseudonymize(x)) == x, over every row of the
PII sets, also when the model rewrites the placeholders (case, brackets, spaces) and when
the answer arrives as a stream cut at random places.

    .venv/bin/python bench/guard_roundtrip.py [FILES...]   # default: shared + generated sets

For each text: the ``pii`` scanner (NER on) pseudonymizes it in its own session; the
placeholders are then rewritten in each of the forms models use (``<PERSON_1>``,
``[PERSON_1]``, ``{PERSON_1}``, ``< PERSON_1 >``, ``PERSON_1``, each also in lower case)
and restored, whole and as a stream cut into 1-7 character pieces.
Prints, per set, how many texts had findings and how many came back exactly.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bastion.config import GuardSettings  # noqa: E402
from bastion.guards.engine import GuardEngine  # noqa: E402
from bastion.guards.vault import StreamRestorer, restore  # noqa: E402
from bastion.plugins import plugin_manager, scanner_factories  # noqa: E402

FORMS = ["<{}>", "[{}]", "{{{}}}", "< {} >", "{}"]  # (parentheses stay: see vault.py)
PLACEHOLDER = re.compile(r"<([A-Z_]+_\d+)>")


def rewrite(text: str, form: str, lower: bool) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1).lower() if lower else m.group(1)
        return form.format(name)
    return PLACEHOLDER.sub(sub, text)


def streamed(text: str, originals: dict[str, str], rng: random.Random) -> str:
    r = StreamRestorer(originals)
    out, i = [], 0
    while i < len(text):
        j = i + rng.randint(1, 7)
        out.append(r.feed(text[i:j]))
        i = j
    out.append(r.flush())
    return "".join(out)


def main() -> int:
    files = [Path(f) for f in sys.argv[1:]] or [
        ROOT.parent / "shared/data/pii_dev_en.jsonl",
        *sorted((ROOT / "bench/guard_data").glob("pii_gen_*.jsonl")),
    ]
    settings = GuardSettings.model_validate({"policies": {"p": {"input": [
        {"scanner": "pii", "action": "pseudonymize", "threshold": 0.5}]}}})
    engine = GuardEngine(settings, scanner_factories(plugin_manager()))
    policy = engine.policy("p")
    rng = random.Random(7)
    total = exact = found = canonical_total = streamed_total = 0
    for path in files:
        n = ok = with_findings = canonical = stream_ok = 0
        for i, line in enumerate(path.read_text().splitlines()):
            text = json.loads(line)["text"]
            session = f"{path.name}:{i}"
            out = engine.scan(policy, "input", text, session=session)
            originals = engine.vault.originals(session)
            n += 1
            with_findings += bool(originals)
            plain = restore(out.text, originals) == text
            canonical += plain
            stream_ok += streamed(out.text, originals, rng) == text
            good = plain
            for form in FORMS:
                for lower in (False, True):
                    variant = rewrite(out.text, form, lower)
                    good = good and restore(variant, originals) == text
            ok += good
        print(f"{path.name:<22} {n:5d} texts, {with_findings:5d} with placeholders; exact: "
              f"as sent {canonical}/{n}, streamed {stream_ok}/{n}, in every rewritten form "
              f"{ok}/{n}")
        total, exact, found = total + n, exact + ok, found + with_findings
        canonical_total, streamed_total = canonical_total + canonical, streamed_total + stream_ok
    print(f"{'all':<22} {total:5d} texts, {found:5d} with placeholders; exact: as sent "
          f"{canonical_total}/{total} ({100 * canonical_total / total:.2f} %), streamed "
          f"{streamed_total}/{total} ({100 * streamed_total / total:.2f} %), every rewritten "
          f"form {exact}/{total} ({100 * exact / total:.2f} %)")
    return 0 if canonical_total == streamed_total == total else 1


if __name__ == "__main__":
    sys.exit(main())
