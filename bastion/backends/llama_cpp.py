"""The embedded backend: a GGUF model run in-process by llama-cpp-python.

The model is not re-entrant, so generation runs on one dedicated worker thread behind a
bounded :class:`~bastion.backends.slots.Slot`. Every request is generated token by token
(non-streamed responses are assembled from the same chunks), and each chunk crosses to the
event loop with ``call_soon_threadsafe`` as it is produced. A client that goes away sets a
cancel flag that the worker checks after every token, so an abandoned request stops
generating at once and frees the model for the next one.

Usage: completion tokens are counted as generated; prompt tokens by formatting the
messages with the same chat template llama-cpp-python uses and tokenizing the result.

Before a request takes the model it is prepared on a separate thread (grammar, chat
template, tokenization), so a huge or refused prompt never holds the model; a prompt whose
length alone proves it cannot fit (more characters than ``n_ctx`` times the longest token)
is refused without even that. ``response_format`` and forced ``tool_choice`` become a
grammar (:mod:`bastion.backends.llama_grammar`); the forced call's text is returned as
``tool_calls`` (:mod:`bastion.backends.llama_tools`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jinja2
import orjson

from bastion.backends.base import (
    SSE_DONE,
    Backend,
    ClosingStream,
    Completion,
    EventStream,
    Result,
    sse_error,
    sse_event,
)
from bastion.backends.generation import (
    END,
    GenerationRun,
    assemble_chat,
    assemble_completion,
    chat_formatter,
    has_content,
    normalise_messages,
)
from bastion.backends.llama_batched import BatchedEngine, max_token_bytes
from bastion.backends.llama_grammar import (
    ToolPlan,
    response_format_grammar,
    tool_instructions,
    tool_plan,
)
from bastion.backends.llama_logprobs import ChatLogprobs
from bastion.backends.llama_tools import ToolCallStream
from bastion.backends.slots import Slot
from bastion.backends.weights import resolve_gguf, verify_sha256
from bastion.config import EmbeddedModel
from bastion.context import RequestContext
from bastion.errors import BastionError, InvalidRequest, ServerError

_SAMPLING_PARAMS = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "logit_bias",
)
_CHAT_PARAMS = (*_SAMPLING_PARAMS, "top_logprobs", "response_format", "tools", "tool_choice")
_COMPLETION_PARAMS = (*_SAMPLING_PARAMS, "echo", "suffix")


class LlamaCppBackend(Backend):
    kind = "llama_cpp"
    owned_by = "bastion-embedded"

    def __init__(self, spec: EmbeddedModel) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self._slot = Slot(spec.name, spec.queue_size, capacity=spec.parallel)
        self._engine: BatchedEngine | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{spec.name}")
        # grammar, template and tokenizer work, off the model's thread (the vocab is read-only)
        self._prep = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"prep-{spec.name}")
        self._n_vocab = 0
        self._max_chars = 0  # a prompt longer than this (in characters) cannot fit n_ctx
        self._llm: Any = None
        self._formatter: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.model_path: str | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.spec.parallel > 1:
            self._engine = await self._loop.run_in_executor(self._executor, self._load_engine)
        else:
            self._llm = await self._loop.run_in_executor(self._executor, self._load)
            self._formatter = chat_formatter(self._llm)
        if self._engine is not None:
            vocab, self._n_vocab = self._engine.vocab, self._engine.n_vocab
        else:
            vocab, self._n_vocab = self._llm._model.vocab, int(self._llm.n_vocab())
        # every token covers at most this many bytes (so characters) of prompt text
        longest = await self._loop.run_in_executor(
            self._prep, max_token_bytes, vocab, self._n_vocab
        )
        self._max_chars = self.spec.n_ctx * max(longest, 1)
        self.ready = True

    def _load(self) -> Any:
        import llama_cpp  # imported here: loading the shared library takes a moment

        path, digest = resolve_gguf(self.spec.path, self.spec.sha256)
        if digest is not None:
            verify_sha256(path, digest)
        self.model_path = str(path)
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=self.spec.n_ctx,
            n_threads=self.spec.n_threads or os.cpu_count() or 1,
            n_batch=self.spec.n_batch,
            logits_all=self.spec.logprobs,
            chat_format=self.spec.chat_format,
            verbose=False,
        )

    def _load_engine(self) -> BatchedEngine:
        path, digest = resolve_gguf(self.spec.path, self.spec.sha256)
        if digest is not None:
            verify_sha256(path, digest)
        self.model_path = str(path)
        engine = BatchedEngine(
            str(path),
            n_ctx=self.spec.n_ctx,
            n_threads=self.spec.n_threads or os.cpu_count() or 1,
            n_batch=self.spec.n_batch,
            parallel=self.spec.parallel,
        )
        engine.start()
        return engine

    async def close(self) -> None:
        self.ready = False
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, engine.close)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._prep.shutdown(wait=True, cancel_futures=True)
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["meta"] = {"backend": self.kind, "n_ctx": self.spec.n_ctx}
        return out

    # ------------------------------------------------------------------ endpoints
    async def chat(self, body: dict[str, Any], stream: bool, ctx: RequestContext) -> Result:
        kwargs = self._kwargs(body, _CHAT_PARAMS)
        messages = normalise_messages(body["messages"])
        self._check_length(sum(len(m["content"]) for m in messages), "messages")
        kwargs["messages"] = messages
        return await self._generate(
            lambda llm: llm.create_chat_completion, kwargs, body, stream, ctx, "chat.completion"
        )

    async def completion(self, body: dict[str, Any], stream: bool, ctx: RequestContext) -> Result:
        prompt = body["prompt"]
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise InvalidRequest(
                    "The embedded model takes one prompt per request", param="prompt"
                )
            prompt = prompt[0]
        kwargs = self._kwargs(body, _COMPLETION_PARAMS)
        self._check_length(len(prompt), "prompt")
        kwargs["prompt"] = prompt
        return await self._generate(
            lambda llm: llm.create_completion, kwargs, body, stream, ctx, "text_completion"
        )

    def _kwargs(self, body: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
        if body.get("n", 1) != 1:
            raise InvalidRequest("The embedded model supports only n=1", param="n")
        kwargs = {k: body[k] for k in allowed if body.get(k) is not None}
        legacy = allowed is _COMPLETION_PARAMS  # chat computes its own (llama_logprobs)
        if legacy and kwargs.get("logprobs") and not self.spec.logprobs \
                and self.spec.parallel == 1:
            raise InvalidRequest(
                f"logprobs are not enabled for model '{self.name}' "
                "(set logprobs: true in its configuration)",
                param="logprobs",
            )
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens is None:
            max_tokens = self.spec.max_tokens_default
        kwargs["max_tokens"] = max_tokens
        if kwargs.get("logprobs") is True and kwargs.get("top_logprobs") is None:
            kwargs["top_logprobs"] = 0  # the chosen tokens only, as OpenAI answers
        bias = kwargs.get("logit_bias")
        if bias:
            bad = [k for k in bias if not 0 <= int(k) < self._n_vocab]
            if bad:
                raise InvalidRequest(
                    f"'logit_bias' names token id {bad[0]}, outside the model's vocabulary "
                    f"(0 to {self._n_vocab - 1})",
                    param="logit_bias",
                )
        return kwargs

    def _check_length(self, chars: int, param: str) -> None:
        """Refuses at once a prompt that cannot fit whatever it tokenizes to."""
        if chars > self._max_chars:
            raise _too_long(f"{chars} characters (at most {self._max_chars} can fit)", param,
                            self.spec.n_ctx)

    async def _generate(
        self,
        method: Callable[[Any], Callable[..., Any]],
        kwargs: dict[str, Any],
        body: dict[str, Any],
        stream: bool,
        ctx: RequestContext,
        obj: str,
    ) -> Result:
        if self._llm is None and self._engine is None:
            raise ServerError(f"Model '{self.name}' is not loaded")
        ctx.backend_started_at = time.perf_counter()  # queueing for the model is backend time
        loop = asyncio.get_running_loop()
        plan = await loop.run_in_executor(self._prep, self._prepare, kwargs, body, obj)
        tools = ToolCallStream(list(plan.tools)) if plan is not None else None
        await self._slot.acquire(ctx.claim)
        run = GenerationRun(loop)
        if self._engine is not None:
            started = time.perf_counter()
            self._engine.submit(
                "chat" if obj == "chat.completion" else "completion",
                kwargs,
                run,
                on_done=lambda: self._slot.release(time.perf_counter() - started),
            )
        else:
            kwargs["stream"] = True  # always token by token: cancellable, one code path
            self._executor.submit(self._pump, method, kwargs, run)
        if stream:
            # Wait for the first chunk, so that input the model refuses (context overflow, a
            # bad grammar or logit_bias) is an HTTP error rather than an error event after 200.
            chunks = self._chunks(run, ctx, tools)
            try:
                first = await anext(chunks, None)
            except BaseException:
                run.cancel.set()
                raise
            options = body.get("stream_options") or {}
            include_usage = options.get("include_usage") is True
            events = self._stream(chunks, first, run, ctx, include_usage, obj)
            return EventStream(ClosingStream(events, run.cancel.set))
        try:
            collected = [chunk async for chunk in self._chunks(run, ctx, tools)]
        finally:
            run.cancel.set()  # no-op when finished; stops generation if the client left
        ctx.backend_done_at = time.perf_counter()
        assemble = assemble_chat if obj == "chat.completion" else assemble_completion
        result = assemble(collected, self.name, run.usage)
        if tools is not None and tools.name is not None:
            choice = result["choices"][0]
            choice["message"] = {
                "role": "assistant",
                "content": None,
                "tool_calls": tools.message_calls(),
            }
            choice["logprobs"] = None
        ctx.usage = run.usage
        return Completion(orjson.dumps(result))

    async def _chunks(
        self, run: GenerationRun, ctx: RequestContext, tools: ToolCallStream | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The generated chunks as they arrive (as tool-call chunks when a call is forced);
        a failure is raised as a BastionError."""
        while True:
            item = await run.queue.get()
            if item is END:
                return
            if isinstance(item, BastionError):
                raise item
            if ctx.backend_headers_at is None:
                ctx.backend_headers_at = time.perf_counter()
            if ctx.first_token_at is None and has_content(item):
                ctx.first_token_at = time.perf_counter()
            item["model"] = self.name
            if tools is not None:
                item = tools.convert(item)
                if item is None:
                    continue
            yield item

    def _prepare(self, kwargs: dict[str, Any], body: dict[str, Any], obj: str) -> ToolPlan | None:
        """Prep thread: grammar, prompt tokens and the context check, before the model's turn.

        Fills ``kwargs`` for the generator: the grammar, and the prompt's token count (serial)
        or its tokens (batched), so the model's thread neither formats nor tokenizes."""
        plan = None
        grammar = None
        if obj == "chat.completion":
            plan = tool_plan(kwargs.pop("tools", None), kwargs.pop("tool_choice", None))
            fmt = kwargs.pop("response_format", None)
            if plan is not None:
                grammar = plan.grammar
                kwargs["messages"] = _with_system(kwargs["messages"], tool_instructions(plan))
            elif fmt is not None:
                grammar = response_format_grammar(fmt)
        param = "messages" if obj == "chat.completion" else "prompt"
        if self._engine is not None:
            if grammar is not None:
                kwargs["grammar"] = grammar
            kind = "chat" if obj == "chat.completion" else "completion"
            prepared = self._engine.prepare(kind, kwargs)
            n_prompt = len(prepared[0])
            kwargs["_prepared"] = prepared
            n_ctx = self._engine.seq_ctx
        else:
            if grammar is not None:
                from llama_cpp.llama_grammar import LlamaGrammar

                kwargs["grammar"] = LlamaGrammar.from_string(grammar, verbose=False)
            n_prompt = self._count_prompt(kwargs)
            kwargs["_prompt_tokens"] = n_prompt
            n_ctx = self.spec.n_ctx
        if n_prompt >= n_ctx:
            raise _too_long(f"{n_prompt} tokens", param, n_ctx)
        return plan

    async def _stream(
        self,
        chunks: AsyncIterator[dict[str, Any]],
        first: dict[str, Any] | None,
        run: GenerationRun,
        ctx: RequestContext,
        include_usage: bool,
        obj: str,
    ) -> AsyncIterator[bytes]:
        chunk_id = first.get("id", "") if first else ""
        created = first.get("created", int(time.time())) if first else int(time.time())
        try:
            try:
                if first is not None:
                    yield sse_event(first)
                async for chunk in chunks:
                    yield sse_event(chunk)
            except BastionError as exc:
                yield sse_error(exc)
                return
            ctx.usage = run.usage
            if include_usage:
                yield sse_event(
                    {
                        "id": chunk_id or f"chatcmpl-{uuid.uuid4().hex}",
                        "object": "chat.completion.chunk" if obj == "chat.completion" else obj,
                        "created": created,
                        "model": self.name,
                        "choices": [],
                        "usage": run.usage,
                    }
                )
            yield SSE_DONE
        finally:
            run.cancel.set()  # no-op when finished; stops generation if the client left

    def _pump(
        self,
        method: Callable[[Any], Callable[..., Any]],
        kwargs: dict[str, Any],
        run: GenerationRun,
    ) -> None:
        """Worker thread: generate, hand each chunk to the loop, stop early when cancelled."""
        started = time.perf_counter()
        loop, put = run.loop, run.queue.put_nowait
        completion_tokens = 0
        try:
            prompt_tokens = kwargs.pop("_prompt_tokens")
            top_logprobs = kwargs.get("top_logprobs") if kwargs.get("logprobs") else None
            own = None  # chat: computed here, fast (llama-cpp-python's: 10 ms a token)
            if top_logprobs is not None and "messages" in kwargs:
                kwargs = {k: v for k, v in kwargs.items() if k not in ("logprobs",
                                                                        "top_logprobs")}
                own = ChatLogprobs(self._llm, int(top_logprobs))
            if kwargs.get("seed") is not None:
                # evaluate the whole prompt afresh: logits from a reused prefix differ in the
                # last bits, which a seeded sample at temperature > 0 turns into other text
                self._llm.reset()
            with own or contextlib.nullcontext():
                chunks: Iterator[dict[str, Any]] = method(self._llm)(**kwargs)
                for chunk in chunks:
                    if run.cancel.is_set():
                        chunks.close()  # type: ignore[attr-defined]
                        break
                    if has_content(chunk):
                        completion_tokens += 1
                    if own is not None:
                        own.attach(chunk)
                    elif top_logprobs is not None:
                        _fix_logprobs(chunk, top_logprobs)
                    loop.call_soon_threadsafe(put, chunk)
            run.usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        except (ValueError, TypeError, jinja2.TemplateError) as exc:
            # llama.cpp or the chat template refused this input: context overflow, bad grammar
            refused = InvalidRequest(f"The model cannot take this input: {exc}")
            loop.call_soon_threadsafe(put, refused)
        except Exception as exc:  # noqa: BLE001 - reported to the client as a clean error
            loop.call_soon_threadsafe(put, ServerError(f"Generation failed: {exc}"))
        finally:
            loop.call_soon_threadsafe(put, END)
            loop.call_soon_threadsafe(self._slot.release, time.perf_counter() - started)

    def _count_prompt(self, kwargs: dict[str, Any]) -> int:
        llm = self._llm
        if "prompt" in kwargs:
            return len(llm.tokenize(kwargs["prompt"].encode(), add_bos=True, special=False))
        if self._formatter is not None:
            formatted = self._formatter(messages=kwargs["messages"])
            return len(
                llm.tokenize(
                    formatted.prompt.encode(), add_bos=not formatted.added_special, special=True
                )
            )
        text = "\n".join(str(m.get("content") or "") for m in kwargs["messages"])
        return len(llm.tokenize(text.encode(), add_bos=True, special=False))


def _too_long(size: str, param: str, n_ctx: int) -> InvalidRequest:
    return InvalidRequest(
        f"The prompt is {size}; the model's context window is {n_ctx} tokens",
        param=param,
        code="context_length_exceeded",
    )


def _with_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The messages with ``text`` added to the system message (one is made if none)."""
    if messages and messages[0]["role"] == "system":
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{text}".strip()}
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _fix_logprobs(chunk: dict[str, Any], top: int) -> None:
    """llama-cpp-python's chat logprobs as OpenAI's: token bytes filled in, and exactly the
    ``top`` requested alternatives (it always lists the chosen token among them)."""
    for choice in chunk.get("choices", ()):
        lp = choice.get("logprobs")
        if not lp or not isinstance(lp.get("content"), list):
            continue
        for entry in lp["content"]:
            entry["logprob"] = float(entry["logprob"])
            if entry.get("bytes") is None:
                entry["bytes"] = list(entry["token"].encode())
            alternatives = entry.get("top_logprobs") or []
            entry["top_logprobs"] = [
                {
                    "token": alt["token"],
                    "logprob": float(alt["logprob"]),
                    "bytes": list(alt["token"].encode()) if alt.get("bytes") is None
                    else alt["bytes"],
                }
                for alt in alternatives[:top]
            ]
