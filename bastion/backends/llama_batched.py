"""Continuous batching for the embedded llama.cpp model.

One scheduler thread owns a llama.cpp context with ``n_seq_max = parallel`` sequences (each
with its own ``n_ctx`` of KV cache). Requests are admitted into free sequence ids as they
arrive; every step builds one ``llama_batch`` holding the next token of every generating
sequence plus a slice (up to ``n_batch`` tokens in all) of the prompts still being read, runs
one ``llama_decode``, and samples each sequence that has a fresh logits row with its own
``llama_sampler`` chain. A sequence that finishes (end-of-generation token, stop string,
``max_tokens``, full context) or is cancelled leaves at once, its KV cells are freed, and the
next waiting request takes its id, while the others keep generating.

Chunks are shaped like llama-cpp-python's stream chunks and handed to the event loop through
a :class:`~bastion.backends.generation.GenerationRun`, exactly as the serial path does.
Prompts are built and sampled as llama-cpp-python's ``create_chat_completion`` /
``create_completion`` build and sample them, so greedy output matches the serial path.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.backends.generation import END, GenerationRun
from bastion.backends.llama_sampling import (
    SamplingParams,
    TextStream,
    build_sampler,
    log_softmax,
    parse_params,
    top_indices,
)
from bastion.errors import BastionError, InvalidRequest, ServerError

_Request = tuple[str, dict[str, Any], GenerationRun, Callable[[], None] | None]


@dataclass(eq=False)
class _Seq:
    """One admitted request: its sequence id, prompt progress and output state."""

    run: GenerationRun
    kind: str
    params: SamplingParams
    prompt: list[int]
    prompt_chars: int
    max_tokens: int
    sampler: Any = None
    stream: TextStream = field(default_factory=lambda: TextStream([]))
    seq_id: int = -1
    n_past: int = 0  # tokens of this sequence in the KV cache
    next_token: int | None = None  # sampled, not yet decoded
    generated: int = 0
    text_chars: int = 0
    row: int = -1  # this step's logits row in the batch, -1: none
    chunk_id: str = ""
    created: int = 0
    on_done: Callable[[], None] | None = None


class BatchedEngine:
    def __init__(
        self,
        model_path: str,
        *,
        n_ctx: int,
        n_threads: int,
        n_batch: int,
        parallel: int,
        chat_template: Any | None = None,
    ) -> None:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_batch = max(n_batch, parallel)
        self.parallel = parallel
        self.formatter: Any = chat_template
        self._cond = threading.Condition()
        self._waiting: collections.deque[_Request] = collections.deque()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._active: list[_Seq] = []
        self._free: list[int] = list(range(parallel - 1, -1, -1))
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        self._piece_cache: dict[int, bytes] = {}
        self.steps = 0  # llama_decode calls so far (for tests and benchmarks)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Loads the model and creates the context (blocking), then starts the scheduler."""
        import llama_cpp as lc
        from llama_cpp import _logger

        if not _logger.logger.level:  # unset: llama.cpp would log every load step to stderr
            _logger.set_verbose(False)
        lc.llama_backend_init()
        mparams = lc.llama_model_default_params()
        self._model = lc.llama_model_load_from_file(self.model_path.encode(), mparams)
        if not self._model:
            raise ServerError(f"llama.cpp could not load {self.model_path}")
        self._vocab = lc.llama_model_get_vocab(self._model)
        self._n_vocab = int(lc.llama_vocab_n_tokens(self._vocab))
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = self.n_ctx * self.parallel
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = min(self.n_batch, 512)
        cparams.n_seq_max = self.parallel
        cparams.n_threads = cparams.n_threads_batch = self.n_threads
        cparams.kv_unified = False  # each sequence gets its own n_ctx of KV cache
        cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as llama_cpp.Llama
        self._ctx = lc.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            self.close()
            raise ServerError("llama.cpp could not create a context")
        self._seq_ctx = min(self.n_ctx, int(lc.llama_n_ctx_seq(self._ctx)))
        self._mem = lc.llama_get_memory(self._ctx)
        self._batch = lc.llama_batch_init(self.n_batch, 0, 1)
        self._bos = int(lc.llama_vocab_bos(self._vocab))
        self._eos = int(lc.llama_vocab_eos(self._vocab))
        if self.formatter is None:
            self.formatter = self._default_formatter()
        self._stop_ids: set[int] = set(getattr(self.formatter, "stop_token_ids", None) or ())
        self._thread = threading.Thread(target=self._loop, name="llama-batched", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stops the scheduler (failing any unfinished run) and frees the model."""
        import llama_cpp as lc

        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        gone = ServerError("The model was unloaded")
        for seq in list(self._active):
            self._finish(seq, error=gone)
        with self._cond:
            waiting, self._waiting = list(self._waiting), collections.deque()
        for _, _, run, on_done in waiting:
            self._fail(run, gone, on_done)
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            lc.llama_free(self._ctx)
        if self._model:
            lc.llama_model_free(self._model)
        self._ctx = self._model = None

    def submit(
        self,
        kind: str,
        kwargs: dict[str, Any],
        run: GenerationRun,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """Queues a generation (called on the event loop; never blocks on the model).

        ``on_done``, if given, is called on the run's event loop right after END is put
        (also when the run failed or was cancelled): the place to release a Slot."""
        with self._cond:
            if self._closing or self._thread is None:
                self._fail(run, ServerError("The model is not loaded"), on_done)
                return
            self._waiting.append((kind, kwargs, run, on_done))
            self._cond.notify()

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def vocab(self) -> Any:
        return self._vocab

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def seq_ctx(self) -> int:
        """Each sequence's context window in tokens."""
        return self._seq_ctx

    def prepare(self, kind: str, kwargs: dict[str, Any]) -> tuple[list[int], int, list[str]]:
        """The prompt's tokens, its length in characters and the template's stop strings.

        Thread-safe (the template and the vocabulary are read-only): callers run it on their
        own thread and pass the result as ``kwargs["_prepared"]``, so a long prompt is not
        tokenized on the scheduler thread while other sequences wait for their next step."""
        if kind == "chat":
            return self._chat_prompt(kwargs["messages"])
        text = str(kwargs["prompt"])
        return self._completion_prompt(text), len(text), []

    # ------------------------------------------------------------------ the scheduler
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not self._waiting and not self._active:
                    self._cond.wait()
                if self._closing:
                    return
                admitted: list[_Request] = []
                while self._waiting and len(admitted) < len(self._free):
                    admitted.append(self._waiting.popleft())
            try:
                for request in admitted:
                    self._admit(*request)
                for seq in list(self._active):
                    if seq.run.cancel.is_set():
                        self._finish(seq)
                if self._active:
                    self._step()
            except Exception as exc:  # noqa: BLE001 - a bug must not take the engine down
                for seq in list(self._active):
                    self._finish(seq, error=ServerError(f"Generation failed: {exc}"))

    def _admit(
        self,
        kind: str,
        kwargs: dict[str, Any],
        run: GenerationRun,
        on_done: Callable[[], None] | None,
    ) -> None:
        if run.cancel.is_set():
            self._put(run, END)
            self._done(run, on_done)
            return
        try:
            params = parse_params(kind, kwargs, self._n_vocab)
            prepared = kwargs.get("_prepared")
            prompt, chars, stops = prepared if prepared else self.prepare(kind, kwargs)
            if len(prompt) >= self._seq_ctx:
                raise InvalidRequest(
                    f"The prompt is {len(prompt)} tokens; the model's context window is "
                    f"{self._seq_ctx} tokens",
                    param="messages" if kind == "chat" else "prompt",
                )
            room = self._seq_ctx - len(prompt)
            max_tokens = params.max_tokens
            max_tokens = room if max_tokens is None or max_tokens <= 0 else min(max_tokens, room)
            seq = _Seq(run, kind, params, prompt, chars, max_tokens)
            seq.stream = TextStream(params.stop + stops)
            seq.sampler = build_sampler(self._vocab, self._n_vocab, params)
        except BastionError as exc:
            self._fail(run, exc, on_done)
            return
        except Exception as exc:  # noqa: BLE001 - template, tokenizer, bad parameter types
            self._fail(run, InvalidRequest(f"The model cannot take this input: {exc}"), on_done)
            return
        seq.on_done = on_done
        seq.seq_id = self._free.pop()
        seq.created = int(time.time())
        seq.chunk_id = ("chatcmpl-" if kind == "chat" else "cmpl-") + str(uuid.uuid4())
        self._active.append(seq)
        if kind == "chat":
            self._emit(seq, {"role": "assistant"}, None, None)

    def _step(self) -> None:
        """One llama_decode: every generating sequence's next token, then prompt slices."""
        import llama_cpp as lc

        batch = self._batch
        batch.n_tokens = 0
        fed: list[tuple[_Seq, int]] = []
        for seq in self._active:
            seq.row = -1
            if seq.next_token is not None:
                seq.row = self._add(seq.next_token, seq.n_past, seq.seq_id, True)
                fed.append((seq, 1))
        for seq in self._active:
            room = self.n_batch - batch.n_tokens
            todo = len(seq.prompt) - seq.n_past
            if seq.next_token is not None or todo <= 0 or room <= 0:
                continue
            take = min(room, todo)
            for pos in range(seq.n_past, seq.n_past + take):
                row = self._add(seq.prompt[pos], pos, seq.seq_id, pos == len(seq.prompt) - 1)
            if take == todo:
                seq.row = row
            fed.append((seq, take))
        if not fed:
            return
        rc = lc.llama_decode(self._ctx, batch)
        self.steps += 1
        if rc != 0:
            for seq, _ in fed:
                self._finish(seq, error=ServerError(f"llama_decode failed ({rc})"))
            return
        for seq, n in fed:
            seq.n_past += n
            seq.next_token = None
        for seq, _ in fed:
            if seq.row >= 0:
                try:
                    self._advance(seq)
                except Exception as exc:  # noqa: BLE001 - fails this request only
                    self._finish(seq, error=ServerError(f"Generation failed: {exc}"))

    def _add(self, token: int, pos: int, seq_id: int, logits: bool) -> int:
        batch = self._batch
        i: int = batch.n_tokens
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq_id
        batch.logits[i] = logits
        batch.n_tokens = i + 1
        return i

    def _advance(self, seq: _Seq) -> None:
        """Samples this sequence's next token from its logits row and streams its text."""
        import llama_cpp as lc

        logprobs = None
        if seq.params.top_logprobs is not None:
            ptr = lc.llama_get_logits_ith(self._ctx, seq.row)
            logprobs = log_softmax(np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)))
        token = int(lc.llama_sampler_sample(seq.sampler, self._ctx, seq.row))
        if lc.llama_vocab_is_eog(self._vocab, token) or token in self._stop_ids:
            self._finish(seq, "stop")
            return
        seq.generated += 1
        piece = self._piece(token)
        extra = None if logprobs is None else self._logprob(seq, token, piece, logprobs)
        self._release(seq, *seq.stream.push(piece, extra))
        if seq.stream.stopped:
            self._finish(seq, "stop")
        elif seq.generated >= seq.max_tokens:
            self._finish(seq, "length")
        else:
            seq.next_token = token

    def _finish(
        self, seq: _Seq, reason: str | None = None, *, error: BastionError | None = None
    ) -> None:
        """Ends a sequence: final chunk (or error), usage, END; frees its KV cells and id."""
        import llama_cpp as lc

        if seq not in self._active:
            return
        self._active.remove(seq)
        try:
            if error is None and reason is not None:
                if not seq.stream.stopped:
                    self._release(seq, *seq.stream.flush())
                self._emit(seq, {}, None, reason)
            seq.run.usage = {
                "prompt_tokens": len(seq.prompt),
                "completion_tokens": seq.generated,
                "total_tokens": len(seq.prompt) + seq.generated,
            }
        except Exception as exc:  # noqa: BLE001 - still end the run and free the sequence
            error = ServerError(f"Generation failed: {exc}")
        finally:
            if error is not None:
                self._put(seq.run, error)
            self._put(seq.run, END)
            self._done(seq.run, seq.on_done)
            if seq.sampler is not None:
                lc.llama_sampler_free(seq.sampler)
                seq.sampler = None
            lc.llama_memory_seq_rm(self._mem, seq.seq_id, -1, -1)
            self._free.append(seq.seq_id)

    # ------------------------------------------------------------------ prompts and text
    def _default_formatter(self) -> Any:
        from llama_cpp import llama_chat_format

        template = self._meta("tokenizer.chat_template")
        if template is None:  # llama_cpp.Llama falls back to llama-2 formatting
            return llama_chat_format.format_llama2
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(self._eos),
            bos_token=self._token_text(self._bos),
            add_generation_prompt=True,
            stop_token_ids=[self._eos],
        )

    def _meta(self, key: str) -> str | None:
        import llama_cpp as lc

        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = lc.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def _token_text(self, token: int) -> str:
        import llama_cpp as lc

        if token == -1:
            return ""
        return bytes(lc.llama_vocab_get_text(self._vocab, token)).decode("utf-8", "replace")

    def _tokenize(self, text: bytes, add_special: bool) -> list[int]:
        import llama_cpp as lc

        size = len(text) + 8
        buf = (lc.llama_token * size)()
        n = lc.llama_tokenize(self._vocab, text, len(text), buf, size, add_special, True)
        if n < 0:
            size = -n
            buf = (lc.llama_token * size)()
            n = lc.llama_tokenize(self._vocab, text, len(text), buf, size, add_special, True)
            if n < 0:
                raise InvalidRequest("The prompt could not be tokenized")
        return list(buf[:n])

    def _chat_prompt(self, messages: list[dict[str, Any]]) -> tuple[list[int], int, list[str]]:
        formatted = self.formatter(messages=messages)
        tokens = self._tokenize(formatted.prompt.encode(), not formatted.added_special)
        stop = formatted.stop
        stops = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
        return tokens, 0, stops

    def _completion_prompt(self, text: str) -> list[int]:
        import llama_cpp as lc

        tokens = self._tokenize(text.encode(), False) if text else []
        if lc.llama_vocab_get_add_bos(self._vocab) and self._bos != -1:
            tokens.insert(0, self._bos)
        sep = int(lc.llama_vocab_sep(self._vocab))
        if lc.llama_vocab_get_add_eos(self._vocab) or sep != -1:
            tokens.append(sep if sep != -1 else self._eos)
        if not tokens:
            tokens = [self._bos if self._bos != -1 else self._eos]
        return tokens

    def _piece(self, token: int) -> bytes:
        """The token's text as llama-cpp-python detokenizes it (special tokens render empty)."""
        piece = self._piece_cache.get(token)
        if piece is None:
            import llama_cpp as lc

            buf = ctypes.create_string_buffer(64)
            n = lc.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = lc.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
            piece = buf.raw[: max(n, 0)]
            self._piece_cache[token] = piece
        return piece

    def _logprob(self, seq: _Seq, token: int, piece: bytes, logprobs: Any) -> dict[str, Any]:
        n = seq.params.top_logprobs or 0
        text = piece.decode("utf-8", errors="ignore")
        top = [(self._piece(i), float(logprobs[i])) for i in top_indices(logprobs, n)]
        return {
            "token": text,
            "bytes": list(piece),
            "logprob": float(logprobs[token]),
            "top": top,
        }

    def _release(self, seq: _Seq, data: bytes, extras: list[Any]) -> None:
        if not data and not any(extras):
            return
        text = data.decode("utf-8", errors="ignore")
        entries = [e for e in extras if e is not None]
        if seq.kind == "chat":
            lp = None
            if entries:
                content = [
                    {
                        "token": e["token"],
                        "logprob": e["logprob"],
                        "bytes": e["bytes"],
                        "top_logprobs": [
                            {
                                "token": p.decode("utf-8", errors="ignore"),
                                "logprob": v,
                                "bytes": list(p),
                            }
                            for p, v in e["top"]
                        ],
                    }
                    for e in entries
                ]
                lp = {"content": content, "refusal": None}
            self._emit(seq, {"content": text}, lp, None)
        else:
            clp = None
            if entries:
                offsets, done = [], 0
                for e in entries:  # offsets in characters of prompt + text so far
                    offsets.append(seq.prompt_chars + seq.text_chars + done)
                    done += len(e["token"])
                tops = []
                for e in entries:
                    top = {p.decode("utf-8", errors="ignore"): v for p, v in e["top"]}
                    top[e["token"]] = e["logprob"]
                    tops.append(top)
                clp = {
                    "tokens": [e["token"] for e in entries],
                    "text_offset": offsets,
                    "token_logprobs": [e["logprob"] for e in entries],
                    "top_logprobs": tops,
                }
            self._emit(seq, text, clp, None)
        seq.text_chars += len(text)

    def _emit(self, seq: _Seq, payload: Any, logprobs: Any, finish_reason: str | None) -> None:
        choice: dict[str, Any]
        if seq.kind == "chat":
            choice = {"index": 0, "delta": payload, "logprobs": logprobs}
            obj = "chat.completion.chunk"
        else:
            text = payload if isinstance(payload, str) else ""
            choice = {"text": text, "index": 0, "logprobs": logprobs}
            obj = "text_completion"
        choice["finish_reason"] = finish_reason
        chunk = {
            "id": seq.chunk_id,
            "object": obj,
            "created": seq.created,
            "model": self.model_path,
            "choices": [choice],
        }
        self._put(seq.run, chunk)

    @staticmethod
    def _put(run: GenerationRun, item: Any) -> None:
        try:
            run.loop.call_soon_threadsafe(run.queue.put_nowait, item)
        except RuntimeError:  # the run's event loop is closed: nobody is listening
            run.cancel.set()

    @staticmethod
    def _done(run: GenerationRun, on_done: Callable[[], None] | None) -> None:
        if on_done is not None:
            with contextlib.suppress(RuntimeError):  # the run's event loop is closed
                run.loop.call_soon_threadsafe(on_done)

    def _fail(
        self, run: GenerationRun, error: BastionError, on_done: Callable[[], None] | None = None
    ) -> None:
        self._put(run, error)
        self._put(run, END)
        self._done(run, on_done)


def max_token_bytes(vocab: Any, n_vocab: int) -> int:
    """The most bytes of text any one token stands for (special tokens by their text, as
    prompts are tokenized with special parsing): a prompt of B bytes needs at least
    B / this many tokens."""
    import llama_cpp as lc

    buf = ctypes.create_string_buffer(256)
    longest = 0
    for token in range(n_vocab):
        n = lc.llama_token_to_piece(vocab, token, buf, 256, 0, True)
        longest = max(longest, abs(n))  # negative: the piece needs -n bytes
    return longest
