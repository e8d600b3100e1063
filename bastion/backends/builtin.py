"""Registers the built-in backends through the same hook a third-party plugin uses."""

from __future__ import annotations

from typing import Any

from bastion.hookspecs import RegisterBackend, hookimpl


def _llama_cpp(spec: Any) -> Any:
    from bastion.backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(spec)


def _openai(spec: Any) -> Any:
    from bastion.backends.upstream import UpstreamBackend

    return UpstreamBackend(spec)


def _local_embedding(spec: Any) -> Any:
    from bastion.backends.embeddings import LocalEmbeddingBackend

    return LocalEmbeddingBackend(spec)


def _anthropic(spec: Any) -> Any:
    from bastion.backends.anthropic import AnthropicBackend

    return AnthropicBackend(spec)


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register("llama_cpp", _llama_cpp)
    register("openai", _openai)
    register("local_embedding", _local_embedding)
    register("anthropic", _anthropic)
