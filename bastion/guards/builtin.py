"""Built-in scanners, registered through the same hook a plugin uses.

Each is imported when a policy first asks for it (the NER pipeline and the injection
classifier load weights; a gateway without those policies never pays for them).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from bastion.guards.base import Scanner
from bastion.hookspecs import hookimpl

# name -> "module:factory"; factory(options) -> Scanner
BUILTIN_SCANNERS = {
    "pii": "bastion.guards.pii:make_scanner",
    "secrets": "bastion.guards.secrets:make_scanner",
    "injection": "bastion.guards.injection:make_scanner",
    "toxicity": "bastion.guards.output.toxicity:make_scanner",
    "banned_topics": "bastion.guards.output.topics:make_scanner",
    "banned_substrings": "bastion.guards.output.substrings:make_scanner",
    "canary": "bastion.guards.output.canary:make_scanner",
    "json_schema": "bastion.guards.output.schema:make_scanner",
}


def _lazy(target: str) -> Callable[[Mapping[str, Any]], Scanner]:
    module_name, _, attr = target.partition(":")

    def factory(options: Mapping[str, Any]) -> Scanner:
        module = importlib.import_module(module_name)
        make: Callable[[Mapping[str, Any]], Scanner] = getattr(module, attr)
        return make(options)

    factory.__qualname__ = f"lazy[{target}]"
    return factory


@hookimpl
def register_scanners(register: Callable[[str, Callable[..., Any]], None]) -> None:
    for name, target in BUILTIN_SCANNERS.items():
        register(name, _lazy(target))
