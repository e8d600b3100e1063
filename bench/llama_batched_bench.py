#!/usr/bin/env python3
"""Aggregate tokens/s of the embedded model: serial llama-cpp-python vs. the batched engine.

For each ``n_threads`` (default 1 and 2) this loads three instances of the packaged
SmolLM2 GGUF:

* serial: ``llama_cpp.Llama.create_chat_completion(stream=True)`` on one worker thread,
  N requests queued on it one after the other, each chunk handed to the event loop as it
  is made (what the gateway does today; llama-cpp-python reuses the KV cache of the
  previous prompt's common prefix, here the default system prompt);
* batched p=4 and p=8: :class:`bastion.backends.llama_batched.BatchedEngine` with
  ``parallel`` 4 and 8, N requests submitted at once (more than ``parallel`` wait for a
  free sequence).

Every cell sends N = 1, 2, 4, 8 concurrent chat requests (the same prompts everywhere, at
temperature 0 with a fixed max_tokens, so all paths generate the same tokens) and measures
completion tokens / wall time. Rounds interleave all cells (starting at a different cell
each round) so load from other processes hits every cell alike; medians are reported, as
ratios to the serial path at N=1 with the same n_threads, measured in the same run.

    .venv/bin/python bench/llama_batched_bench.py [--rounds 3] [--max-tokens 48]
        [--threads 1,2] [--concurrency 1,2,4,8] [--parallel 4,8] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bastion.backends.generation import END, GenerationRun, has_content  # noqa: E402
from bastion.backends.llama_batched import BatchedEngine  # noqa: E402
from bastion.backends.weights import packaged_gguf  # noqa: E402

PROMPTS = [
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how a bicycle works, part by part.",
    "Describe a walk through a busy market in a large city, with many details.",
    "Write a detailed guide to growing tomatoes at home.",
    "Tell me the history of the printing press.",
    "Write a long letter to a friend about a trip to the mountains.",
    "Explain how a refrigerator keeps food cold.",
    "Describe the life cycle of a butterfly in detail.",
]
N_CTX = 2048
N_BATCH = 512


def body(i: int, max_tokens: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
        "temperature": 0,
        "max_tokens": max_tokens,
    }


class Serial:
    """The gateway's serial path: one worker thread, streamed generation, one at a time."""

    def __init__(self, threads: int) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(
            model_path=str(packaged_gguf()),
            n_ctx=N_CTX,
            n_batch=N_BATCH,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self.pool = ThreadPoolExecutor(max_workers=1)

    def _pump(self, kwargs: dict[str, Any], run: GenerationRun) -> None:
        """As LlamaCppBackend._pump: every chunk crosses to the event loop as it is made."""
        put = run.queue.put_nowait
        for chunk in self.llm.create_chat_completion(stream=True, **kwargs):
            run.loop.call_soon_threadsafe(put, chunk)
        run.loop.call_soon_threadsafe(put, END)

    async def _one(self, kwargs: dict[str, Any]) -> int:
        run = GenerationRun(asyncio.get_running_loop())
        self.pool.submit(self._pump, kwargs, run)
        tokens = 0
        while (item := await run.queue.get()) is not END:
            tokens += has_content(item)
        return tokens

    async def run(self, first: int, n: int, max_tokens: int) -> int:
        runs = (self._one(body(first + i, max_tokens)) for i in range(n))
        return sum(await asyncio.gather(*runs))

    def close(self) -> None:
        self.pool.shutdown()
        self.llm.close()


class Batched:
    def __init__(self, threads: int, parallel: int) -> None:
        self.engine = BatchedEngine(
            str(packaged_gguf()), n_ctx=N_CTX, n_threads=threads, n_batch=N_BATCH, parallel=parallel
        )
        self.engine.start()

    async def _one(self, kwargs: dict[str, Any]) -> int:
        run = GenerationRun(asyncio.get_running_loop())
        self.engine.submit("chat", kwargs, run)
        while (item := await run.queue.get()) is not END:
            if isinstance(item, Exception):
                raise item
        return run.usage["completion_tokens"]

    async def run(self, first: int, n: int, max_tokens: int) -> int:
        runs = (self._one(body(first + i, max_tokens)) for i in range(n))
        return sum(await asyncio.gather(*runs))

    def close(self) -> None:
        self.engine.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--parallel", default="4,8")
    ap.add_argument("--json", help="write the raw samples here")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    sizes = [int(n) for n in args.concurrency.split(",")]
    parallels = [int(p) for p in args.parallel.split(",")]

    paths: dict[tuple[int, str], Any] = {}
    for t in threads:
        paths[(t, "serial")] = Serial(t)
        for p in parallels:
            paths[(t, f"batched p={p}")] = Batched(t, p)
    names = ["serial", *(f"batched p={p}" for p in parallels)]
    for path in paths.values():  # warm-up: first decode allocates buffers
        await path.run(0, 1, 4)

    cells = [(t, name, n) for t in threads for name in names for n in sizes]
    samples: dict[tuple[int, str, int], list[float]] = {cell: [] for cell in cells}
    for r in range(args.rounds):
        shift = r * len(cells) // args.rounds
        order = cells[shift:] + cells[:shift]
        for t, name, n in order:
            start = time.perf_counter()
            # request i of round r gets prompt r + i: the same prompts for every path
            tokens = await paths[(t, name)].run(r, n, args.max_tokens)
            samples[(t, name, n)].append(tokens / (time.perf_counter() - start))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    for path in paths.values():
        path.close()

    med = {cell: statistics.median(v) for cell, v in samples.items()}
    print(
        f"\n{platform.machine()} cpus={os.cpu_count()} rounds={args.rounds} "
        f"max_tokens={args.max_tokens} n_ctx={N_CTX} n_batch={N_BATCH} "
        f"load={os.getloadavg()[0]:.2f}\n"
    )
    head = " | ".join(f"{name} tok/s (x serial@1)" for name in names)
    print(f"| n_threads | concurrent requests | {head} |")
    print("|---|---|" + "---|" * len(names))
    for t in threads:
        base = med[(t, "serial", sizes[0])]
        for n in sizes:
            cols = " | ".join(
                f"{med[(t, name, n)]:.1f} ({med[(t, name, n)] / base:.2f}x)" for name in names
            )
            print(f"| {t} | {n} | {cols} |")
    if args.json:
        raw = {f"{t}/{name}/{n}": v for (t, name, n), v in samples.items()}
        with open(args.json, "w") as fh:  # noqa: ASYNC230 - once, after measuring
            json.dump(raw, fh, indent=1)


if __name__ == "__main__":
    asyncio.run(main())
