"""Single sign-on through a real gateway: bearer JWTs from a local OIDC issuer (keys made
with ``cryptography``, served as a JWKS over loopback) call models and read traces per
their role; every bad token is a 401 envelope (never a 500); the issuer rotates its keys,
goes down, or is down from the start."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.oidc_issuer import (
    IssuerKey,
    LocalIssuer,
    b64,
    hs256_token,
    new_ec,
    new_rsa,
    unsigned_token,
)
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, chat, trace_of, traced_gateway

ROLE_MAP = {"llm-admins": "admin", "llm-devs": "developer", "llm-viewers": "viewer",
            "llm-users": "user"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def oidc(issuer: LocalIssuer, **extra: Any) -> dict[str, Any]:
    return {"oidc": {"issuer": issuer.url, "audience": ["other-app", "bastion"],
                     "algorithms": ["RS256", "ES256"], "team_claim": "org.team",
                     "role_claim": "groups", "user_claim": "email", "role_map": ROLE_MAP,
                     **extra}}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def call(gw: RunningGateway, token: str, method: str = "POST",
         path: str = "/v1/chat/completions") -> tuple[int, dict[str, str], Any]:
    return gw.request_full(method, path, CHAT if method == "POST" else None,
                           headers=bearer(token))


def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer().start() as local:
        local.add(new_rsa("rsa-1"))
        local.add(new_ec("ec-1"))
        yield local


@pytest.fixture(scope="module")
def gw(issuer: LocalIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with FakeUpstream().start() as up:
        gateway = traced_gateway(up, tmp_path_factory.mktemp("oidc"), **{
            "server.master_key": MASTER_KEY, "auth": oidc(issuer)})
        yield gateway
        gateway.stop()


def person(issuer: LocalIssuer, groups: Any = None, team: str | None = "alpha",
           key: int = 0, **claims: Any) -> str:
    """A valid token of a person (a fresh one each time: no cache hit between tests)."""
    return issuer.token(issuer.keys[key], sub=f"u-{uuid.uuid4().hex[:8]}",
                        email="alice@example.com", groups=groups,
                        org={"team": team} if team else None, jti=uuid.uuid4().hex, **claims)


# ------------------------------------------------------------------ who may do what
def test_a_developer_token_calls_models_and_its_trace_names_the_user(
        gw: RunningGateway, issuer: LocalIssuer) -> None:
    token = person(issuer, ["staff", "llm-devs"])
    status, headers, body = call(gw, token)
    assert status == 200, body
    trace = trace_of(gw, headers["x-request-id"])
    assert trace["user"] == "alice@example.com" and trace["team"] == "alpha"
    assert trace["key_id"].startswith("oidc:u-")
    status, _, page = call(gw, token, "GET", "/api/traces?limit=500")
    assert status == 200 and {t["team"] for t in page["data"]} == {"alpha"}
    assert call(gw, token)[0] == 200, "the second time from the token cache"
    assert call(gw, token, "GET", "/api/audit")[0] == 403


def test_an_ec_signed_token_is_accepted(gw: RunningGateway, issuer: LocalIssuer) -> None:
    assert issuer.keys[1].alg == "ES256"
    status, _, body = call(gw, person(issuer, "llm-users", key=1))
    assert status == 200, body


def test_a_viewer_reads_but_may_not_call_models(gw: RunningGateway, issuer: LocalIssuer) -> None:
    token = person(issuer, "llm-viewers", team="beta")
    status, _, body = call(gw, token)
    assert status == 403 and body["error"]["code"] == "insufficient_permissions"
    assert call(gw, token, "GET", "/api/traces")[0] == 200
    status, _, body = call(gw, token, "GET", "/api/traces?team=alpha")
    assert status == 403, "its own team only"


def test_a_group_list_takes_the_highest_mapped_role(gw: RunningGateway,
                                                    issuer: LocalIssuer) -> None:
    token = person(issuer, ["llm-users", "staff", "llm-admins", "llm-viewers"])
    assert call(gw, token, "GET", "/api/audit")[0] == 200
    assert call(gw, token, "GET", "/api/traces?team=beta")[0] == 200


def test_no_role_claim_is_the_default_role(gw: RunningGateway, issuer: LocalIssuer) -> None:
    token = person(issuer, None)
    assert call(gw, token)[0] == 200
    status, _, body = call(gw, token, "GET", "/api/traces")
    assert status == 403 and "(user)" in body["error"]["message"]


@pytest.mark.parametrize("groups", [["staff", "ops"], "admin", "LLM-ADMINS"])
def test_a_role_claim_that_maps_to_nothing_is_refused(gw: RunningGateway, issuer: LocalIssuer,
                                                      groups: Any) -> None:
    status, _, body = call(gw, person(issuer, groups))
    assert status == 403, body
    assert body["error"]["code"] == "role_not_mapped" and "role_map" in body["error"]["message"]


def test_a_developer_without_a_team_is_refused(gw: RunningGateway, issuer: LocalIssuer) -> None:
    status, _, body = call(gw, person(issuer, "llm-devs", team=None))
    assert status == 403 and body["error"]["code"] == "team_required", body


def test_master_key_and_virtual_keys_still_work(gw: RunningGateway) -> None:
    assert chat(gw)[0] == 200
    status, made = gw.request("POST", "/api/keys", {"team": "alpha"})
    assert status == 201
    assert gw.request_full("POST", "/v1/chat/completions", CHAT, key=made["key"])[0] == 200


# ------------------------------------------------------------------ bad tokens
def _bad_tokens(issuer: LocalIssuer) -> dict[str, tuple[str, str]]:
    """name -> (token, error code); each differs from a valid admin token in one thing."""
    rsa, ec = issuer.keys[0], issuer.keys[1]
    extras = {"email": "a@example.com", "groups": "llm-admins", "org": {"team": "alpha"}}
    valid = issuer.claims(**extras)
    now = int(time.time())

    def tok(key: IssuerKey = rsa, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        return issuer.token(key, headers, **{**extras, **claims})

    good = tok()
    head, payload, signature = good.split(".")
    forged = dict(valid, sub="mallory")
    return {
        "valid (the control)": (good, ""),
        "expired": (tok(exp=now - 120, iat=now - 900, nbf=now - 900), "expired_token"),
        "nbf in the future": (tok(nbf=now + 600), "token_not_yet_valid"),
        "iat in the future": (tok(iat=now + 600), "invalid_token"),
        "no exp": (tok(exp=None), "invalid_token"),
        "exp not a number": (tok(exp="tomorrow"), "invalid_token"),
        "wrong audience": (tok(aud="someone-else"), "invalid_token"),
        "no audience": (tok(aud=None), "invalid_token"),
        "wrong issuer": (tok(iss="http://127.0.0.1:1"), "invalid_token"),
        "issuer prefix": (tok(iss=issuer.url + "/evil"), "invalid_token"),
        "no sub": (tok(sub=None), "invalid_token"),
        "alg none": (unsigned_token(valid, rsa.kid), "invalid_token"),
        "alg none with a signature": (unsigned_token(valid, rsa.kid) + signature,
                                      "invalid_token"),
        "HS256 with the public key as secret": (
            hs256_token(valid, rsa.kid, rsa.public_pem()), "invalid_token"),
        "unknown signing key": (tok(new_rsa("ghost")), "unknown_signing_key"),
        "a known kid, another key": (tok(new_rsa(rsa.kid)), "invalid_token"),
        "RS256 header over the EC key": (
            f"{b64({'alg': 'RS256', 'kid': ec.kid})}.{payload}.{signature}", "invalid_token"),
        "an algorithm not pinned": (tok(IssuerKey(rsa.kid, rsa.private, "PS256")),
                                    "invalid_token"),
        "tampered payload": (f"{head}.{b64(forged)}.{signature}", "invalid_token"),
        "no kid": (f"{b64({'alg': 'RS256'})}.{payload}.{signature}", "invalid_token"),
        "crit header": (tok(headers={"crit": ["exp"], "exp": 1}), "invalid_token"),
        "garbage": ("a.b.c", "invalid_token"),
        "not base64": ("eyJ*.eyJ.sig", "invalid_token"),
        "header not JSON": (f"{b64(b'not json')}.{payload}.{signature}", "invalid_token"),
        "header a list": (f"{b64(b'[1]')}.{payload}.{signature}", "invalid_token"),
        "empty parts": ("..", "invalid_token"),
        "oversized": (f"{head}.{'A' * 20000}.{signature}", "invalid_token"),
        "no signature": (f"{head}.{payload}.", "invalid_token"),
        "four parts": (f"{good}.x", "invalid_api_key"),
    }


@pytest.mark.parametrize("name", [
    "valid (the control)", "expired", "nbf in the future", "iat in the future", "no exp", "exp not a number",
    "wrong audience", "no audience", "wrong issuer", "issuer prefix", "no sub", "alg none",
    "alg none with a signature", "HS256 with the public key as secret",
    "unknown signing key", "a known kid, another key", "RS256 header over the EC key",
    "an algorithm not pinned", "tampered payload", "no kid", "crit header", "garbage",
    "not base64", "header not JSON", "header a list", "empty parts", "oversized",
    "no signature", "four parts"])
def test_a_bad_token_is_a_401_envelope_never_a_500(gw: RunningGateway, issuer: LocalIssuer,
                                       name: str) -> None:
    token, code = _bad_tokens(issuer)[name]
    for path in ("/v1/chat/completions", "/api/traces"):
        status, headers, body = call(gw, token, "POST" if path.startswith("/v1") else "GET",
                                     path)
        if not code:
            assert status == 200, body
            continue
        assert status == 401, (name, body)
        assert body["error"]["type"] == "authentication_error"
        assert body["error"]["code"] == code, (name, body)
        assert headers["www-authenticate"].startswith("Bearer")


def test_refusals_are_counted_by_reason(gw: RunningGateway, issuer: LocalIssuer) -> None:
    def count(reason: str) -> float:
        text = gw.request("GET", "/metrics")[1].decode()
        line = f'bastion_auth_failures_total{{reason="{reason}"}} '
        found = [ln for ln in text.splitlines() if ln.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0

    before = count("expired"), count("malformed")
    now = int(time.time())
    assert call(gw, issuer.token(issuer.keys[0], exp=now - 100))[0] == 401
    assert call(gw, "x" * 40 + ".y.z" + "=")[0] == 401
    assert (count("expired"), count("malformed")) == (before[0] + 1, before[1] + 1)


# ------------------------------------------------------------------ rotation, outages
def test_a_new_signing_key_works_at_once_and_unknown_kids_are_rate_limited(
        tmp_path: Path) -> None:
    with LocalIssuer().start() as local, FakeUpstream().start() as up:
        old = local.add(new_rsa("2024-a"))
        gw = traced_gateway(up, tmp_path, **{"server.master_key": MASTER_KEY,
                                             "auth": oidc(local)})
        try:
            assert call(gw, person(local, "llm-users"))[0] == 200
            new = local.add(new_rsa("2024-b"))
            status, _, body = call(gw, person(local, "llm-users", key=1))
            assert status == 200, ("refetched for the unknown kid", body)
            assert call(gw, person(local, "llm-users", key=0))[0] == 200, "old key still"
            fetched = local.fetches
            for i in range(20):  # made-up kids: refused, and no flood of fetches
                token = local.token(old, headers={"kid": f"x-{i}"})
                status, _, body = call(gw, token)
                assert status == 401 and body["error"]["code"] == "unknown_signing_key"
            assert local.fetches <= fetched + 1, local.fetches - fetched
            assert new.kid == "2024-b"
        finally:
            gw.stop()


def test_a_removed_key_stops_working_and_cached_keys_survive_an_outage(
        tmp_path: Path) -> None:
    with LocalIssuer().start() as local, FakeUpstream().start() as up:
        local.add(new_rsa("k-old"))
        gw = traced_gateway(up, tmp_path, **{"server.master_key": MASTER_KEY,
                                             "auth": oidc(local, jwks_cache_seconds=1)})
        try:
            old_token = person(local, "llm-users")
            assert call(gw, old_token)[0] == 200
            local.add(new_rsa("k-new"))
            local.remove("k-old")
            until(lambda: call(gw, old_token)[0] == 401)  # at the next refresh, cache too
            body = call(gw, old_token)[2]
            assert body["error"]["code"] == "unknown_signing_key", body
            assert call(gw, person(local, "llm-users"))[0] == 200
            local.down = True  # the keys we have keep working
            asked = local.requests
            until(lambda: local.requests > asked + 1)  # refreshes have failed
            assert call(gw, person(local, "llm-users"))[0] == 200
        finally:
            gw.stop()


def test_issuer_down_at_start_is_a_503_for_tokens_only(tmp_path: Path) -> None:
    with LocalIssuer().start() as local, FakeUpstream().start() as up:
        local.add(new_rsa("k1"))
        local.down = True
        gw = traced_gateway(up, tmp_path, **{"server.master_key": MASTER_KEY,
                                             "auth": oidc(local)})
        try:
            token = person(local, "llm-users")
            status, headers, body = call(gw, token)
            assert status == 503 and body["error"]["code"] == "oidc_unavailable", body
            assert headers.get("retry-after") and local.url in body["error"]["message"]
            assert call(gw, "a.b.c")[0] == 401, "a malformed token is still a 401"
            assert call(gw, unsigned_token(local.claims(), "k1"))[0] == 401
            assert chat(gw)[0] == 200, "the master key"
            status, made = gw.request("POST", "/api/keys", {"team": "alpha"})
            assert status == 201
            assert gw.request_full("POST", "/v1/chat/completions", CHAT,
                                   key=made["key"])[0] == 200, "a virtual key"
            local.down = False
            until(lambda: call(gw, person(local, "llm-users"))[0] == 200)
        finally:
            gw.stop()


def test_an_issuer_whose_discovery_names_another_issuer_is_not_trusted(tmp_path: Path) -> None:
    with LocalIssuer().start() as local, FakeUpstream().start() as up:
        local.add(new_rsa("k1"))
        local.discovery_issuer = "https://evil.example"
        gw = traced_gateway(up, tmp_path, **{"server.master_key": MASTER_KEY,
                                             "auth": oidc(local)})
        try:
            status, _, body = call(gw, person(local))
            assert status == 503 and body["error"]["code"] == "oidc_unavailable", body
        finally:
            gw.stop()


def test_with_sso_and_no_master_key_authentication_is_on(tmp_path: Path) -> None:
    """No master key used to mean every loopback request is the master key; with SSO
    configured a request needs a token (a bad JWT must never become admin)."""
    with LocalIssuer().start() as local, FakeUpstream().start() as up:
        local.add(new_rsa("k1"))
        gw = traced_gateway(up, tmp_path, **{"auth": oidc(local, jwks_url=local.url + "/jwks")})
        try:
            assert gw.settings.server.master_key is None
            status, _, body = gw.request_full("GET", "/api/traces", key=None)
            assert status == 401 and body["error"]["code"] == "missing_api_key"
            for header in ("Bearer sk-anything-at-all", "Bearer a.b.c", "Basic abc"):
                status, _, _ = gw.request_full("GET", "/api/audit",
                                               headers={"authorization": header})
                assert status == 401, header
            assert call(gw, unsigned_token(local.claims(groups="llm-admins"), "k1"),
                        "GET", "/api/audit")[0] == 401
            assert gw.request("GET", "/metrics", key=None)[0] == 401
            admin = person(local, "llm-admins")
            assert call(gw, admin, "GET", "/api/audit")[0] == 200
            assert call(gw, admin)[0] == 200
        finally:
            gw.stop()


def test_a_reload_applies_a_new_role_map_and_keeps_the_keys(tmp_path: Path) -> None:
    import yaml

    from bastion.config import load_settings

    with LocalIssuer().start() as local, FakeUpstream().start() as up:
        local.add(new_rsa("k1"))
        path = tmp_path / "bastion.yaml"
        config: dict[str, Any] = {
            "server": {"port": 0, "master_key": MASTER_KEY}, "home": str(tmp_path / "home"),
            "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
            "auth": oidc(local, role_map={"staff": "user"})}
        path.write_text(yaml.safe_dump(config))

        def loader() -> Any:
            return load_settings(path, env={})

        gw = RunningGateway(loader(), loader=loader).start()
        try:
            assert call(gw, person(local, "staff"), "GET", "/api/traces")[0] == 403
            fetched = local.fetches
            config["auth"] = oidc(local, role_map={"staff": "viewer"})
            path.write_text(yaml.safe_dump(config))
            status, body = gw.request("POST", "/api/config/reload", {})
            assert status == 200, body
            token = person(local, "staff")
            assert call(gw, token, "GET", "/api/traces")[0] == 200
            assert call(gw, token)[0] == 403
            assert local.fetches == fetched, "the same issuer: its keys were kept"
            del config["auth"]
            path.write_text(yaml.safe_dump(config))
            assert gw.request("POST", "/api/config/reload", {})[0] == 200
            status, _, body = call(gw, person(local, "staff"), "GET", "/api/traces")
            assert status == 401 and body["error"]["code"] == "invalid_api_key", body
        finally:
            gw.stop()


# ------------------------------------------------------------------ the dashboard
def test_an_sso_token_signs_in_to_the_dashboard_with_its_role_and_team(
        gw: RunningGateway, issuer: LocalIssuer) -> None:
    from tests.integration.test_dashboard_sessions import call as ui_call
    from tests.integration.test_dashboard_sessions import session_of, sign_in

    status, headers, _ = sign_in(gw, person(issuer, "llm-viewers", team="beta"))
    assert status == 303, headers
    cookie = {"cookie": f"bastion_session={session_of(headers)}"}
    status, _, body = ui_call(gw, "GET", "/ui/traces", headers=cookie)
    assert status == 200 and b"viewer, beta" in body
    assert ui_call(gw, "GET", "/ui/keys", headers=cookie)[0] == 403
    assert ui_call(gw, "GET", "/api/stats?team=beta", headers=cookie)[0] == 200
    assert ui_call(gw, "GET", "/api/stats?team=alpha", headers=cookie)[0] == 403
    # a session never outlives its token
    soon = person(issuer, "llm-viewers", team="beta", exp=int(time.time()) + 2)
    status, headers, _ = sign_in(gw, soon)
    assert status == 303
    cookie = {"cookie": f"bastion_session={session_of(headers)}"}
    time.sleep(2.5)
    assert ui_call(gw, "GET", "/ui/traces", headers=cookie)[0] == 303
    expired = person(issuer, "llm-viewers", team="beta", exp=int(time.time()) - 60)
    status, headers, body = sign_in(gw, expired)
    assert status == 401 and "set-cookie" not in headers
