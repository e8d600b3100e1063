"""Schemathesis over ``/openapi.json`` against a running gateway (fake upstream models, a
master key, tracing on): every operation, sent what its schema allows and what it refuses,
answers no 5xx, only documented statuses, content types, headers and bodies (a stream's
events too), and refuses what the schema refuses; and no ``/v1`` or ``/api`` operation
answers anything but 401 to a request without the right key.

Stateless checks, a bounded number of examples per operation, derandomized: the same
cases every run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from bastion.api.openapi import guarded
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, chat, traced_gateway
from tests.openapi_document import MODELS, built_document

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance,
          negative_data_rejection, unsupported_method, missing_required_header]
BOUNDED = settings(max_examples=25, derandomize=True, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
DOCUMENT = built_document()  # schemathesis parametrizes at collection, before any gateway
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(with_security_parameters=False)
keyless = schema.include(path_regex="^/(v1|api)/")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with FakeUpstream().start() as up:
        gateway = traced_gateway(up, tmp_path_factory.mktemp("schemathesis"), **{
            "server.master_key": MASTER_KEY,
            "models": [{"name": n, "backend": "openai", "base_url": up.base_url}
                       for n in MODELS],
        })
        yield gateway
        gateway.stop()


def _new_key(gw: RunningGateway, **body: Any) -> dict[str, Any]:
    status, made = gw.request("POST", "/api/keys", {"team": "t", **body})
    assert status == 201, made
    return dict(made)


@pytest.fixture(scope="module")
def known(gw: RunningGateway) -> dict[str, str]:
    """Real ids for the steered cases: a key, an answered request."""
    status, headers, body = chat(gw)
    assert status == 200, body
    return {"key": _new_key(gw, name="schemathesis")["id"], "request": headers["x-request-id"]}


_CASES = itertools.count()


def _steer(case: Any, gw: RunningGateway, known: dict[str, str]) -> None:
    """Every other positive case gets real model names and ids, and loses the generated
    x-bastion-* headers (else nearly every case stops at a 400 or 404 before the rest of
    the path); the others go as generated. A client's deadline too short to be met is its
    own 504, not a server error: it gets 30 s."""
    headers = case.headers if case.headers is not None else {}
    try:
        timeout = float(headers.get("x-bastion-timeout", "inf"))
    except ValueError:
        timeout = float("inf")  # invalid: a 400, as generated
    if timeout < 30:
        headers["x-bastion-timeout"] = "30"
    if (case.meta is not None and case.meta.generation.mode.is_negative) or next(_CASES) % 2:
        return
    for name in ("x-bastion-timeout", "x-bastion-priority", "x-bastion-tenant"):
        headers.pop(name, None)
    body = case.body
    if isinstance(body, dict):
        if isinstance(body.get("model"), str):
            body["model"] = MODELS[0]
        if isinstance(body.get("request_id"), str):
            body["request_id"] = known["request"]
    params = case.path_parameters or {}
    if "model" in params:
        params["model"] = MODELS[0]
    if case.path.startswith("/api/traces/"):
        params["id"] = known["request"]
    elif case.path.endswith("/rotate"):  # each rotation ends the key: a fresh one
        params["id"] = _new_key(gw)["id"]
    elif case.path.startswith("/api/keys/"):
        params["id"] = known["key"]


def _check_stream_ends(response: Any) -> None:
    """A streamed answer ends with ``data: [DONE]`` or with an error event (schemathesis
    validates each event against the document)."""
    if not response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        return
    events = [e.strip() for e in response.content.split(b"\n\n") if e.strip()]
    assert events, response.content
    last = events[-1]
    if last != b"data: [DONE]":
        error = orjson.loads(last.removeprefix(b"data: "))["error"]
        assert set(error) == {"message", "type", "param", "code"}, last


@schema.parametrize()
@BOUNDED
def test_every_operation_answers_as_documented(case: Any, gw: RunningGateway,
                                               known: dict[str, str]) -> None:
    _steer(case, gw, known)
    response = case.call_and_validate(base_url=gw.base_url, headers=AUTH, checks=CHECKS)
    _check_stream_ends(response)


def _refused(case: Any, response: Any, code: str) -> None:
    """A 401 with the envelope; a method the path does not take may be a 405 first (the
    route is found before the key is read: that tells the route's methods, nothing else)."""
    what = (case.method, case.formatted_path, response.status_code, response.text[:300])
    if case.method.upper() != case.operation.method.upper():
        assert response.status_code in (401, 405), what
        return
    assert response.status_code == 401, what
    assert response.headers["www-authenticate"] == ['Bearer realm="bastion"'], what
    assert response.json()["error"]["code"] == code, what


@keyless.parametrize()
@settings(BOUNDED, max_examples=5)
def test_no_operation_answers_without_a_key(case: Any, gw: RunningGateway) -> None:
    assert guarded(case.path)
    _refused(case, case.call(base_url=gw.base_url), "missing_api_key")


@pytest.fixture(scope="module")
def wrong_keys(gw: RunningGateway) -> list[tuple[str, str]]:
    """A wrong master key, a token shaped like a virtual key, a revoked and an expired
    key: (token, the code of the 401)."""
    revoked = _new_key(gw, name="revoked")
    status, _ = gw.request("POST", f"/api/keys/{revoked['id']}/revoke")
    assert status == 200
    expiring = _new_key(gw, name="expiring", expires_in=0.05)
    time.sleep(0.1)
    return [("sk-not-the-master-key", "invalid_api_key"),
            ("bst-" + "0" * 43, "invalid_api_key"),
            (revoked["key"], "invalid_api_key"),
            (expiring["key"], "expired_api_key")]


@keyless.parametrize()
@settings(BOUNDED, max_examples=5)
def test_no_operation_answers_to_a_wrong_key(case: Any, gw: RunningGateway,
                                             wrong_keys: list[tuple[str, str]]) -> None:
    for token, code in wrong_keys:
        response = case.call(base_url=gw.base_url, headers={"authorization": f"Bearer {token}"})
        _refused(case, response, code)


def test_the_gateway_serves_the_document_the_code_builds(gw: RunningGateway) -> None:
    status, headers, served = gw.request_full("GET", "/openapi.json", key=None)
    assert status == 200 and headers["content-type"] == "application/json"
    assert served == orjson.loads(orjson.dumps(DOCUMENT))
    again = gw.request_full("GET", "/openapi.json", key=None)[2]
    assert again == served


def test_metrics_need_a_key_where_the_document_says(gw: RunningGateway) -> None:
    status, body = gw.request("GET", "/metrics", key=None)
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    assert DOCUMENT["paths"]["/metrics"]["get"]["security"] == [{"bearerAuth": []}]
    status, _ = gw.request("GET", "/metrics")
    assert status == 200
