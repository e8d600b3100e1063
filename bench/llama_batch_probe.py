"""Does llama.cpp's batched decoding raise aggregate tokens/s for the embedded model here?

Decodes N sequences in lock-step (one token each per llama_decode call, greedy) with the
low-level API, and reports aggregate tokens/s for N = 1, 2, 4, 8, interleaved over rounds so
that machine noise hits every N alike. Usage: python bench/llama_batch_probe.py [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import llama_cpp as lc
import numpy as np

from bastion.backends.weights import packaged_gguf

PROMPT = (
    "<|im_start|>user\nWrite a long story about a lighthouse keeper.<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="1,2,4,8")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    lc.llama_backend_init()
    mparams = lc.llama_model_default_params()
    model = lc.llama_model_load_from_file(str(packaged_gguf()).encode(), mparams)
    vocab = lc.llama_model_get_vocab(model)
    n_vocab = lc.llama_vocab_n_tokens(vocab)
    cparams = lc.llama_context_default_params()
    cparams.n_ctx = 4096
    cparams.n_batch = 512
    cparams.n_seq_max = max(sizes)
    cparams.n_threads = cparams.n_threads_batch = args.threads
    ctx = lc.llama_init_from_model(model, cparams)
    mem = lc.llama_get_memory(ctx)
    text = PROMPT.encode()
    buf = (lc.llama_token * 512)()
    n_prompt = lc.llama_tokenize(vocab, text, len(text), buf, 512, True, True)
    prompt = list(buf[:n_prompt])
    batch = lc.llama_batch_init(512, 0, max(sizes))

    def add(token: int, pos: int, seq: int, logits: bool) -> None:
        i = batch.n_tokens
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
        batch.n_tokens += 1

    def run(n: int) -> float:
        lc.llama_memory_clear(mem, True)
        batch.n_tokens = 0
        for pos, tok in enumerate(prompt):
            add(tok, pos, 0, pos == len(prompt) - 1)
        assert lc.llama_decode(ctx, batch) == 0
        for seq in range(1, n):
            lc.llama_memory_seq_cp(mem, 0, seq, -1, -1)
        last = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
        tokens = [int(np.argmax(last))] * n
        start = time.perf_counter()
        for step in range(args.steps):
            batch.n_tokens = 0
            for seq in range(n):
                add(tokens[seq], len(prompt) + step, seq, True)
            assert lc.llama_decode(ctx, batch) == 0
            for seq in range(n):
                logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, seq), shape=(n_vocab,))
                tokens[seq] = int(np.argmax(logits))
        return n * args.steps / (time.perf_counter() - start)

    results: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(args.rounds):
        for n in sizes:
            results[n].append(run(n))
    base = statistics.median(results[sizes[0]])
    print(f"threads={args.threads} steps={args.steps} rounds={args.rounds}")
    print("| sequences | aggregate tokens/s (median) | vs 1 sequence |")
    print("|---|---|---|")
    for n in sizes:
        med = statistics.median(results[n])
        print(f"| {n} | {med:.1f} | {med / base:.2f}x |")
    lc.llama_batch_free(batch)
    lc.llama_free(ctx)
    lc.llama_model_free(model)


if __name__ == "__main__":
    main()
