"""Zero-downtime configuration reload.

A reload builds and starts the backends of new or changed models first, then swaps the
router (unchanged deployments keep their backend objects and live routing state), so
requests never see a half-applied configuration. Backends that left the configuration are
drained in the background (closed once their in-flight requests are done, or after
``server.graceful_timeout``). If anything fails, the old configuration keeps serving.
Settings that only take effect at start (host, port, body limit, keep-alive) are reported
as needing a restart and otherwise ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.backends.base import Backend
from bastion.config import Settings, is_loopback
from bastion.errors import ConfigError

if TYPE_CHECKING:
    from bastion.gateway.app import Gateway

log = logging.getLogger("bastion.reload")
_RESTART_ONLY = (  # the listening socket's (TLS: its certificate *files* reload by
    "host", "port", "max_body_bytes", "keepalive_timeout", "drain_linger", "ready_timeout",
    "tls", "workers",  # themselves; a different path or turning it on or off does not)
)


@dataclass(slots=True)
class ReloadPlan:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)

    def describe(self, applied: bool) -> dict[str, Any]:
        return {
            "applied": applied,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "restart_required": self.restart_required,
        }


def plan(old: Settings, new: Settings) -> ReloadPlan:
    result = ReloadPlan()
    before = {m.name: m for m in old.models}
    after = {m.name: m for m in new.models}
    for name, spec in after.items():
        if name not in before:
            result.added.append(name)
        elif _backend_view(before[name]) != _backend_view(spec):
            result.changed.append(name)
        else:
            result.unchanged.append(name)
    result.removed = [name for name in before if name not in after]
    result.restart_required = [
        f"server.{key}"
        for key in _RESTART_ONLY
        if getattr(old.server, key) != getattr(new.server, key)
    ] + [
        section
        for section in _RESTART_SECTIONS
        if getattr(old, section) != getattr(new, section)
    ]
    return result


_RESTART_SECTIONS = ("home", "store", "tracing", "metrics", "otel")
_ROUTING_FIELDS = {"alias", "weight", "priority", "max_concurrency", "price", "pricing"}


def _backend_view(spec: Any) -> dict[str, Any]:
    """What a backend is built from: everything but the routing fields, which the router
    applies to a kept backend without rebuilding it."""
    data: dict[str, Any] = spec.model_dump()
    return {k: v for k, v in data.items() if k not in _ROUTING_FIELDS}


async def reload(gateway: Gateway, new: Settings, dry_run: bool = False) -> dict[str, Any]:
    """Applies ``new`` to a running gateway. Raises ConfigError and keeps the old config
    when a new backend cannot be built or started."""
    from bastion.gateway.app import make_router  # the app module imports this one

    bound = gateway.settings.server.host  # a host change needs a restart: this one stays
    if not is_loopback(bound) and new.server.master_key is None:
        raise ConfigError(
            f"the gateway listens on {bound}, beyond loopback: a reload cannot remove "
            "server.master_key"
        )
    steps = plan(gateway.settings, new)
    fresh: dict[str, Backend] = {}
    if dry_run:  # build (not start) what would change: factories exist, specs are valid
        trial = {
            m.name: gateway.build_backend(m) if m.name in steps.added + steps.changed
            else gateway.backends[m.name]
            for m in new.models
        }
        make_router(new, trial, gateway)
        if new.guards != gateway.settings.guards:  # every policy's scanners build
            stage = await asyncio.to_thread(gateway.build_guards, new)
            if stage is not None:
                stage.close()
        return steps.describe(applied=False)
    try:
        for name in steps.added + steps.changed:
            fresh[name] = gateway.build_backend(new.model(name))
        await asyncio.gather(*(b.start() for b in fresh.values()))
    except BaseException as exc:
        await asyncio.gather(*(b.close() for b in fresh.values()), return_exceptions=True)
        if isinstance(exc, Exception) and not isinstance(exc, ConfigError):
            raise ConfigError(f"reload failed, old configuration kept: {exc}") from exc
        raise
    backends = {m.name: fresh.get(m.name) or gateway.backends[m.name] for m in new.models}
    try:
        router = make_router(new, backends, gateway)
    except ConfigError:
        await asyncio.gather(*(b.close() for b in fresh.values()), return_exceptions=True)
        raise
    guards = gateway.guards
    if new.guards != gateway.settings.guards:
        try:  # scanners load models (NER: about a second): off the event loop
            guards = await asyncio.to_thread(gateway.build_guards, new)
        except ConfigError:
            await asyncio.gather(*(b.close() for b in fresh.values()), return_exceptions=True)
            raise
    retired = [gateway.backends[n] for n in steps.removed + steps.changed]
    old_router = gateway.router
    gateway.apply(new, backends, router, guards)
    if retired:
        drained = asyncio.get_running_loop().create_task(
            _drain(old_router, retired, new.server.graceful_timeout)
        )
        gateway.background.add(drained)
        drained.add_done_callback(gateway.background.discard)
    log.info(
        "configuration reloaded: added=%s changed=%s removed=%s",
        steps.added, steps.changed, steps.removed,
    )
    return steps.describe(applied=True)


async def _drain(old_router: Any, retired: list[Backend], grace: float) -> None:
    deadline = time.monotonic() + grace
    busy = {id(d.backend): d for d in old_router.deployments()}
    def in_flight() -> bool:
        return any(busy[id(b)].in_flight for b in retired if id(b) in busy)

    # A short poll, only while retiring backends after a reload.
    while time.monotonic() < deadline and in_flight():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.gather(*(b.close() for b in retired), return_exceptions=True)
