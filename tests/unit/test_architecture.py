"""docs/architecture.md names the request path's stages in order; the code must call them
in that order (read from the source, so that a moved stage fails here, not in review)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

from bastion.gateway.app import Gateway
from bastion.gateway.pipeline import OPERATIONS, Pipeline


def _calls(function: object) -> list[str]:
    """The names of the functions a function calls, in source order."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    names: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            names.append((node.lineno, node.col_offset, name))
    return [n for _, _, n in sorted(names)]


def _in_order(calls: list[str], expected: list[str]) -> None:
    positions = [calls.index(name) for name in expected]
    assert positions == sorted(positions), (expected, calls)


def test_handle_runs_the_front_stages_in_order() -> None:
    _in_order(_calls(Gateway.handle), ["_context", "start_trace", "_route", "_authenticate",
                                       "_authorize", "claim", "endpoint", "finish"])


def test_pipeline_runs_every_operation_through_the_same_stages() -> None:
    _in_order(_calls(Pipeline.run), ["decode_json_object", "check", "describe", "allow_model",
                                     "limit", "reserve", "input_guards", "call", "output_guards",
                                     "respond"])
    assert set(OPERATIONS) == {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}


def test_the_document_names_what_the_code_has() -> None:
    doc = (Path(__file__).parents[2] / "docs/architecture.md").read_text()
    for name in ("Pipeline.run", "Pipeline.allow_model", "Pipeline.limit",
                 "Pipeline.input_guards", "Pipeline.output_guards", "Pipeline.respond",
                 "Gateway._authenticate", "Gateway._authorize", "Gateway.finish",
                 "Gateway._internal_error", "OPERATIONS"):
        assert name in doc, name
        owner, _, attr = name.rpartition(".")
        if owner:
            assert hasattr({"Pipeline": Pipeline, "Gateway": Gateway}[owner], attr), name
