"""The local embedding backend behind ``POST /v1/embeddings`` (no torch, no downloads).

The model itself lives in :mod:`bastion.backends.embedding_local`; this adapter admits
requests through a bounded slot, runs the model on its own worker thread and shapes the
OpenAI response (float lists, or base64 of little-endian float32 when asked).
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from bastion.backends.base import Backend, Completion, Result
from bastion.backends.slots import Slot
from bastion.config import LocalEmbeddingModel
from bastion.context import RequestContext
from bastion.errors import InvalidRequest, ServerError


class LocalEmbeddingBackend(Backend):
    kind = "local_embedding"
    owned_by = "bastion-embedded"

    def __init__(self, spec: LocalEmbeddingModel) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self._slot = Slot(spec.name, spec.queue_size, initial_estimate=0.1)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{spec.name}")
        self._model: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._model = await self._loop.run_in_executor(self._executor, self._load)
        self.ready = True

    def _load(self) -> Any:
        from bastion.backends import embedding_local

        if self.spec.path is None:
            return embedding_local.load_default_embedding_model(sha256=self.spec.sha256)
        return embedding_local.load_embedding_model(self.spec.path, sha256=self.spec.sha256)

    async def close(self) -> None:
        self.ready = False
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._model = None

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self._model is not None:
            out["meta"] = {"backend": self.kind, "dimensions": self._model.dimensions}
        return out

    async def embeddings(
        self, body: dict[str, Any], inputs: list[Any], ctx: RequestContext
    ) -> Result:
        model = self._model
        if model is None:
            raise ServerError(f"Model '{self.name}' is not loaded")
        dims = body.get("dimensions")
        if dims is not None and dims != model.dimensions:
            raise InvalidRequest(
                f"Model '{self.name}' produces {model.dimensions} dimensions; "
                f"'dimensions'={dims} is not supported",
                param="dimensions",
            )
        if not all(isinstance(text, str) for text in inputs):
            raise InvalidRequest(
                f"Model '{self.name}' takes text input, not token arrays", param="input"
            )
        ctx.backend_started_at = time.perf_counter()  # queueing for the model is backend time
        await self._slot.acquire(ctx.claim)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._embed, model, inputs)
        vectors, tokens = await asyncio.shield(future)
        ctx.backend_headers_at = ctx.backend_done_at = time.perf_counter()
        b64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _b64(vec) if b64 else vec,
            }
            for i, vec in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        ctx.usage = usage
        return Completion(
            orjson.dumps({"object": "list", "data": data, "model": self.name, "usage": usage})
        )

    def _embed(self, model: Any, inputs: list[str]) -> tuple[list[list[float]], int]:
        started = time.perf_counter()
        loop = self._loop
        assert loop is not None
        try:
            result: tuple[list[list[float]], int] = model.embed(inputs)
            return result
        finally:
            loop.call_soon_threadsafe(self._slot.release, time.perf_counter() - started)


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
