"""The embedded backend: a GGUF model run in-process by llama-cpp-python.

The model is not re-entrant, so generation runs on one dedicated worker thread behind a
bounded :class:`~bastion.backends.slots.Slot`. Streamed tokens cross to the event loop with
``call_soon_threadsafe`` as they are produced. A client that goes away sets a cancel flag
that llama.cpp checks after every token (through ``stopping_criteria``), so an abandoned
request stops generating at once and frees the model for the next one.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from bastion.backends.base import (
    SSE_DONE,
    Backend,
    Completion,
    EventStream,
    Result,
    sse_error,
    sse_event,
)
from bastion.backends.slots import Slot
from bastion.backends.weights import resolve_gguf, verify_sha256
from bastion.config import EmbeddedModel
from bastion.errors import BastionError, InvalidRequest, ServerError
from bastion.gateway.context import RequestContext

_CHAT_PARAMS = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "logit_bias",
)
_COMPLETION_PARAMS = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "echo",
    "suffix",
    "logit_bias",
)
_END = object()


class _Cancel:
    """A stopping criterion that also counts generated tokens."""

    __slots__ = ("first_len", "flag", "tokens")

    def __init__(self) -> None:
        self.flag = threading.Event()
        self.tokens = 0
        self.first_len = 0

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        if self.tokens == 0:
            self.first_len = len(input_ids)
        self.tokens += 1
        return self.flag.is_set()


class LlamaCppBackend(Backend):
    kind = "llama_cpp"
    owned_by = "bastion-embedded"

    def __init__(self, spec: EmbeddedModel) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self._slot = Slot(spec.name, spec.queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{spec.name}")
        self._llm: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.model_path: str | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._llm = await self._loop.run_in_executor(self._executor, self._load)
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
            chat_format=self.spec.chat_format,
            verbose=False,
        )

    async def close(self) -> None:
        self.ready = False
        self._executor.shutdown(wait=True, cancel_futures=True)
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
        kwargs["messages"] = body["messages"]
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
        kwargs["prompt"] = prompt
        return await self._generate(
            lambda llm: llm.create_completion, kwargs, body, stream, ctx, "text_completion"
        )

    def _kwargs(self, body: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
        if body.get("n", 1) != 1:
            raise InvalidRequest("The embedded model supports only n=1", param="n")
        kwargs = {k: body[k] for k in allowed if body.get(k) is not None}
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens is None:
            max_tokens = self.spec.max_tokens_default
        kwargs["max_tokens"] = max_tokens
        fmt = kwargs.get("response_format")
        if fmt is not None and fmt.get("type") == "text":
            del kwargs["response_format"]
        return kwargs

    async def _generate(
        self,
        method: Callable[[Any], Callable[..., Any]],
        kwargs: dict[str, Any],
        body: dict[str, Any],
        stream: bool,
        ctx: RequestContext,
        obj: str,
    ) -> Result:
        if self._llm is None:
            raise ServerError(f"Model '{self.name}' is not loaded")
        await self._slot.acquire()
        cancel = _Cancel()
        kwargs["stopping_criteria"] = [cancel]
        ctx.backend_started_at = time.perf_counter()
        if stream:
            options = body.get("stream_options") or {}
            include_usage = options.get("include_usage") is True
            return EventStream(self._stream(method, kwargs, cancel, ctx, include_usage, obj))
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, self._run_blocking, method, kwargs, cancel
        )
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.flag.set()
            raise
        ctx.backend_headers_at = ctx.first_token_at = time.perf_counter()
        result["model"] = self.name
        ctx.usage = result.get("usage")
        return Completion(orjson.dumps(result))

    def _run_blocking(
        self, method: Callable[[Any], Callable[..., Any]], kwargs: dict[str, Any], cancel: _Cancel
    ) -> Any:
        started = time.perf_counter()
        loop = self._loop
        assert loop is not None
        try:
            return self._call(method, kwargs)
        finally:
            loop.call_soon_threadsafe(self._slot.release, time.perf_counter() - started)

    def _call(self, method: Callable[[Any], Callable[..., Any]], kwargs: dict[str, Any]) -> Any:
        try:
            return method(self._llm)(**kwargs)
        except ValueError as exc:  # llama.cpp: prompt longer than the context, bad grammar...
            raise InvalidRequest(str(exc)) from exc

    async def _stream(
        self,
        method: Callable[[Any], Callable[..., Any]],
        kwargs: dict[str, Any],
        cancel: _Cancel,
        ctx: RequestContext,
        include_usage: bool,
        obj: str,
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        kwargs["stream"] = True
        self._executor.submit(self._pump, method, kwargs, cancel, loop, queue)
        chunk_id = ""
        created = int(time.time())
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, BastionError):
                    yield sse_error(item)
                    return
                if ctx.backend_headers_at is None:
                    ctx.backend_headers_at = time.perf_counter()
                item["model"] = self.name
                chunk_id = item.get("id", chunk_id)
                created = item.get("created", created)
                if ctx.first_token_at is None and _has_content(item):
                    ctx.first_token_at = time.perf_counter()
                yield sse_event(item)
            prompt_tokens = max(cancel.first_len - 1, 0) if cancel.tokens else 0
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": cancel.tokens,
                "total_tokens": prompt_tokens + cancel.tokens,
            }
            ctx.usage = usage
            if include_usage:
                yield sse_event(
                    {
                        "id": chunk_id or f"chatcmpl-{uuid.uuid4().hex}",
                        "object": f"{obj}.chunk" if obj == "chat.completion" else obj,
                        "created": created,
                        "model": self.name,
                        "choices": [],
                        "usage": usage,
                    }
                )
            yield SSE_DONE
        finally:
            cancel.flag.set()  # no-op when finished; stops generation if the client left

    def _pump(
        self,
        method: Callable[[Any], Callable[..., Any]],
        kwargs: dict[str, Any],
        cancel: _Cancel,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
    ) -> None:
        started = time.perf_counter()
        put = queue.put_nowait
        try:
            chunks: Iterator[dict[str, Any]] = self._call(method, kwargs)
            for chunk in chunks:
                if cancel.flag.is_set():
                    break
                loop.call_soon_threadsafe(put, chunk)
        except BastionError as exc:
            loop.call_soon_threadsafe(put, exc)
        except Exception as exc:  # noqa: BLE001 - reported to the client as a stream error
            loop.call_soon_threadsafe(put, ServerError(f"Generation failed: {exc}"))
        finally:
            loop.call_soon_threadsafe(put, _END)
            loop.call_soon_threadsafe(self._slot.release, time.perf_counter() - started)


def _has_content(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices", ()):
        delta = choice.get("delta")
        if delta is not None:
            if delta.get("content") or delta.get("tool_calls"):
                return True
        elif choice.get("text"):
            return True
    return False
