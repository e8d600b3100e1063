"""The OpenAPI document: valid OpenAPI 3.1, built from the endpoint table (every route in
it, nothing else), every operation's errors in the OpenAI envelope, security and
permissions as the code has them, and request schemas that agree with the checks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import jsonschema
import orjson
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from bastion.api import openapi
from bastion.api.openapi import Reply, Spec, documented
from bastion.errors import InvalidRequest
from bastion.gateway.app import Gateway
from bastion.gateway.pipeline import OPERATIONS
from bastion.governance import admin
from bastion.governance.roles import GRANTS, ROLES, permission_for
from bastion.protocol import schemas
from bastion.protocol.requests import (
    check_chat_request,
    check_completion_request,
    check_embedding_request,
)
from bastion.server.types import Request
from tests.openapi_document import built_gateway, route_tables

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
OPEN = {"/health/live", "/health/ready", "/openapi.json"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = built_gateway(tmp_path_factory.mktemp("openapi"))
    yield gw
    asyncio.run(gw.close())


@pytest.fixture(scope="module")
def doc(gateway: Gateway) -> dict[str, Any]:
    return openapi.document(*route_tables(gateway))


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method.upper(), item[method]


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on any violation of the 3.1 schema


def test_an_invalid_document_is_refused_by_the_validator(doc: dict[str, Any]) -> None:
    broken = orjson.loads(orjson.dumps(doc))
    broken["paths"]["/v1/models"]["get"]["parameters"].append({"name": "x", "in": "body"})
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_route_of_the_table_is_in_the_document_and_nothing_else(
        gateway: Gateway, doc: dict[str, Any]) -> None:
    table, prefixed = route_tables(gateway)
    described = {(p, m) for p, m, _ in operations(doc)}
    fixed = {(p, m) for p, methods in table.items() for m in methods}
    assert fixed <= described, fixed - described
    by_prefix: dict[str, set[str]] = {}
    for path, method in described - fixed:
        prefix = next((p for p, _ in prefixed if path.startswith(p)), None)
        assert prefix is not None, f"{method} {path} is not a route of the gateway"
        by_prefix.setdefault(prefix, set()).add(method)
    assert by_prefix == {p: set(methods) for p, methods in prefixed}


def test_every_route_is_described(gateway: Gateway, doc: dict[str, Any]) -> None:
    assert openapi.undocumented(*route_tables(gateway)) == []
    stubs = [f"{m} {p}" for p, m, op in operations(doc) if op.get("x-bastion-undocumented")]
    assert stubs == []
    assert all(op.spec is not None for op in OPERATIONS.values())


def test_a_route_without_a_description_is_reported_and_still_listed() -> None:
    async def handler(request: Any, ctx: Any) -> Any:
        raise NotImplementedError

    async def other(request: Any, ctx: Any) -> Any:
        raise NotImplementedError

    described = documented(Spec("Described", "meta", {200: Reply("OK", {})}))(other)
    table: Any = {"/api/new": {"GET": handler}, "/api/old": {"GET": described}}
    prefixed: Any = [("/api/things/", {"DELETE": handler})]
    assert openapi.undocumented(table, prefixed) == ["GET /api/new", "DELETE /api/things/{id}"]
    doc = openapi.document(table, prefixed)
    stub = doc["paths"]["/api/new"]["get"]
    assert stub["x-bastion-undocumented"] is True and "401" in stub["responses"]
    validate(doc)


def test_a_prefixed_spec_outside_its_prefix_is_refused() -> None:
    async def handler(request: Any, ctx: Any) -> Any:
        raise NotImplementedError

    wrong = documented(Spec("X", "meta", {200: Reply("OK", {})}, path="/api/other/{id}"))
    with pytest.raises(ValueError, match="prefix"):
        openapi.document({}, [("/api/things/", {"GET": wrong(handler)})])


def _is_envelope(response: dict[str, Any]) -> bool:
    return response.get("content", {}).get("application/json", {}).get("schema") == \
        openapi.ERROR


def test_every_error_of_every_operation_is_the_envelope(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        responses = op["responses"]
        assert {"400", "500"} <= set(responses), (method, path)
        for status, response in responses.items():
            if status[0] in "45" and (path, status) != ("/health/ready", "503"):
                assert _is_envelope(response), (method, path, status)
            assert response["headers"]["x-request-id"] == {
                "$ref": "#/components/headers/RequestId"}, (method, path, status)
        if openapi.guarded(path):
            assert {"401", "403"} <= set(responses), (method, path)
            assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
        if "requestBody" in op:
            assert {"413", "415"} <= set(responses), (method, path)
    assert not _is_envelope(doc["paths"]["/health/ready"]["get"]["responses"]["503"])


def test_inference_documents_the_upstream_and_routing_failures(doc: dict[str, Any]) -> None:
    for path in OPERATIONS:
        responses = doc["paths"][path]["post"]["responses"]
        assert {"404", "429", "502", "503", "504", "4XX"} <= set(responses), path
        assert "text/event-stream" in responses["200"]["content"] or path.endswith(
            "embeddings")


def test_security_and_permissions_are_the_codes(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        if path in OPEN:
            assert op["security"] == [] and "x-bastion-permission" not in op, path
            continue
        assert openapi.guarded(path) or path == "/metrics", f"{method} {path}: open?"
        assert op["security"] == [{"bearerAuth": []}], (method, path)
        needed = permission_for(path)
        assert op["x-bastion-permission"] == needed, (method, path)
        assert op["x-bastion-roles"] == [r for r in ROLES if needed in GRANTS[r]]
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert doc["paths"]["/api/keys/{id}/rotate"]["post"]["x-bastion-permission"] == "keys"
    assert doc["paths"]["/api/audit"]["get"]["x-bastion-roles"] == ["admin"]


def test_operation_ids_are_unique(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


def test_the_key_body_names_every_field_the_api_takes(doc: dict[str, Any]) -> None:
    body = doc["paths"]["/api/keys"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["properties"]) == admin.CREATE_FIELDS
    assert body["schema"]["additionalProperties"] is False


# ------------------------------------------------------------ schemas agree with checks
def _agree(check: Any, schema: dict[str, Any], body: dict[str, Any]) -> None:
    """The schema and the check say the same of ``body``."""
    valid = jsonschema.Draft202012Validator(schema).is_valid(body)
    try:
        check(orjson.loads(orjson.dumps(body)))
    except InvalidRequest:
        accepted = False
    else:
        accepted = True
    assert valid == accepted, (body, "schema says", valid, "check says", accepted)


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


CHAT_CASES = [
    _chat(),
    _chat(stream=True, stream_options={"include_usage": True}),
    _chat(stream="yes"),
    _chat(max_tokens=0), _chat(max_tokens=1), _chat(max_tokens=2**31),
    _chat(max_completion_tokens=2**31 - 1),
    _chat(temperature=2.0), _chat(temperature=2.01), _chat(temperature=-0.1),
    _chat(top_p=1.0), _chat(top_p=1.5), _chat(n=128), _chat(n=129),
    _chat(presence_penalty=-2.5), _chat(frequency_penalty=2),
    _chat(seed=2**63 - 1), _chat(seed=-(2**63)), _chat(seed=1.5),
    _chat(stop="x"), _chat(stop=["a", "b", "c", "d"]), _chat(stop=["a"] * 5), _chat(stop=[1]),
    _chat(logit_bias={"42": 5}), _chat(logit_bias={"42": 101}),
    _chat(logit_bias={"x": 1}), _chat(logit_bias={"\u00b2": 1}),  # '²'.isdigit()
    _chat(user="u"), _chat(user=5), _chat(metadata={"session_id": "s"}),
    _chat(metadata={"a": 1}),
    _chat(logprobs=True, top_logprobs=20), _chat(logprobs=True, top_logprobs=21),
    _chat(top_logprobs=2), _chat(logprobs=False, top_logprobs=2),
    _chat(top_logprobs=None),
    _chat(response_format={"type": "json_object"}),
    _chat(response_format={"type": "json_schema", "json_schema": {"name": "x",
                                                                  "schema": {}}}),
    _chat(response_format={"type": "yaml"}), _chat(response_format="json"),
    _chat(tools=[]), _chat(tools={}),
    {"model": "m", "messages": []}, {"model": "m"}, {"messages": [{"role": "user",
                                                                    "content": "x"}]},
    {"model": "", "messages": [{"role": "user", "content": "x"}]},
    _chat(messages=[{"role": "robot", "content": "x"}]),
    _chat(messages=[{"role": "user"}]), _chat(messages=[{"role": "assistant"}]),
    _chat(messages=[{"role": "assistant", "content": None, "tool_calls": []}]),
    _chat(messages=[{"role": "tool", "content": "r"}]),
    _chat(messages=[{"role": "tool", "content": "r", "tool_call_id": "c1"}]),
    _chat(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]),
    _chat(messages=[{"role": "user", "content": [{"type": "text"}]}]),
    _chat(messages=[{"role": "user", "content": [{"text": "hi"}]}]),
    _chat(messages=[{"role": "user", "content": 5}]),
    _chat(messages=["hi"]),
]


@pytest.mark.parametrize("body", CHAT_CASES)
def test_the_chat_schema_accepts_what_the_check_accepts(body: dict[str, Any]) -> None:
    _agree(check_chat_request, schemas.CHAT_REQUEST, body)


COMPLETION_CASES = [
    {"model": "m", "prompt": "x"}, {"model": "m", "prompt": ""},
    {"model": "m", "prompt": ["a", "b"]}, {"model": "m", "prompt": []},
    {"model": "m", "prompt": [1]}, {"model": "m"},
    {"model": "m", "prompt": "x", "logprobs": 5}, {"model": "m", "prompt": "x", "logprobs": 6},
    {"model": "m", "prompt": "x", "echo": "no"}, {"model": "m", "prompt": "x", "suffix": 1},
]


@pytest.mark.parametrize("body", COMPLETION_CASES)
def test_the_completion_schema_accepts_what_the_check_accepts(body: dict[str, Any]) -> None:
    _agree(check_completion_request, schemas.COMPLETION_REQUEST, body)


EMBEDDING_CASES = [
    {"model": "m", "input": "x"}, {"model": "m", "input": ""},
    {"model": "m", "input": ["a", "b"]}, {"model": "m", "input": ["a", ""]},
    {"model": "m", "input": []}, {"model": "m", "input": [1, 2]},
    {"model": "m", "input": [[1], [2, 3]]}, {"model": "m", "input": [[1], []]},
    {"model": "m", "input": ["a"] * 2048}, {"model": "m", "input": ["a"] * 2049},
    {"model": "m", "input": [[1]] * 2049}, {"model": "m", "input": [1, "a"]},
    {"model": "m", "input": "x", "encoding_format": "base64"},
    {"model": "m", "input": "x", "encoding_format": "int8"},
    {"model": "m", "input": "x", "dimensions": 0}, {"model": "m", "input": 5},
]


@pytest.mark.parametrize("body", EMBEDDING_CASES)
def test_the_embedding_schema_accepts_what_the_check_accepts(body: dict[str, Any]) -> None:
    _agree(check_embedding_request, schemas.EMBEDDING_REQUEST, body)


# ------------------------------------------------------------------------ the endpoint
def test_the_endpoint_builds_the_document_once_and_serves_its_bytes() -> None:
    calls = []

    def source() -> Any:
        calls.append(1)
        return {}, []

    serve = openapi.endpoint(source)
    request = Request("GET", "/openapi.json", "", [], b"", None, 0.0)
    first = asyncio.run(serve(request, None))  # type: ignore[arg-type]
    second = asyncio.run(serve(request, None))  # type: ignore[arg-type]
    assert first.status == 200 and first.body is second.body and len(calls) == 1
    served = orjson.loads(first.body)
    assert served["paths"] == {} and served["openapi"] == "3.1.0"
    assert openapi.specs_of(serve)[0] is openapi.OPENAPI_SPEC
