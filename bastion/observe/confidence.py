"""How sure the model was of an answer, from its tokens' log-probabilities.

Where a backend returns them (the client asked for ``logprobs``: OpenAI-compatible
servers, vLLM, llama.cpp's server), a trace carries, in ``metadata.confidence``:

- ``tokens``: how many tokens had a log-probability;
- ``mean_logprob``: their mean (natural log; 0 is certainty);
- ``min_prob``: the probability of the least likely token (where an answer is weakest);
- ``perplexity``: ``exp(-mean_logprob)`` (1 is certainty; higher, less sure);
- ``entropy``: the mean entropy (nats) of each token's top alternatives, renormalised
  over the ones returned (``top_logprobs``; absent when fewer than two were asked for).

Numbers only: no token text, so they are kept in every content mode. The tokens
themselves are part of the output, and kept only where the output is kept in full.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Token = dict[str, Any]  # OpenAI's shape: {"token", "logprob", "top_logprobs": [...]}


def score(tokens: Sequence[Token] | None) -> dict[str, Any] | None:
    """The confidence of one answer, or None when no token has a finite log-probability."""
    logprobs = [lp for lp in (_logprob(t) for t in tokens or ()) if lp is not None]
    if not logprobs:
        return None
    mean = math.fsum(logprobs) / len(logprobs)
    out: dict[str, Any] = {
        "tokens": len(logprobs),
        "mean_logprob": round(mean, 6),
        "min_prob": round(math.exp(min(logprobs)), 6),
        "perplexity": round(math.exp(-mean), 6),
    }
    entropies = [h for h in (_entropy(t) for t in tokens or ()) if h is not None]
    if entropies:
        out["entropy"] = round(math.fsum(entropies) / len(entropies), 6)
    return out


def from_completion(logprobs: Any) -> list[Token]:
    """A legacy completion's ``logprobs`` (parallel lists: ``tokens``, ``token_logprobs``,
    ``top_logprobs`` as ``{token: logprob}``) in the chat shape."""
    if not isinstance(logprobs, dict):
        return []
    tokens = logprobs.get("tokens")
    values = logprobs.get("token_logprobs")
    tops = logprobs.get("top_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list):
        return []
    out: list[Token] = []
    for i, (token, value) in enumerate(zip(tokens, values, strict=False)):
        top = tops[i] if isinstance(tops, list) and i < len(tops) else None
        alternatives = ([{"token": k, "logprob": v} for k, v in top.items()]
                        if isinstance(top, dict) else [])
        out.append({"token": token, "logprob": value, "top_logprobs": alternatives})
    return out


def _logprob(token: Any) -> float | None:
    value = token.get("logprob") if isinstance(token, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value <= 0.0 else None


def _entropy(token: Any) -> float | None:
    tops = token.get("top_logprobs") if isinstance(token, dict) else None
    if not isinstance(tops, list):
        return None
    probs = [math.exp(lp) for lp in (_logprob(t) for t in tops) if lp is not None]
    total = math.fsum(probs)
    if len(probs) < 2 or total <= 0:
        return None
    return -math.fsum(p / total * math.log(p / total) for p in probs if p > 0)
