"""Every route, every error it can give: status and the exact OpenAI error envelope.

In the style of datasette's error-shape tests: one table of (route, provocation, expected
status, type, code, param), walked for every route of the real route table, so a new route
or a new error path shows up here as a missing case rather than as an untested envelope.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any, NamedTuple, cast

import pytest

from bastion.gateway import routes
from tests.gateway_harness import MASTER_KEY, RunningGateway

MODEL_DETAIL = "/v1/models/{id}"
TRACE_DETAIL = "/api/traces/{id}"
KEY_DETAIL = "/api/keys/{id}"
USER_DETAIL = "/api/users/{id}"  # /api/users/{user}/erase (POST) and /export (GET)
DATA_KEY_DETAIL = "/api/data-keys/{id}"
TEAM_DETAIL = "/api/teams/{id}"
EXPECTED_ROUTES = {
    "/v1/chat/completions": {"POST"},
    "/v1/completions": {"POST"},
    "/v1/embeddings": {"POST"},
    "/v1/models": {"GET"},
    MODEL_DETAIL: {"GET"},
    "/health/live": {"GET"},
    "/health/ready": {"GET"},
    "/api/deployments": {"GET"},
    "/api/config/reload": {"POST"},
    "/api/traces": {"GET"},
    TRACE_DETAIL: {"GET"},
    "/api/stats": {"GET"},
    "/api/stats/values": {"GET"},
    "/api/feedback": {"POST"},
    "/api/keys": {"GET", "POST"},
    KEY_DETAIL: {"GET", "POST", "DELETE"},
    "/api/audit": {"GET"},
    "/api/audit/verify": {"GET"},
    "/api/budgets": {"GET"},
    "/api/teams": {"GET", "POST"},
    TEAM_DETAIL: {"GET", "PATCH", "DELETE"},
    "/api/orgs": {"GET"},
    USER_DETAIL: {"GET", "POST"},
    "/api/data-keys": {"GET"},
    "/api/data-keys/rotate": {"POST"},
    DATA_KEY_DETAIL: {"DELETE"},
    "/metrics": {"GET"},
    "/openapi.json": {"GET"},
}


def route_table() -> dict[str, set[str]]:
    """The gateway's own route table. ``routes.table`` only closes over the gateway, so it
    can be read without building one (which would open an HTTP client)."""
    table = {path: set(methods) for path, methods in routes.table(cast(Any, None)).items()}
    for prefix, methods in routes.prefixed(cast(Any, None)):
        table[prefix + "{id}"] = set(methods)
    return table


ROUTES = route_table()
V1_ROUTES = sorted(p for p in ROUTES if p.startswith(("/v1/", "/api/")))
VALID_BODY = {
    "/v1/chat/completions": {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/completions": {"model": "fake-model", "prompt": "hi"},
    "/v1/embeddings": {"model": "fake-model", "input": "hi"},
    "/api/feedback": {"request_id": "any-request", "value": "up"},
    "/api/keys": {"name": "envelope-test", "role": "user"},
}
# POST routes that take an OpenAI request body (the admin routes take their own)
POST_ROUTES = sorted(
    p for p, m in ROUTES.items() if "POST" in m and p in VALID_BODY and p.startswith("/v1/")
)
OTHER_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def concrete(path: str, model: str = "fake-model") -> str:
    return path.replace("{id}", model)


class Case(NamedTuple):
    method: str
    path: str
    status: int
    type: str
    code: str | None
    param: str | None = None
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] | None = None
    key: str | None = MASTER_KEY


def _cases() -> list[Any]:
    cases: list[Any] = []

    def add(name: str, case: Case) -> None:
        cases.append(pytest.param(case, id=name))

    for path in V1_ROUTES:
        method = sorted(ROUTES[path])[0]
        url = concrete(path)
        body = VALID_BODY.get(path)
        add(f"{path}-no-key-is-401-missing_api_key", Case(
            method, url, 401, "authentication_error", "missing_api_key", body=body, key=None))
        add(f"{path}-wrong-key-is-401-invalid_api_key", Case(
            method, url, 401, "authentication_error", "invalid_api_key", body=body,
            key="sk-wrong"))
        add(f"{path}-basic-scheme-is-401-invalid_api_key", Case(
            method, url, 401, "authentication_error", "invalid_api_key", body=body, key=None,
            headers={"authorization": f"Basic {MASTER_KEY}"}))
        add(f"{path}-empty-bearer-is-401-invalid_api_key", Case(
            method, url, 401, "authentication_error", "invalid_api_key", body=body, key=None,
            headers={"authorization": "Bearer "}))

    for path, allowed in sorted(ROUTES.items()):
        for method in OTHER_METHODS:
            if method not in allowed:
                add(f"{path}-{method}-is-405", Case(
                    method, concrete(path), 405, "invalid_request_error", "method_not_allowed"))

    for path in POST_ROUTES:
        add(f"{path}-unknown-model-is-404-model_not_found", Case(
            "POST", path, 404, "invalid_request_error", "model_not_found", "model",
            body={**VALID_BODY[path], "model": "gpt-99"}))
        for name, raw, param in [
            ("invalid-json", b"{not json", None),
            ("empty-body", b"", None),
            ("json-array", b"[1, 2]", None),
            ("json-string", b'"hi"', None),
            ("json-null", b"null", None),
            ("missing-model", b"{}", "model"),
            ("non-string-model", b'{"model": 7}', "model"),
            ("empty-model", b'{"model": ""}', "model"),
        ]:
            add(f"{path}-{name}-is-400", Case(
                "POST", path, 400, "invalid_request_error", None, param, raw=raw))
        add(f"{path}-multipart-is-415", Case(
            "POST", path, 415, "invalid_request_error", "unsupported_media_type",
            raw=b"--x\r\n\r\n--x--", headers={"content-type": "multipart/form-data; boundary=x"}))
        add(f"{path}-body-over-limit-is-413", Case(
            "POST", path, 413, "invalid_request_error", "payload_too_large",
            raw=b'{"model": "' + b"x" * (9 << 20) + b'"}'))
        add(f"{path}-declared-length-over-limit-is-413", Case(
            "POST", path, 413, "invalid_request_error", "payload_too_large",
            headers={"content-length": str(9 << 20)}))

    for field, bad, param in [
        ("messages", "hello", "messages"),
        ("stream", "yes", "stream"),
        ("temperature", 9, "temperature"),
        ("max_tokens", 1e30, "max_tokens"),
        ("max_tokens", 2**31, "max_tokens"),
        ("seed", 2**70, "seed"),
        ("seed", 2**63, "seed"),
        ("n", 1.5, "n"),
    ]:
        path = "/v1/chat/completions"
        add(f"{path}-bad-{field}-is-400-naming-it", Case(
            "POST", path, 400, "invalid_request_error", None, param,
            body={**VALID_BODY[path], field: bad}))
    add("/v1/completions-missing-prompt-is-400", Case(
        "POST", "/v1/completions", 400, "invalid_request_error", None, "prompt",
        body={"model": "fake-model"}))
    add("/v1/embeddings-empty-input-is-400", Case(
        "POST", "/v1/embeddings", 400, "invalid_request_error", None, "input",
        body={"model": "fake-model", "input": []}))

    for model in ("gpt-99", "fake-model%2Fx", "%ff", ""):
        add(f"{MODEL_DETAIL}-unknown-{model or 'empty'}-is-404-model_not_found", Case(
            "GET", concrete(MODEL_DETAIL, model), 404, "invalid_request_error",
            "model_not_found", "model"))
    for query, param in [("limit=0", "limit"), ("limit=9999", "limit"), ("since=soon", "since"),
                         ("status=teapot", "status"), ("max_cost=lots", "max_cost"),
                         ("cursor=not-a-cursor", "cursor"), ("modle=chat", "modle"),
                         ("since=nan", "since"), ("until=inf", "until"),
                         ("since=-Infinity", "since"), ("min_latency_ms=nan", "min_latency_ms"),
                         ("limit=%C2%B2", "limit"), ("limit=" + "9" * 40, "limit")]:
        add(f"/api/traces-{query}-is-400-naming-{param}", Case(
            "GET", f"/api/traces?{query}", 400, "invalid_request_error", None, param))
    add("/api/traces/{id}-unknown-is-404-trace_not_found", Case(
        "GET", "/api/traces/no-such-trace", 404, "not_found_error", "trace_not_found"))
    add("/api/stats-bad-group-is-400", Case(
        "GET", "/api/stats?group_by=colour", 400, "invalid_request_error", None, "group_by"))
    for query, param in [("bucket=inf", "bucket"), ("bucket=nan", "bucket"),
                         ("bucket=1e400", "bucket"), ("since=nan", "since"),
                         ("groupby=model", "groupby")]:
        add(f"/api/stats-{query}-is-400-naming-{param}", Case(
            "GET", f"/api/stats?{query}", 400, "invalid_request_error", None, param))
    add("/api/feedback-unknown-request-is-404", Case(
        "POST", "/api/feedback", 404, "not_found_error", "trace_not_found", "request_id",
        body={"request_id": "never-answered", "value": "up"}))
    for query, param in [("", "dimension"), ("dimension=session", "dimension"),
                         ("dimension=user&limit=0", "limit"), ("dimension=user&x=1", "x"),
                         ("dimension=user&since=2h&until=3h", "since"),
                         ("dimension=user&until=soon", "until")]:
        add(f"/api/stats/values-{query}-is-400", Case(
            "GET", f"/api/stats/values?{query}", 400, "invalid_request_error", None, param))
    add("/api/stats-since-after-until-is-400", Case(
        "GET", "/api/stats?since=2h&until=3h", 400, "invalid_request_error", None, "since"))
    for name, body, param in [
        ("no-request-id", {"value": "up"}, "request_id"),
        ("bad-value", {"request_id": "r", "value": "meh"}, "value"),
        ("bool-score", {"request_id": "r", "score": True}, "score"),
        ("nothing-given", {"request_id": "r"}, "value"),
    ]:
        add(f"/api/feedback-{name}-is-400", Case(
            "POST", "/api/feedback", 400, "invalid_request_error", None, param, body=body))
    for name, body, param in [
        ("unknown-field", {"rpm": 5}, "rpm"), ("bad-role", {"role": "root"}, "role"),
        ("viewer-without-team", {"role": "viewer"}, "team"),
        ("unknown-model", {"models": ["gpt-99"]}, "models"),
        ("past-expiry", {"expires_in": -5}, "expires_in"),
        ("bad-team", {"team": "a b"}, "team"),
    ]:
        add(f"/api/keys-{name}-is-400", Case(
            "POST", "/api/keys", 400, "invalid_request_error", None, param, body=body))
    for query, param in [("after=-1", "after"), ("limit=0", "limit"), ("since=1h", "since"),
                         ("order=up", "order"), ("before=0", "before"),
                         ("before=x", "before"), ("order=desc&after=3", "after")]:
        add(f"/api/audit-{query}-is-400", Case(
            "GET", f"/api/audit?{query}", 400, "invalid_request_error", None, param))
    add("/api/data-keys-unknown-query-is-400", Case(
        "GET", "/api/data-keys?all=1", 400, "invalid_request_error", None, "all"))
    add("/api/data-keys/rotate-unknown-query-is-400", Case(
        "POST", "/api/data-keys/rotate?now=1", 400, "invalid_request_error", None, "now"))
    for name, path in [("not-a-number", "/api/data-keys/one"), ("unknown", "/api/data-keys/99"),
                       ("negative", "/api/data-keys/-1")]:
        add(f"{DATA_KEY_DETAIL}-{name}-is-404", Case(
            "DELETE", path, 404, "not_found_error", "data_key_not_found", "id"))
    add(f"{DATA_KEY_DETAIL}-current-is-409", Case(
        "DELETE", "/api/data-keys/1", 409, "invalid_request_error", "data_key_in_use", "id"))
    add("/api/keys-bad-status-is-400", Case(
        "GET", "/api/keys?status=lost", 400, "invalid_request_error", None, "status"))
    add("/api/keys/{id}-unknown-is-404", Case(
        "GET", "/api/keys/key_nope", 404, "not_found_error", "key_not_found", "id"))
    add("/api/keys/{id}-unknown-action-is-404", Case(
        "POST", "/api/keys/key_nope/explode", 404, "not_found_error", "unknown_url"))
    for name, method, path, param in [
        ("nul", "POST", "/api/users/a%00b/erase", "user"),
        ("not-utf8", "GET", "/api/users/%ff/export", "user"),
        ("blank", "POST", "/api/users/%20/erase", "user"),
        ("too-long", "POST", "/api/users/" + "x" * 257 + "/erase", "user"),
        ("unknown-query", "POST", "/api/users/u/erase?force=1", "force"),
        ("bad-cursor", "GET", "/api/users/u/export?cursor=nope", "cursor"),
        ("bad-limit", "GET", "/api/users/u/export?limit=0", "limit"),
    ]:
        add(f"{USER_DETAIL}-{name}-is-400", Case(
            method, path, 400, "invalid_request_error", None, param))
    for name, path in [("unknown-action", "/api/users/u/forget"), ("no-user", "/api/users//erase"),
                       ("no-action", "/api/users/u"), ("raw-slash", "/api/users/a/b/erase")]:
        add(f"{USER_DETAIL}-{name}-is-404", Case(
            "POST", path, 404, "not_found_error", "unknown_url"))
    add(f"{USER_DETAIL}-get-erase-is-405", Case(
        "GET", "/api/users/u/erase", 405, "invalid_request_error", "method_not_allowed"))
    for name, body, param in [("no-name", {}, "name"), ("bad-name", {"name": "a b"}, "name"),
                              ("unknown-field", {"name": "t", "colour": "red"}, "colour"),
                              ("bad-org", {"name": "t", "org": ""}, "org")]:
        add(f"/api/teams-{name}-is-400", Case(
            "POST", "/api/teams", 400, "invalid_request_error", None, param, body=body))
    add("/api/teams-unknown-query-is-400", Case(
        "GET", "/api/teams?colour=red", 400, "invalid_request_error", None, "colour"))
    add("/api/orgs-unknown-query-is-400", Case(
        "GET", "/api/orgs?all=1", 400, "invalid_request_error", None, "all"))
    add(f"{TEAM_DETAIL}-unknown-is-404", Case(
        "GET", "/api/teams/nobody", 404, "not_found_error", "team_not_found", "name"))
    add(f"{TEAM_DETAIL}-unregistered-patch-is-404", Case(
        "PATCH", "/api/teams/nobody", 404, "not_found_error", "team_not_found", "name",
        body={"org": "o"}))
    add(f"{TEAM_DETAIL}-unregistered-delete-is-404", Case(
        "DELETE", "/api/teams/nobody", 404, "not_found_error", "team_not_found", "name"))
    add(f"{TEAM_DETAIL}-nested-path-is-404", Case(
        "GET", "/api/teams/a/b", 404, "not_found_error", "unknown_url"))
    add(f"{TEAM_DETAIL}-bad-name-is-400", Case(
        "GET", "/api/teams/%ff", 400, "invalid_request_error", None, "name"))
    add(f"{TEAM_DETAIL}-post-is-405", Case(
        "POST", "/api/teams/nobody", 405, "invalid_request_error", "method_not_allowed"))
    add("/api/feedback-invalid-json-is-400", Case(
        "POST", "/api/feedback", 400, "invalid_request_error", None, None, raw=b"{nope"))
    for path in ("/v1/nothing-here", "/v1/", "/v1", "/v2/models", "/", "/health"):
        add(f"{path}-unknown-path-is-404-unknown_url", Case(
            "GET", path, 404, "not_found_error", "unknown_url"))
    return cases


CASES = _cases()


def send(gw: RunningGateway, case: Case) -> tuple[int, dict[str, str], Any]:
    if case.headers and "content-length" in case.headers:
        # A declared length with no body: the gateway must refuse on the headers alone.
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        try:
            conn.putrequest(case.method, case.path)
            conn.putheader("authorization", f"Bearer {MASTER_KEY}")
            conn.putheader("content-type", "application/json")
            conn.putheader("content-length", case.headers["content-length"])
            conn.endheaders()
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(data)
        finally:
            conn.close()
    return gw.request_full(case.method, case.path, case.body, case.headers, case.raw, case.key)


def test_the_route_table_is_the_one_these_cases_cover() -> None:
    assert ROUTES == EXPECTED_ROUTES, "a route was added or changed: add its error cases here"


@pytest.mark.parametrize("case", CASES)
def test_error_has_status_and_exact_openai_envelope(api_gateway: RunningGateway, case: Case) -> None:
    status, headers, body = send(api_gateway, case)
    assert status == case.status, body
    assert headers["content-type"].startswith("application/json")
    assert isinstance(body, dict) and list(body) == ["error"], body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert error["type"] == case.type, error
    assert error["code"] == case.code, error
    assert error["param"] == case.param, error


@pytest.mark.parametrize("case", CASES)
def test_error_carries_a_request_id(api_gateway: RunningGateway, case: Case) -> None:
    """Every answer, errors included, has an ``x-request-id`` to quote in a bug report."""
    _, headers, _ = send(api_gateway, case)
    assert headers.get("x-request-id"), headers


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_405_names_the_allowed_methods_in_allow_header(
    api_gateway: RunningGateway, path: str
) -> None:
    """RFC 9110 §15.5.6: a 405 response MUST carry ``Allow`` with the route's methods."""
    method = next(m for m in ("DELETE", "PUT", "PATCH") if m not in ROUTES[path])
    status, headers, _ = api_gateway.request_full(method, concrete(path))
    assert status == 405
    assert "allow" in headers, headers
    assert {m.strip() for m in headers["allow"].split(",")} == ROUTES[path]


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_health_probes_need_no_key(api_gateway: RunningGateway, path: str, key: str | None) -> None:
    status, headers, body = api_gateway.request_full("GET", path, key=key)
    assert status == 200, body
    assert headers.get("x-request-id")


@pytest.mark.parametrize("path", V1_ROUTES)
def test_valid_request_to_every_v1_route_succeeds(api_gateway: RunningGateway, path: str) -> None:
    """The control for the error cases: the same requests, done right, are 200."""
    method = sorted(ROUTES[path])[0]
    url = concrete(path)
    body = VALID_BODY.get(path)
    if path == "/api/feedback":  # feedback on a request the gateway answered
        _, sent, _ = api_gateway.request_full("POST", "/v1/chat/completions",
                                              VALID_BODY["/v1/chat/completions"])
        body = {**VALID_BODY[path], "request_id": sent["x-request-id"]}
    if path == KEY_DETAIL:  # a key that exists (DELETE revokes it)
        _, _, made = api_gateway.request_full("POST", "/api/keys", VALID_BODY["/api/keys"])
        url = concrete(path, made["id"])
    if path == DATA_KEY_DETAIL:  # an old data key, once nothing is under it (rotated)
        _, _, keys = api_gateway.request_full("POST", "/api/data-keys/rotate")
        old = keys["keys"][-2]["id"]
        deadline = time.monotonic() + 30
        while keys["keys"][-2]["traces"] and time.monotonic() < deadline:
            time.sleep(0.1)
            keys = api_gateway.request("GET", "/api/data-keys")[1]
        url = concrete(path, str(old))
    if path == TEAM_DETAIL:  # a registered team (DELETE unregisters it)
        api_gateway.request_full("POST", "/api/teams", {"name": "envelope-team"})
        url = concrete(path, "envelope-team")
    if path == USER_DETAIL:  # an export (an erasure is tested in test_erasure)
        url = "/api/users/someone/export"
    if path == "/api/stats/values":
        url = "/api/stats/values?dimension=model"
    if path == TRACE_DETAIL:  # a trace that exists: the gateway's own, once it is stored
        _, sent, _ = api_gateway.request_full("POST", "/v1/chat/completions",
                                              VALID_BODY["/v1/chat/completions"])
        url = concrete(path, sent["x-request-id"])
        deadline = time.monotonic() + 10
        while api_gateway.request("GET", url)[0] == 404 and time.monotonic() < deadline:
            time.sleep(0.05)
    status, headers, answer = api_gateway.request_full(method, url, body)
    assert status in (200, 201), answer
    assert headers.get("x-request-id")
