"""The dashboard's sign-in through a real gateway: cookie flags, CSRF on every change made
with a session, logout, expiry, revoked keys, forged cookies, roles refused server-side,
the one-time link of a gateway without a master key, and the assets' delivery."""

from __future__ import annotations

import gzip
import http.client
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from bastion.config import Settings
from bastion.governance.keys import KeyTable
from bastion.ui.sessions import COOKIE, Sessions, login_token, session_key
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, traced_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with FakeUpstream().start() as up:
        gateway = traced_gateway(up, tmp_path_factory.mktemp("ui"), **{
            "server.master_key": MASTER_KEY,
            "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
        })
        yield gateway
        gateway.stop()


def call(gw: RunningGateway, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        out = {k.lower(): v for k, v in resp.getheaders()}
        cookies = resp.headers.get_all("set-cookie") or []
        if cookies:
            out["set-cookie"] = "\n".join(cookies)
        return resp.status, out, data
    finally:
        conn.close()


def sign_in(gw: RunningGateway, key: str, next_path: str = "/ui/",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    form = urlencode({"key": key, "next": next_path}).encode()
    return call(gw, "POST", "/ui/login", form, {
        "content-type": "application/x-www-form-urlencoded", **(headers or {})})


def session_of(headers: dict[str, str]) -> str:
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}="), cookie
    return cookie.split(";", 1)[0].split("=", 1)[1]


def csrf_of(gw: RunningGateway, cookie: str, page: str = "/ui/") -> str:
    status, _, body = call(gw, "GET", page, headers={"cookie": f"{COOKIE}={cookie}"})
    assert status == 200, body
    marker = b'<meta name="csrf-token" content="'
    start = body.index(marker) + len(marker)
    return body[start:body.index(b'"', start)].decode()


def sessions_of(gw: RunningGateway) -> Sessions:
    """A Sessions with the gateway's own signing key (from the same deployment secret)."""
    sessions = Sessions(session_key(gw.settings), KeyTable(b"\0" * 32),
                        gw.settings.ui.session_hours * 3600)
    master = gw.settings.server.master_key
    sessions.configure(master.get_secret_value().encode() if master else None,
                       master is None, sessions.lifetime_s, secure=False)
    return sessions


def make_key(gw: RunningGateway, **body: Any) -> dict[str, Any]:
    status, made = gw.request("POST", "/api/keys", body)
    assert status == 201, made
    return dict(made)


def test_a_page_without_a_session_goes_to_the_sign_in_page(gw: RunningGateway) -> None:
    status, headers, _ = call(gw, "GET", "/ui/traces")
    assert status == 303 and headers["location"] == "/ui/login?next=/ui/traces"
    status, headers, body = call(gw, "GET", "/ui/login")
    assert status == 200 and b'name="key"' in body
    assert headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    status, headers, _ = call(gw, "GET", "/ui")
    assert status == 303 and headers["location"] == "/ui/"


def test_signing_in_with_the_master_key_sets_a_strict_httponly_cookie(gw: RunningGateway,
                                                                      ) -> None:
    status, headers, _ = sign_in(gw, MASTER_KEY, "/ui/traces?model=chat")
    assert status == 303 and headers["location"] == "/ui/traces?model=chat"
    flags = headers["set-cookie"].split("; ")
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(flags), flags
    assert "Secure" not in flags  # plain HTTP here (tests/integration/test_dashboard_e2e
    cookie = session_of(headers)  # covers nothing of TLS; the flag follows server.tls)
    assert MASTER_KEY not in cookie and MASTER_KEY.encode() not in orjson.dumps(cookie)
    status, _, body = call(gw, "GET", "/ui/", headers={"cookie": f"{COOKIE}={cookie}"})
    assert status == 200 and b'data-page="overview"' in body and b"master key" in body
    # the API takes the cookie in place of a key
    status, _, body = call(gw, "GET", "/api/stats?since=1h", headers={
        "cookie": f"{COOKIE}={cookie}"})
    assert status == 200, body


@pytest.mark.parametrize("next_path", ["//evil.example/", "https://evil.example/",
                                       "/ui/\\evil", "/elsewhere", "/ui/\x00x"])
def test_sign_in_never_redirects_off_the_dashboard(gw: RunningGateway, next_path: str) -> None:
    status, headers, _ = sign_in(gw, MASTER_KEY, next_path)
    assert status == 303 and headers["location"] == "/ui/"


@pytest.mark.parametrize("key", ["", " ", "wrong", "bst-" + "x" * 43, MASTER_KEY + "x"])
def test_a_wrong_empty_or_blank_key_does_not_sign_in(gw: RunningGateway, key: str) -> None:
    status, headers, body = sign_in(gw, key)
    assert status == 401 and "set-cookie" not in headers
    assert b'role="alert"' in body


def test_a_sign_in_form_posted_from_another_site_is_refused(gw: RunningGateway) -> None:
    for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"},
                    {"origin": "null"}):
        status, got, _ = sign_in(gw, MASTER_KEY, headers=headers)
        assert status == 403 and "set-cookie" not in got, headers
    status, _, _ = sign_in(gw, MASTER_KEY, headers={
        "origin": f"http://127.0.0.1:{gw.port}", "host": f"127.0.0.1:{gw.port}",
        "sec-fetch-site": "same-origin"})
    assert status == 303


def test_a_change_made_with_a_session_needs_its_csrf_token(gw: RunningGateway) -> None:
    _, headers, _ = sign_in(gw, MASTER_KEY)
    cookie = session_of(headers)
    body = orjson.dumps({"name": "from-ui", "role": "viewer", "team": "alpha"})
    for extra in ({}, {"x-csrf-token": ""}, {"x-csrf-token": "0" * 64}):
        status, _, got = call(gw, "POST", "/api/keys", body, {
            "cookie": f"{COOKIE}={cookie}", "content-type": "application/json", **extra})
        assert status == 403, got
        assert orjson.loads(got)["error"]["code"] == "csrf_failed"
    token = csrf_of(gw, cookie)
    status, _, got = call(gw, "POST", "/api/keys", body, {
        "cookie": f"{COOKIE}={cookie}", "content-type": "application/json",
        "x-csrf-token": token})
    assert status == 201, got
    # another session's token does not do
    _, other, _ = sign_in(gw, MASTER_KEY)
    status, _, _ = call(gw, "POST", "/api/keys", body, {
        "cookie": f"{COOKIE}={session_of(other)}", "content-type": "application/json",
        "x-csrf-token": token})
    assert status == 403


def test_a_session_never_opens_the_model_endpoints(gw: RunningGateway) -> None:
    _, headers, _ = sign_in(gw, MASTER_KEY)
    cookie = session_of(headers)
    token = csrf_of(gw, cookie)
    status, _, got = call(gw, "POST", "/v1/chat/completions", orjson.dumps(
        {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}), {
        "cookie": f"{COOKIE}={cookie}", "x-csrf-token": token,
        "content-type": "application/json"})
    assert status == 401, got


@pytest.mark.parametrize("tamper", ["flip", "strip", "garbage", "long", "empty"])
def test_a_forged_cookie_is_refused(gw: RunningGateway, tamper: str) -> None:
    _, headers, _ = sign_in(gw, MASTER_KEY)
    cookie = session_of(headers)
    payload, mac = cookie.split(".")
    forged = {"flip": f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}",
              "strip": payload, "garbage": "x.y", "long": "a" * 5000 + ".b",
              "empty": ""}[tamper]
    status, got, _ = call(gw, "GET", "/ui/", headers={"cookie": f"{COOKIE}={forged}"})
    assert status == 303 and got["location"].startswith("/ui/login")
    status, _, body = call(gw, "GET", "/api/stats", headers={"cookie": f"{COOKIE}={forged}"})
    assert status == 401, body


def test_logout_ends_the_session_and_needs_the_token(gw: RunningGateway) -> None:
    _, headers, _ = sign_in(gw, MASTER_KEY)
    cookie = session_of(headers)
    token = csrf_of(gw, cookie)
    form = {"content-type": "application/x-www-form-urlencoded",
            "cookie": f"{COOKIE}={cookie}"}
    status, _, _ = call(gw, "POST", "/ui/logout", b"csrf=nope", form)
    assert status == 403  # a cross-site "log out" link does nothing
    status, got, _ = call(gw, "POST", "/ui/logout", f"csrf={token}".encode(), form)
    assert status == 303 and "Max-Age=0" in got["set-cookie"]
    status, got, _ = call(gw, "GET", "/ui/", headers={"cookie": f"{COOKIE}={cookie}"})
    assert status == 303  # the old cookie is dead, even if the browser kept it
    status, _, _ = call(gw, "GET", "/api/stats", headers={"cookie": f"{COOKIE}={cookie}"})
    assert status == 401


def test_a_sign_out_reaches_the_other_workers(tmp_path: Any) -> None:
    """Two gateways on one store and deployment secret (as workers or replicas are): a
    session signed out on one is refused by the other within a poll."""
    with FakeUpstream().start() as up:
        settings = {"server.master_key": MASTER_KEY,
                    "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}]}
        one = traced_gateway(up, tmp_path, **settings)
        other = traced_gateway(up, tmp_path, {"enabled": False}, **settings)
        try:
            _, headers, _ = sign_in(one, MASTER_KEY)
            cookie = session_of(headers)
            jar = {"cookie": f"{COOKIE}={cookie}"}
            assert call(other, "GET", "/api/stats", headers=jar)[0] == 200  # one session
            form = {"content-type": "application/x-www-form-urlencoded", **jar}
            token = csrf_of(one, cookie)
            assert call(one, "POST", "/ui/logout", f"csrf={token}".encode(), form)[0] == 303
            assert call(one, "GET", "/api/stats", headers=jar)[0] == 401  # at once
            deadline = time.monotonic() + 5
            while call(other, "GET", "/api/stats", headers=jar)[0] == 200:
                assert time.monotonic() < deadline, "the other worker still takes it"
                time.sleep(0.1)
            assert call(other, "GET", "/ui/", headers=jar)[0] == 303
            _, fresh, _ = sign_in(other, MASTER_KEY)  # a new session is not affected
            again = {"cookie": f"{COOKIE}={session_of(fresh)}"}
            assert call(one, "GET", "/api/stats", headers=again)[0] == 200
        finally:
            other.stop()
            one.stop()


def test_a_revoked_key_ends_its_sessions(gw: RunningGateway) -> None:
    made = make_key(gw, name="viewer-ui", role="viewer", team="alpha")
    status, headers, _ = sign_in(gw, made["key"])
    assert status == 303
    cookie = session_of(headers)
    assert made["key"] not in cookie
    status, _, body = call(gw, "GET", "/ui/traces", headers={"cookie": f"{COOKIE}={cookie}"})
    assert status == 200 and b"viewer" in body
    status, _ = gw.request("DELETE", f"/api/keys/{made['id']}")
    assert status == 200
    status, _, _ = call(gw, "GET", "/ui/traces", headers={"cookie": f"{COOKIE}={cookie}"})
    assert status == 303


def test_a_viewer_is_refused_admin_pages_by_the_server(gw: RunningGateway) -> None:
    made = make_key(gw, name="viewer-pages", role="viewer", team="alpha")
    _, headers, _ = sign_in(gw, made["key"])
    cookie = {"cookie": f"{COOKIE}={session_of(headers)}"}
    for page in ("/ui/audit", "/ui/keys"):
        status, _, body = call(gw, "GET", page, headers=cookie)
        assert status == 403 and b"may not open" in body, page
    status, _, body = call(gw, "GET", "/ui/", headers=cookie)
    assert status == 200 and b'href="/ui/audit"' not in body and b'href="/ui/keys"' not in body
    status, _, body = call(gw, "GET", "/api/audit", headers=cookie)
    assert status == 403
    status, _, body = call(gw, "GET", "/api/stats?team=beta", headers=cookie)
    assert status == 403


def test_a_key_that_only_calls_models_cannot_sign_in(gw: RunningGateway) -> None:
    made = make_key(gw, name="user-only", role="user", team="alpha")
    status, headers, body = sign_in(gw, made["key"])
    assert status == 403 and "set-cookie" not in headers and b"cannot read" in body


def test_a_session_ends_at_its_lifetime(gw: RunningGateway) -> None:
    from bastion.governance.keys import MASTER

    sessions = sessions_of(gw)
    fresh = sessions.issue("master", MASTER)
    status, _, _ = call(gw, "GET", "/ui/", headers={"cookie": f"{COOKIE}={fresh}"})
    assert status == 200  # the same secret signs: any worker or replica accepts it
    old = sessions.issue("master", MASTER, now=time.time() - sessions.lifetime_s - 1)
    status, _, _ = call(gw, "GET", "/ui/", headers={"cookie": f"{COOKIE}={old}"})
    assert status == 303


def test_unknown_pages_and_assets(gw: RunningGateway) -> None:
    status, headers, _ = call(gw, "GET", "/ui/nothing-here")
    assert status == 404 and headers["content-type"].startswith("text/html")
    for path in ("/ui/static/../../config.py", "/ui/static/%2e%2e/sessions.py",
                 "/ui/static/nothing.js", "/ui/static/"):
        status, _, _ = call(gw, "GET", path)
        assert status == 404, path


def test_assets_are_served_compressed_with_an_etag(gw: RunningGateway) -> None:
    status, headers, body = call(gw, "GET", "/ui/static/vendor/uPlot.iife.min.js",
                                 headers={"accept-encoding": "gzip, br"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["content-type"].startswith("text/javascript")
    assert b"uPlot" in gzip.decompress(body)
    status, _, _ = call(gw, "GET", "/ui/static/vendor/uPlot.iife.min.js",
                        headers={"if-none-match": headers["etag"]})
    assert status == 304


def test_the_dashboard_can_be_turned_off(tmp_path: Any) -> None:
    from tests.gateway_harness import running

    settings = Settings.model_validate({"home": str(tmp_path), "ui": {"enabled": False},
                                        "tracing": {"enabled": False},
                                        "models": [{"name": "m", "backend": "openai",
                                                    "base_url": "http://127.0.0.1:9"}]})
    with running(settings, wait_ready=False) as gw:
        status, _, _ = call(gw, "GET", "/ui/login")
        assert status == 404


def test_a_gateway_without_a_master_key_signs_in_with_a_one_time_link(tmp_path: Any) -> None:
    from tests.gateway_harness import running

    settings = Settings.model_validate({"home": str(tmp_path), "tracing": {"enabled": False},
                                        "models": [{"name": "m", "backend": "openai",
                                                    "base_url": "http://127.0.0.1:9"}]})
    with running(settings, wait_ready=False) as gw:
        status, headers, _ = call(gw, "GET", "/ui/")
        assert status == 303  # never an open admin page
        status, _, body = call(gw, "GET", "/ui/login")
        assert status == 200 and b"bastion ui url" in body and b'name="key"' not in body
        status, _, _ = sign_in(gw, "anything")
        assert status == 400
        token = login_token(session_key(gw.settings))
        status, headers, _ = call(gw, "GET", f"/ui/login?token={token}")
        assert status == 303 and headers["location"] == "/ui/"
        cookie = session_of(headers)
        status, _, body = call(gw, "GET", "/ui/", headers={"cookie": f"{COOKIE}={cookie}"})
        assert status == 200 and b"local admin" in body
        status, _, _ = call(gw, "GET", f"/ui/login?token={token}")
        assert status == 401  # once
        forged = token[:-3] + ("aaa" if token[-3:] != "aaa" else "bbb")
        status, _, _ = call(gw, "GET", f"/ui/login?token={forged}")
        assert status == 401


def test_a_gateway_without_a_master_key_refuses_what_a_web_page_could_send(
        tmp_path: Any) -> None:
    """DNS rebinding (a foreign Host) and cross-site changes, on a loopback gateway whose
    every request is an admin; clients that are not browsers are not affected."""
    from tests.gateway_harness import running

    settings = Settings.model_validate({"home": str(tmp_path), "tracing": {"enabled": False},
                                        "models": [{"name": "m", "backend": "openai",
                                                    "base_url": "http://127.0.0.1:9"}]})
    with running(settings, wait_ready=False) as gw:
        rebound = {"host": "evil.example:80", "sec-fetch-site": "same-origin",
                   "sec-fetch-mode": "cors"}
        status, _, body = call(gw, "GET", "/api/keys", headers=rebound)
        assert status == 403 and orjson.loads(body)["error"]["code"] == "host_not_allowed"
        for host in (f"127.0.0.1:{gw.port}", f"localhost:{gw.port}", f"[::1]:{gw.port}"):
            status, _, body = call(gw, "GET", "/api/keys", headers={**rebound, "host": host})
            assert status == 200, (host, body)
        # not a browser (no Sec-Fetch-*, no Origin): a script may name the host as it likes
        status, _, body = call(gw, "GET", "/api/keys", headers={"host": "my-laptop:8080"})
        assert status == 200, body
        create = orjson.dumps({"name": "csrf", "role": "admin"})
        for headers in ({"origin": "http://evil.example"}, {"origin": "null"},
                        {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"}):
            status, _, body = call(gw, "POST", "/api/keys", create,
                                   {"content-type": "text/plain", **headers})
            assert status == 403, (headers, body)
            assert orjson.loads(body)["error"]["code"] == "cross_site_refused"
        status, _, body = call(gw, "GET", "/api/keys")
        assert all(k["name"] != "csrf" for k in orjson.loads(body)["data"])
        status, _, body = call(gw, "POST", "/api/keys", create, {
            "content-type": "application/json", "origin": f"http://127.0.0.1:{gw.port}"})
        assert status == 201, body  # the dashboard's own page, and clients without Origin
        status, _, body = call(gw, "POST", "/api/keys", create,
                               {"content-type": "application/json"})
        assert status == 201, body
