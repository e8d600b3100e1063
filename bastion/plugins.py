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
    "bastion.observe.builtin",
    "bastion.governance.subjects",
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


def _registered(hook: Any) -> dict[str, Callable[..., Any]]:
    """What the plugins register through one ``register_*`` hook, by name. pluggy calls
    the most recently registered plugin first and its entry is kept, so an installed
    plugin (entry points load after the built-ins) can replace a built-in by its name."""
    found: dict[str, Callable[..., Any]] = {}

    def register(name: str, value: Callable[..., Any]) -> None:
        found.setdefault(name, value)

    hook(register=register)
    return found


def backend_factories(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Backend kind -> factory(model_spec)."""
    return _registered(pm.hook.register_backends)


def routing_strategies(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Strategy name -> strategy(deployments, state)."""
    return _registered(pm.hook.register_routing_strategies)


def scanner_factories(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Guard scanner name -> factory(options) (``bastion.guards.base``)."""
    return _registered(pm.hook.register_scanners)


def observer_factories(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Observer name -> factory(gateway) -> observer(ctx) or None (``bastion.observe.builtin``)."""
    return _registered(pm.hook.register_observers)


def eraser_factories(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Eraser name -> factory(gateway) -> eraser(subject) or None
    (``bastion.governance.subjects``)."""
    return _registered(pm.hook.register_erasers)
