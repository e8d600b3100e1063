"""Per-sequence pieces of the batched llama.cpp engine: request parameters, the sampler
chain, log-probabilities, and incremental text with UTF-8 and stop-string hold-back.

Everything here mirrors what llama-cpp-python's high-level ``create_chat_completion`` /
``create_completion`` do for one request, so that the batched engine's output matches the
serial path token for token (same sampler chain, same defaults, same text rules).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.backends.llama_grammar import response_format_grammar
from bastion.errors import InvalidRequest

# tools/tool_choice arrive as a grammar (the backend turns them into one), so never here
UNSUPPORTED = ("tools", "tool_choice", "echo", "suffix", "functions", "function_call")
TOP_K = 40
MIN_P = 0.05
TOP_P = 0.95
PENALTY_LAST_N = 64  # llama-cpp-python's last_n_tokens_size default
DEFAULT_TEMPERATURE = {"chat": 0.2, "completion": 0.8}


@dataclass
class SamplingParams:
    """The request parameters one sequence generates with (defaults as llama-cpp-python)."""

    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = TOP_P
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    grammar: str | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)
    top_logprobs: int | None = None  # None: no logprobs; n: n alternatives per token


def parse_params(kind: str, kwargs: dict[str, Any], n_vocab: int | None = None) -> SamplingParams:
    """Validates and fills in defaults; unsupported parameters raise InvalidRequest.

    ``kwargs["grammar"]`` (GBNF text, from the backend) wins over ``response_format``."""
    for name in UNSUPPORTED:
        if kwargs.get(name) is not None:
            raise InvalidRequest(
                f"The embedded model does not support '{name}' with batched generation",
                param=name,
            )

    def num(name: str, default: float) -> float:
        value = kwargs.get(name)
        return default if value is None else float(value)

    stop = kwargs.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str)]
    seed = kwargs.get("seed")
    params = SamplingParams(
        max_tokens=kwargs.get("max_tokens"),
        temperature=num("temperature", DEFAULT_TEMPERATURE[kind]),
        top_p=num("top_p", TOP_P),
        seed=int(seed) & 0xFFFFFFFF if seed is not None else secrets.randbits(32),
        stop=stops,
        presence_penalty=num("presence_penalty", 0.0),
        frequency_penalty=num("frequency_penalty", 0.0),
    )
    fmt = kwargs.get("response_format")
    if isinstance(kwargs.get("grammar"), str):
        params.grammar = kwargs["grammar"]
    elif fmt is not None:
        params.grammar = response_format_grammar(fmt)
    for key, value in (kwargs.get("logit_bias") or {}).items():
        token = int(key)
        if token < 0 or (n_vocab is not None and token >= n_vocab):
            raise InvalidRequest(
                f"'logit_bias' names token id {token}, outside the model's vocabulary",
                param="logit_bias",
            )
        params.logit_bias[token] = float(value)
    logprobs = kwargs.get("logprobs")
    if kind == "chat":
        if logprobs:
            params.top_logprobs = int(kwargs.get("top_logprobs") or 0)
    elif logprobs is not None and logprobs is not False:
        params.top_logprobs = int(logprobs)
    if params.top_logprobs is not None and not 0 <= params.top_logprobs <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20", param="top_logprobs")
    return params


def build_sampler(vocab: Any, n_vocab: int, params: SamplingParams) -> Any:
    """The llama_sampler chain llama-cpp-python's ``_init_sampler`` builds for these params:
    penalties -> grammar -> (greedy | top_k -> top_p -> min_p -> temp -> dist(seed))."""
    import llama_cpp as lc

    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    try:
        if params.logit_bias:  # llama-cpp-python applies it to the logits before the chain
            items = list(params.logit_bias.items())
            array = (lc.llama_logit_bias * len(items))()
            for i, (token, bias) in enumerate(items):
                array[i].token, array[i].bias = token, bias  # type: ignore[assignment]
            lc.llama_sampler_chain_add(
                chain, lc.llama_sampler_init_logit_bias(n_vocab, len(items), array)
            )
        # same call (and argument list) as llama-cpp-python's LlamaSampler.add_penalties
        lc.llama_sampler_chain_add(
            chain,
            lc.llama_sampler_init_penalties(
                n_vocab,
                PENALTY_LAST_N,
                1.0,
                params.frequency_penalty,
                params.presence_penalty,
            ),
        )
        if params.grammar is not None:
            grammar = lc.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
            if not grammar:
                raise InvalidRequest("The grammar could not be parsed", param="response_format")
            lc.llama_sampler_chain_add(chain, grammar)
        temp = params.temperature
        if temp < 0.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(params.seed))
        elif temp == 0.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(TOP_K))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(params.top_p, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(MIN_P, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(temp))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(params.seed))
    except BaseException:
        lc.llama_sampler_free(chain)
        raise
    return chain


def log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """As llama-cpp-python's ``Llama.logits_to_logprobs`` for one row."""
    top = np.max(logits)
    shifted = np.subtract(logits, top if np.isfinite(top) else 0.0, dtype=np.float32)
    with np.errstate(divide="ignore"):
        out: npt.NDArray[np.float32] = shifted - np.log(np.sum(np.exp(shifted)))
    return out


def top_indices(logprobs: npt.NDArray[np.float32], n: int) -> list[int]:
    if n <= 0:
        return []
    part = np.argpartition(-logprobs, n - 1)[:n]
    return [int(i) for i in part[np.argsort(-logprobs[part], kind="stable")]]


def incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 character that is not finished."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead byte
            continue
        if byte & 0xE0 == 0xC0:
            need = 2
        elif byte & 0xF0 == 0xE0:
            need = 3
        else:
            need = 4 if byte & 0xF8 == 0xF0 else 1
        return back if need > back else 0
    return 0


class TextStream:
    """Generated text released token by token: holds back an unfinished UTF-8 character and
    any tail that could be the start of a stop string, and cuts the text at a stop string.

    ``push`` takes one token's bytes and an opaque per-token ``extra`` (its logprob entry) and
    returns the newly released text with the extras of the tokens it covers.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s.encode() for s in stops if s]
        self.pending: list[tuple[bytes, Any]] = []
        self.stopped = False

    def push(self, piece: bytes, extra: Any = None) -> tuple[bytes, list[Any]]:
        self.pending.append((piece, extra))
        buf = b"".join(p for p, _ in self.pending)
        cuts = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.stopped = True
            return self._release(min(cuts), partial=True)
        limit = len(buf) - self._held(buf)
        end = release = 0
        for piece_bytes, _ in self.pending:
            end += len(piece_bytes)
            if end > limit:
                break
            if not incomplete_tail(buf[:end]):
                release = end
        return self._release(release, partial=False)

    def flush(self) -> tuple[bytes, list[Any]]:
        """Everything still held back (generation ended without a stop string)."""
        pending, self.pending = self.pending, []
        return b"".join(p for p, _ in pending), [extra for _, extra in pending]

    def _held(self, buf: bytes) -> int:
        held = 0
        for stop in self.stops:
            for i in range(min(len(stop) - 1, len(buf)), held, -1):
                if buf.endswith(stop[:i]):
                    held = i
                    break
        return held

    def _release(self, n: int, *, partial: bool) -> tuple[bytes, list[Any]]:
        """The first ``n`` bytes of the pending text; with ``partial`` a token that straddles
        ``n`` is cut (and those after it dropped), else only whole tokens make up ``n``."""
        out: list[bytes] = []
        extras: list[Any] = []
        taken = 0
        while self.pending and taken < n:
            piece, extra = self.pending.pop(0)
            out.append(piece[: n - taken])
            extras.append(extra)
            taken += len(piece)
        if partial:
            self.pending.clear()
        return b"".join(out), extras
