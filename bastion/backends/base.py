"""What every backend offers the gateway, and the two shapes of its results.

A backend serves one configured model. It receives the validated request dict (unknown
fields included), and returns either a :class:`Completion` (one JSON body) or an
:class:`EventStream` (server-sent events, each item one or more complete ``data: ...``
frames, yielded as soon as they exist). Failures are raised as
:mod:`bastion.errors` classes; once a stream has started, a failure is sent as a final
``data: {"error": ...}`` event instead, which the OpenAI SDKs raise as an APIError.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bastion.context import RequestContext
from bastion.errors import BastionError, InvalidRequest, ServerError
from bastion.protocol.sse import encode
from bastion.server.types import Headers, aclose


@dataclass(slots=True)
class Completion:
    body: bytes
    status: int = 200
    headers: Headers = field(default_factory=list)


@dataclass(slots=True)
class EventStream:
    events: AsyncIterator[bytes]
    headers: Headers = field(default_factory=list)


Result = Completion | EventStream


class ClosingStream:
    """Async iterator over ``events`` whose ``aclose()`` also runs ``cleanup``.

    An async generator that was never started skips its ``finally`` on ``aclose()``; a
    stream abandoned before its first chunk (client gone) must still release what it holds
    (an upstream connection, a model generation), so the cleanup is attached here.
    """

    __slots__ = ("_cleanup", "_events")

    def __init__(
        self, events: AsyncIterator[bytes], cleanup: Callable[[], Awaitable[None] | None]
    ) -> None:
        self._events = events
        self._cleanup = cleanup

    def __aiter__(self) -> ClosingStream:
        return self

    async def __anext__(self) -> bytes:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        try:
            await aclose(self._events)
        finally:
            result = self._cleanup()
            if result is not None:
                await result


def sse_event(payload: dict[str, Any]) -> bytes:
    return encode(payload)


SSE_DONE = b"data: [DONE]\n\n"


def sse_error(error: BastionError) -> bytes:
    return sse_event(error.envelope())


class Backend:
    """Base class: a backend overrides the endpoints it serves."""

    kind: ClassVar[str] = "base"
    owned_by: ClassVar[str] = "bastion"

    def __init__(self, name: str) -> None:
        self.name = name
        self.created = int(time.time())
        self.ready = False

    async def start(self) -> None:
        self.ready = True

    async def close(self) -> None:
        self.ready = False

    async def probe(self) -> None:
        """Active health check; raises a BastionError when the backend cannot serve.

        The default checks only that the backend is loaded; remote backends ask the server."""
        if not self.ready:
            raise ServerError(f"Model '{self.name}' is not loaded")

    async def chat(self, body: dict[str, Any], stream: bool, ctx: RequestContext) -> Result:
        raise InvalidRequest(
            f"Model '{self.name}' does not support chat completions", param="model"
        )

    async def completion(self, body: dict[str, Any], stream: bool, ctx: RequestContext) -> Result:
        raise InvalidRequest(f"Model '{self.name}' does not support completions", param="model")

    async def embeddings(
        self, body: dict[str, Any], inputs: list[Any], ctx: RequestContext
    ) -> Result:
        raise InvalidRequest(f"Model '{self.name}' does not support embeddings", param="model")

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
        }
