"""SSO without a network: the ``auth.oidc`` settings refuse what cannot be safe, claims map
to a role and team by least privilege, a JWKS yields only usable verification keys, and
the token cache lapses when the key set changes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bastion.config import load_settings
from bastion.config_access import OidcSettings
from bastion.errors import AuthenticationFailed, ConfigError, PermissionDenied, ServerError
from bastion.governance.jwks import JwksError, parse_jwks
from bastion.governance.oidc import (
    MAX_TOKEN_BYTES,
    OidcAuthenticator,
    SigningKeyUnknown,
    claim,
    looks_like_jwt,
    principal_of,
    role_of,
)
from bastion.governance.roles import GRANTS
from tests.fakes.oidc_issuer import IssuerKey, new_ec, new_rsa

ISSUER = "https://login.example.com/realms/acme"
BASE = {"issuer": ISSUER, "audience": "bastion"}


def oidc(**fields: Any) -> OidcSettings:
    return OidcSettings(**{**BASE, **fields})


def config(**fields: Any) -> Any:
    return load_settings(env={}, overrides={"auth": {"oidc": {**BASE, **fields}}})


# ------------------------------------------------------------------ configuration
def test_defaults_and_sso_off_by_default() -> None:
    assert load_settings(env={}).auth.oidc is None
    s = config().auth.oidc
    assert s.algorithms == ["RS256"] and s.leeway == 30 and s.jwks_cache_seconds == 600
    assert (s.team_claim, s.role_claim, s.user_claim, s.default_role) == (
        "team", "role", "sub", "user")
    assert config(audience=["a", "b"]).auth.oidc.audiences == ("a", "b")


@pytest.mark.parametrize("algorithms", [
    ["none"], ["None"], ["RS256", "none"], ["HS256"], ["RS256", "HS384"], ["hs512"], ["ES512"],
    ["RSA"], []])
def test_unsafe_or_unknown_algorithms_are_refused(algorithms: list[str]) -> None:
    with pytest.raises(ConfigError, match="algorithms"):
        config(algorithms=algorithms)


@pytest.mark.parametrize("issuer", [
    "http://login.example.com", "http://10.0.0.5/realm", "http://192.168.1.2",
    "ftp://127.0.0.1", "", " ", "https://", "login.example.com", f" {ISSUER}",
    f"{ISSUER}?x=1"])
def test_an_unsafe_or_empty_issuer_is_refused(issuer: str) -> None:
    with pytest.raises(ConfigError, match="issuer"):
        config(issuer=issuer)


@pytest.mark.parametrize("issuer", [
    "http://127.0.0.1:8080", "http://localhost:9000/realm", "http://[::1]:80", ISSUER])
def test_https_or_a_loopback_issuer_is_accepted(issuer: str) -> None:
    assert config(issuer=issuer).auth.oidc.issuer == issuer


def test_jwks_url_follows_the_issuer_rule() -> None:
    with pytest.raises(ConfigError, match="jwks_url"):
        config(jwks_url="http://keys.example.com/jwks")
    assert config(jwks_url="https://keys.example.com/jwks").auth.oidc.jwks_url


@pytest.mark.parametrize("fields", [
    {"audience": ""}, {"audience": "  "}, {"audience": []}, {"audience": ["bastion", ""]},
    {"default_role": "root"}, {"role_map": {"ops": "superuser"}}, {"leeway": 301},
    {"leeway": -1}, {"jwks_cache_seconds": 0}, {"team_claim": ""}, {"team_claim": " "},
    {"required_claims": [""]}, {"unknown_field": 1}])
def test_invalid_fields_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        config(**fields)


def test_a_missing_issuer_or_audience_is_refused() -> None:
    for fields in ({"audience": "bastion"}, {"issuer": ISSUER}):
        with pytest.raises(ConfigError):
            load_settings(env={}, overrides={"auth": {"oidc": fields}})


# ------------------------------------------------------------------ claims → principal
def test_claims_by_name_then_by_dotted_path() -> None:
    claims = {"https://acme.com/team": "ns", "bastion": {"team": "deep"}, "flat": "x"}
    assert claim(claims, "https://acme.com/team") == "ns"
    assert claim(claims, "bastion.team") == "deep"
    assert claim(claims, "bastion.nope") is None and claim(claims, "flat.x") is None


@pytest.mark.parametrize(("value", "role_map", "expected"), [
    (None, {}, "user"), ([], {}, "user"), ("", {}, "user"),
    ("viewer", {}, "viewer"), (["user", "developer", "viewer"], {}, "developer"),
    (["viewer", "user"], {}, "viewer"),
    (["staff", "llm-admins"], {"llm-admins": "admin"}, "admin"),
    (["a", "b"], {"a": "user", "b": "viewer"}, "viewer"),
])
def test_the_highest_mapped_role_is_taken(value: Any, role_map: dict[str, str],
                                          expected: str) -> None:
    assert role_of({"role": value}, oidc(role_map=role_map)) == expected


@pytest.mark.parametrize(("value", "role_map"), [
    ("root", {}), (["staff", "ops"], {}), ("Admin", {}),
    ("admin", {"llm-admins": "admin"}),  # with a role_map, only its values count
    (["staff"], {"llm-admins": "admin"})])
def test_a_role_that_maps_to_nothing_is_refused_not_defaulted(
        value: Any, role_map: dict[str, str]) -> None:
    with pytest.raises(PermissionDenied, match="maps to no Bastion role") as info:
        role_of({"role": value}, oidc(role_map=role_map))
    assert info.value.code == "role_not_mapped"


@pytest.mark.parametrize("value", [3, {"admin": True}, ["admin", 1], True])
def test_a_role_claim_of_another_type_is_a_401(value: Any) -> None:
    with pytest.raises(AuthenticationFailed, match="not a string or a list"):
        role_of({"role": value}, oidc())


def test_a_principal_names_the_subject_team_and_user() -> None:
    s = oidc(team_claim="org.team", user_claim="email", role_claim="groups",
             role_map={"devs": "developer"})
    exp = time.time() + 60
    p = principal_of({"sub": "u1", "email": "a@x.io", "org": {"team": "alpha"},
                      "groups": ["devs"], "exp": exp}, s)
    assert (p.key_id, p.user, p.team, p.role) == ("oidc:u1", "a@x.io", "alpha", "developer")
    assert p.grants == GRANTS["developer"] and p.expires_at == exp
    assert p.limits is None and p.models is None


@pytest.mark.parametrize(("claims", "error"), [
    ({"email": "a@x.io"}, AuthenticationFailed),  # no sub
    ({"sub": "u1"}, AuthenticationFailed),  # no user claim
    ({"sub": "u1", "email": 7}, AuthenticationFailed),
    ({"sub": "x" * 300, "email": "a@x.io"}, AuthenticationFailed),
    ({"sub": "u1", "email": "a@x.io", "team": ["a", "b"]}, AuthenticationFailed),
    ({"sub": "u1", "email": "a@x.io", "role": "viewer"}, PermissionDenied),  # no team
    ({"sub": "u1", "email": "a@x.io", "role": "developer", "team": ""}, PermissionDenied),
])
def test_unusable_claims_are_refused(claims: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        principal_of(claims, oidc(user_claim="email"))


# ------------------------------------------------------------------ JWKS
def test_only_usable_verification_keys_are_kept() -> None:
    rsa, ec = new_rsa("r1"), new_ec("e1")
    small = new_rsa("small", bits=1024)
    document = {"keys": [
        rsa.jwk(), ec.jwk(), small.jwk(),
        {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
        {**new_rsa("enc").jwk(), "use": "enc"},
        {**new_rsa("ps").jwk(), "alg": "PS256"},  # an algorithm not pinned
        {**rsa.jwk(), "kid": ""}, "not a key", {"kty": "RSA", "kid": "broken", "n": "AA"},
    ]}
    keys = parse_jwks(document, ["RS256", "ES256"])
    assert sorted(keys) == ["e1", "r1"]
    assert keys["r1"][0].fits("RS256") and not keys["r1"][0].fits("ES256")
    assert keys["e1"][0].fits("ES256") and not keys["e1"][0].fits("RS256")
    assert not keys["e1"][0].fits("ES384")
    assert list(parse_jwks(document, ["ES256"])) == ["e1"]


def test_a_private_jwk_yields_only_its_public_key() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_types
    from jwt.algorithms import RSAAlgorithm

    key = new_rsa("p1")
    private = {**RSAAlgorithm.to_jwk(key.private, as_dict=True), "kid": "p1"}
    found = parse_jwks({"keys": [private]}, ["RS256"])["p1"][0]
    assert isinstance(found.key, rsa_types.RSAPublicKey)


@pytest.mark.parametrize("document", [{}, {"keys": {}}, [], {"keys": []},
                                      {"keys": [{"kty": "oct", "kid": "s", "k": "AA"}]}])
def test_a_jwks_without_usable_keys_is_an_error(document: Any) -> None:
    with pytest.raises(JwksError):
        parse_jwks(document, ["RS256"])


# ------------------------------------------------------------------ the authenticator
def authenticator(*keys: IssuerKey, **fields: Any) -> OidcAuthenticator:
    auth = OidcAuthenticator(oidc(algorithms=["RS256", "ES256"], **fields))
    if keys:
        auth.keys.keys = parse_jwks({"keys": [k.jwk() for k in keys]}, ["RS256", "ES256"])
        auth.keys.loaded = True
    return auth


def sign(key: IssuerKey, **claims: Any) -> bytes:
    import jwt

    now = int(time.time())
    body = {"iss": ISSUER, "aud": "bastion", "sub": "u1", "exp": now + 60, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key.private,
                      algorithm=key.alg, headers={"kid": key.kid}).encode()


def test_a_valid_token_is_verified_once_then_cached_until_the_keys_change() -> None:
    rsa = new_rsa("r1")
    auth = authenticator(rsa)
    token = sign(rsa, role="admin")
    first = auth.verify(token)
    assert first.role == "admin" and auth.verify(token) is first
    auth.keys.generation += 1  # a refresh changed the key set: checked again
    assert auth.verify(token) is not first
    later = time.time() + 3600  # the cached entry lapses at exp: then refused
    with pytest.raises(AuthenticationFailed, match="expired"):
        auth.verify(token, now=later)


def test_leeway_applies_to_exp_and_nbf() -> None:
    rsa = new_rsa("r1")
    auth = authenticator(rsa, leeway=30)
    now = time.time()
    assert auth.verify(sign(rsa, exp=int(now) - 10), now=now)
    assert auth.verify(sign(rsa, nbf=int(now) + 10), now=now)
    with pytest.raises(AuthenticationFailed, match="expired"):
        auth.verify(sign(rsa, exp=int(now) - 40), now=now)
    with pytest.raises(AuthenticationFailed, match="not valid yet"):
        auth.verify(sign(rsa, nbf=int(now) + 40), now=now)


def test_an_unknown_kid_asks_for_a_refetch_and_no_keys_is_unavailable() -> None:
    rsa = new_rsa("r1")
    with pytest.raises(SigningKeyUnknown) as info:
        authenticator(new_rsa("other")).verify(sign(rsa))
    assert info.value.status == 401 and info.value.code == "unknown_signing_key"
    with pytest.raises(AuthenticationFailed) as final:
        authenticator(new_rsa("other")).verify(sign(rsa), final=True)
    assert not isinstance(final.value, SigningKeyUnknown)
    with pytest.raises(ServerError) as down:
        authenticator().verify(sign(rsa), final=True)
    assert down.value.status == 503 and down.value.code == "oidc_unavailable"


def test_the_size_bound_comes_before_parsing() -> None:
    token = b"e." + b"A" * MAX_TOKEN_BYTES + b".x"
    with pytest.raises(AuthenticationFailed, match="larger than"):
        authenticator(new_rsa("r1")).verify(token)
    assert looks_like_jwt(b"a.b.c") and not looks_like_jwt(b"bst-abc")
    assert not looks_like_jwt(b"a.b.c.d")


def test_a_reload_keeps_the_keys_of_the_same_issuer() -> None:
    auth = authenticator(new_rsa("r1"))
    assert auth.rebuilt(auth.settings) is auth
    mapped = auth.rebuilt(oidc(algorithms=["RS256", "ES256"], role_map={"x": "admin"}))
    assert mapped is not None and mapped.keys is auth.keys
    other = auth.rebuilt(oidc(issuer="https://other.example.com", algorithms=["RS256"]))
    assert other is not None and other.keys is not auth.keys
    assert auth.rebuilt(None) is None


@pytest.mark.parametrize(("claims", "message"), [
    ({"aud": "other"}, "audience"), ({"aud": ["a", "b"]}, "audience"), ({"aud": None}, "audience"),
    ({"aud": 5}, "audience"), ({"iss": "https://login.example.com"}, "issuer"),
    ({"iss": ISSUER + "/"}, "issuer"), ({"iss": None}, "issuer"), ({"exp": None}, "no expiry"),
    ({"exp": True}, "not a number"), ({"iat": "+600"}, "future"),
    ({"sub": None}, "sub"),
])
def test_one_wrong_claim_is_refused(claims: dict[str, Any], message: str) -> None:
    rsa = new_rsa("r1")
    auth = authenticator(rsa)
    assert auth.verify(sign(rsa)).key_id == "oidc:u1", "the control"
    if claims.get("iat") == "+600":  # made now, not when the module was collected
        claims = {"iat": int(time.time()) + 600}
    with pytest.raises(AuthenticationFailed, match=message):
        auth.verify(sign(rsa, **claims))


def test_the_audience_may_be_one_of_ours_in_a_list() -> None:
    rsa = new_rsa("r1")
    auth = authenticator(rsa, audience=["x", "bastion"])
    assert auth.verify(sign(rsa, aud=["someone", "bastion"]))


def test_required_claims_and_header_rules() -> None:
    import jwt

    rsa = new_rsa("r1")
    auth = authenticator(rsa, required_claims=["email", "org.id"])
    with pytest.raises(AuthenticationFailed, match=r"email, org\.id"):
        auth.verify(sign(rsa))
    assert auth.verify(sign(rsa, email="a@x.io", org={"id": 3}))
    crit = jwt.encode({"iss": ISSUER, "aud": "bastion", "sub": "u", "exp": time.time() + 60},
                      rsa.private, algorithm="RS256", headers={"kid": "r1", "crit": ["exp"]})
    with pytest.raises(AuthenticationFailed, match="critical"):
        auth.verify(crit.encode())
    pss = IssuerKey("r1", rsa.private, "PS256")  # the same key, an algorithm not pinned
    with pytest.raises(AuthenticationFailed, match=r"'PS256' is not accepted"):
        auth.verify(sign(pss))
