"""Built-in request observers, registered through the same hook a plugin uses.

An observer sees each finished request's context once (``Gateway.finish``), on the event
loop: it must be quick and must not block (the spool appends to a buffer, metrics add to
counters, OTel puts on a queue, the access log writes one line). A factory gets the gateway
and returns its observer, or None when that part is off; the gateway asks again after a
configuration reload, so turning the access log on or off takes effect at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.hookspecs import hookimpl

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Gateway

Observer = Callable[["RequestContext"], None]
access_log = logging.getLogger("bastion.access")


def _spool(gw: Gateway) -> Observer | None:
    return gw.tracing.observe if gw.tracing is not None else None


def _metrics(gw: Gateway) -> Observer | None:
    return gw.metrics.observe if gw.settings.metrics.enabled else None


def _otel(gw: Gateway) -> Observer | None:
    return gw.otel.observe if gw.otel is not None else None


def _access_log(gw: Gateway) -> Observer | None:
    return log_access if gw.settings.server.access_log else None


def log_access(ctx: RequestContext) -> None:
    finished = ctx.finished_at or time.perf_counter()
    usage: dict[str, Any] = ctx.usage or {}
    access_log.info(
        "%s %s model=%s status=%d ms=%.1f tokens_in=%s tokens_out=%s%s",
        ctx.request_id,
        ctx.endpoint,
        ctx.model or "-",
        ctx.status,
        (finished - ctx.received_at) * 1000,
        usage.get("prompt_tokens", "-"),
        usage.get("completion_tokens", "-"),
        f" error={ctx.error!r}" if ctx.error else "",
        extra={"request_id": ctx.request_id},
    )


@hookimpl
def register_observers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("spool", _spool)  # traces, first: the store is the record
    register("metrics", _metrics)
    register("otel", _otel)
    register("access_log", _access_log)
