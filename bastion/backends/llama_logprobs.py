"""Log-probabilities for the single-sequence embedded model, computed as the batched
engine computes them: from the context's logits of each sampled token, with numpy (a
log-softmax and ``argpartition`` for the top alternatives, well under a millisecond a
token).

llama-cpp-python's own ``logprobs`` sorts the whole vocabulary in Python for every token
(about 10 ms a token for SmolLM2's 49,152 entries: 0.15x tokens/s, docs/benchmarks.md
"Confidence") and needs ``logits_all``. This records, around ``Llama.sample``, each
sampled token with its log-probability and alternatives, and attaches them to the chat
chunks that carry its text (a chunk's text may hold several tokens, or wait for a later
one: tokens are matched to chunks by their bytes).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from bastion.backends.llama_sampling import log_softmax, top_indices


class ChatLogprobs:
    """Installed on one ``Llama`` for one generation (``with``), on its worker thread."""

    def __init__(self, llm: Any, top: int) -> None:
        self._llm = llm
        self._top = top
        self._n_vocab = int(llm.n_vocab())
        self._pending: deque[dict[str, Any]] = deque()  # sampled, not yet in a chunk
        self._original = llm.sample

    def __enter__(self) -> ChatLogprobs:
        self._llm.sample = self._sample  # an instance attribute: generate() calls self.sample
        return self

    def __exit__(self, *exc: object) -> None:
        self._llm.__dict__.pop("sample", None)

    def _sample(self, *args: Any, **kwargs: Any) -> Any:
        import llama_cpp as lc

        token = self._original(*args, **kwargs)
        idx = kwargs.get("idx")
        row = -1 if idx is None else int(idx) - int(self._llm.n_tokens)
        ptr = lc.llama_get_logits_ith(self._llm._ctx.ctx, row)
        logprobs = log_softmax(np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)))
        self._pending.append(self._entry(int(token), logprobs))
        return token

    def _entry(self, token: int, logprobs: Any) -> dict[str, Any]:
        piece = self._piece(token)
        return {
            "token": piece.decode("utf-8", errors="ignore"), "logprob": float(logprobs[token]),
            "bytes": list(piece),
            "top_logprobs": [
                {"token": (alt := self._piece(i)).decode("utf-8", errors="ignore"),
                 "logprob": float(logprobs[i]), "bytes": list(alt)}
                for i in top_indices(logprobs, self._top)],
        }

    def _piece(self, token: int) -> bytes:
        return bytes(self._llm.detokenize([token]))

    def attach(self, chunk: dict[str, Any]) -> None:
        """Sets the ``logprobs`` of a chat chunk that carries text: the pending tokens
        whose bytes make up that text."""
        for choice in chunk.get("choices", ()):
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if not isinstance(text, str) or not text:
                choice["logprobs"] = None
                continue
            want, got, entries = len(text.encode()), 0, []
            while self._pending and got < want:
                entry = self._pending.popleft()
                entries.append(entry)
                got += len(entry["bytes"])
            choice["logprobs"] = {"content": entries, "refusal": None}
