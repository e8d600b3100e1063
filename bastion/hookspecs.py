"""Bastion's extension hooks. Built-in parts register through these too.

A plugin is a module or object with ``@hookimpl`` functions, installed under the
``bastion`` entry-point group (``[project.entry-points.bastion]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("bastion")
hookimpl = pluggy.HookimplMarker("bastion")

# register(kind, factory): factory(model_spec) -> Backend
RegisterBackend = Callable[[str, Callable[..., Any]], None]


@hookspec
def register_backends(register: RegisterBackend) -> None:
    """Register backend factories by kind (the ``backend:`` value of a model in config)."""


@hookspec
def register_routing_strategies(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register load-balancing strategies by name: strategy(deployments, state) -> ordered."""


@hookspec
def register_scanners(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register guard scanners by name: factory(options: Mapping) -> Scanner
    (``bastion.guards.base``)."""


@hookspec
def register_observers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register request observers by name: factory(gateway) -> observer(ctx) or None (off).
    Every finished request's context goes to each observer once, on the event loop (keep
    it quick; queue anything slow). Factories are asked again after a config reload."""


@hookspec
def register_erasers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register data erasers by name: factory(gateway) -> eraser(Subject) -> int (or an
    awaitable of it; entries dropped) or None (off). ``bastion users erase`` calls each
    after the store's rows are gone (:mod:`bastion.governance.subjects`)."""
