"""Grammars that constrain the embedded model: ``response_format`` and forced tool calls.

llama.cpp turns a JSON schema into a GBNF grammar (``llama_cpp.llama_grammar``), but its
converter silently ignores many keywords (``minimum``, ``not``, ``if``/``then``,
``patternProperties``, most ``format`` values ...) and asserts on others (remote ``$ref``).
An ignored keyword means output that parses but does not validate, which is exactly what
``strict: true`` promises not to happen, so :func:`check_schema` refuses every keyword the
converter cannot enforce with a 400 naming it, before any grammar is built.

A forced tool call (``tool_choice`` "required" or a named function) is generated as the
text ``{"name": "<tool>", "arguments": <object>}``: the wrapper is literal in the grammar
(one alternative per allowed tool), so :mod:`bastion.backends.llama_tools` can split the
name from the streamed arguments without parsing ambiguity.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidRequest

# Keywords that constrain valid instances but that llama.cpp's converter ignores.
_UNENFORCED = (
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "minProperties",
    "maxProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "additionalItems",
)
_FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4",
                      "uuid5"})
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
TOOL_PREFIX = '{"name": "'
TOOL_INFIX = '", "arguments": '


def _refuse(feature: str, path: str, param: str) -> InvalidRequest:
    where = f" at {path}" if path else ""
    return InvalidRequest(
        f"The embedded model cannot enforce the JSON schema feature '{feature}'{where}: "
        "remove it or use an upstream model",
        param=param,
    )


def check_schema(schema: Any, param: str, path: str = "#") -> None:
    """Raises InvalidRequest naming the first schema feature the grammar cannot enforce."""
    if isinstance(schema, bool):
        if schema is False:
            raise _refuse("false schema", path, param)
        return
    if not isinstance(schema, dict):
        raise InvalidRequest(f"JSON schema at {path} must be an object", param=param)
    for key in _UNENFORCED:
        if key in schema:
            raise _refuse(key, path, param)
    ref = schema.get("$ref")
    if ref is not None and not (isinstance(ref, str) and ref.startswith("#/")):
        raise _refuse(f"$ref {ref!r} (only local '#/...' references)", path, param)
    fmt = schema.get("format")
    if fmt is not None and fmt not in _FORMATS:
        raise _refuse(f"format {fmt!r}", path, param)
    kind = schema.get("type")
    for t in kind if isinstance(kind, list) else [kind] if kind is not None else []:
        if t not in _TYPES:
            raise InvalidRequest(f"JSON schema at {path} has unknown type {t!r}", param=param)
    if isinstance(kind, list) and len(schema) > 1 and any(k in schema for k in (
        "properties", "items", "enum", "const", "pattern", "minLength", "maxLength"
    )):
        raise _refuse("a list of types combined with other constraints", path, param)
    if "pattern" in schema:
        pattern = schema["pattern"]
        if not (isinstance(pattern, str) and pattern.startswith("^") and pattern.endswith("$")):
            raise _refuse("pattern without ^...$ anchors", path, param)
        for other in ("minLength", "maxLength", "format"):
            if other in schema:
                raise _refuse(f"pattern combined with {other}", path, param)
    if "allOf" in schema:
        for i, part in enumerate(schema["allOf"] or ()):
            if not isinstance(part, dict) or not ("properties" in part or "$ref" in part):
                raise _refuse("allOf of schemas without properties", f"{path}/allOf/{i}", param)
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        check_schema(additional, param, f"{path}/additionalProperties")
    items = schema.get("items")
    if isinstance(items, dict | bool):
        check_schema(items, param, f"{path}/items")
    elif isinstance(items, list):
        for i, sub in enumerate(items):
            check_schema(sub, param, f"{path}/items/{i}")
    for key in _SUBSCHEMA_MAPS:
        for name, sub in (schema.get(key) or {}).items():
            check_schema(sub, param, f"{path}/{key}/{name}")
    for key in _SUBSCHEMA_LISTS:
        for i, sub in enumerate(schema.get(key) or ()):
            check_schema(sub, param, f"{path}/{key}/{i}")


def _converter() -> Any:
    from llama_cpp.llama_grammar import SchemaConverter

    return SchemaConverter(  # type: ignore[no-untyped-call]
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )


def schema_grammar(schema: Any, param: str) -> str:
    """The GBNF grammar for one JSON schema (checked first)."""
    check_schema(schema, param)
    converter = _converter()
    try:
        resolved = converter.resolve_refs(schema, "request")
        converter.visit(resolved, "")
        return str(converter.format_grammar())
    except Exception as exc:  # the converter asserts and raises on what it cannot take
        raise InvalidRequest(f"Unsupported JSON schema: {exc}", param=param) from exc


def response_format_grammar(fmt: dict[str, Any]) -> str | None:
    """The grammar for a ``response_format`` (None for plain text)."""
    from llama_cpp import llama_grammar

    kind = fmt.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return str(llama_grammar.JSON_GBNF)
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise InvalidRequest(
                "'response_format.json_schema' must be an object", param="response_format"
            )
        schema = spec.get("schema")
        if schema is None:
            return str(llama_grammar.JSON_GBNF)
        return schema_grammar(schema, "response_format")
    raise InvalidRequest(f"Unsupported response_format type {kind!r}", param="response_format")


@dataclass(frozen=True)
class ToolPlan:
    """A forced tool call: the grammar and the tools it may call (name -> description)."""

    grammar: str
    tools: dict[str, dict[str, Any]]


def _function(tool: Any, i: int) -> dict[str, Any]:
    fn = tool.get("function") if isinstance(tool, dict) else None
    if not (
        isinstance(tool, dict)
        and tool.get("type", "function") == "function"
        and isinstance(fn, dict)
        and isinstance(fn.get("name"), str)
        and re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", fn["name"])
    ):
        raise InvalidRequest(
            f"'tools[{i}]' must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}} "
            "with a name of letters, digits, '_', '.' or '-'",
            param="tools",
        )
    params = fn.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidRequest(f"'tools[{i}].function.parameters' must be an object", param="tools")
    return fn


def tool_plan(tools: Any, choice: Any) -> ToolPlan | None:
    """The grammar forcing a tool call, or None when the model answers in text.

    ``none`` and ``auto`` (the default) answer in plain text; ``required`` calls one of the
    tools, a named function calls that one."""
    if choice is None or choice in ("none", "auto"):
        return None
    if not isinstance(tools, list) or not tools:
        raise InvalidRequest("'tool_choice' needs a non-empty 'tools' array", param="tool_choice")
    functions = [_function(tool, i) for i, tool in enumerate(tools)]
    if choice == "required":
        chosen = functions
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        name = choice["function"]["name"]
        chosen = [fn for fn in functions if fn["name"] == name]
        if not chosen:
            raise InvalidRequest(f"tool_choice names '{name}', which is not in 'tools'",
                                 param="tool_choice")
    else:
        raise InvalidRequest(
            "'tool_choice' must be 'none', 'auto', 'required' or "
            '{"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    converter = _converter()
    alternatives = []
    for i, fn in enumerate(chosen):
        schema = fn.get("parameters") or {"type": "object", "properties": {}}
        check_schema(schema, "tools", f"tools[{fn['name']}].parameters")
        try:
            resolved = converter.resolve_refs(schema, f"tool{i}")
            rule = converter.visit(resolved, f"tool{i}-args")
        except Exception as exc:  # the converter asserts and raises on what it cannot take
            raise InvalidRequest(
                f"Unsupported JSON schema in tool '{fn['name']}': {exc}", param="tools"
            ) from exc
        head = converter._format_literal(TOOL_PREFIX + fn["name"] + TOOL_INFIX)
        alternatives.append(f'{head} {rule} "}}"')
    converter._add_rule("root", " | ".join(alternatives))
    return ToolPlan(str(converter.format_grammar()), {fn["name"]: fn for fn in chosen})


def tool_instructions(plan: ToolPlan) -> str:
    """System text telling the model which functions it calls (the template has no slot)."""
    listed = json.dumps(
        [
            {k: fn[k] for k in ("name", "description", "parameters") if k in fn}
            for fn in plan.tools.values()
        ]
    )
    return (
        f"You can call these functions: {listed}\n"
        'Answer with one call as JSON: {"name": <function name>, "arguments": <object>}.'
    )
