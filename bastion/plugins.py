"""Builds the plugin manager: built-in plugins first, then installed entry points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from bastion import hookspecs

DEFAULT_PLUGINS = (
    "bastion.backends.builtin",
    "bastion.routing.strategies",
    "bastion.guards.builtin",
)


def plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("bastion")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        module = __import__(name, fromlist=["_"])
        pm.register(module, name)
    if load_entry_points:
        pm.load_setuptools_entrypoints("bastion")
    return pm


def backend_factories(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    factories: dict[str, Callable[..., Any]] = {}

    def register(kind: str, factory: Callable[..., Any]) -> None:
        factories[kind] = factory

    pm.hook.register_backends(register=register)
    return factories


def routing_strategies(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    strategies: dict[str, Callable[..., Any]] = {}

    def register(name: str, strategy: Callable[..., Any]) -> None:
        strategies[name] = strategy

    pm.hook.register_routing_strategies(register=register)
    return strategies


def scanner_factories(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    factories: dict[str, Callable[..., Any]] = {}

    def register(name: str, factory: Callable[..., Any]) -> None:
        factories[name] = factory

    pm.hook.register_scanners(register=register)
    return factories
