"""The secrets scanner: provider shapes, private keys, passwords, entropy, and the look-alikes
(hashes, UUIDs, ids, paths, base64 text) it must leave alone."""

from __future__ import annotations

import base64
import hashlib
import random
import string
import time
import uuid

import pytest

from bastion.guards.base import ScanContext
from bastion.guards.secret_text import expected_entropy, shannon_entropy
from bastion.guards.secrets import make_scanner

R = random.Random(5)
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
CTX = ScanContext()


def rand(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


@pytest.fixture(scope="module")
def scanner():  # type: ignore[no-untyped-def]
    return make_scanner({})


def found(scanner, text: str, threshold: float = 0.5) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(f.detail, text[f.start : f.end]) for f in scanner.scan(text, CTX)
            if f.score >= threshold]


PROVIDERS = {
    "openai_api_key": "sk-proj-" + rand(URLSAFE, 40) + "T3BlbkFJ" + rand(URLSAFE, 40),
    "anthropic_api_key": "sk-ant-api03-" + rand(URLSAFE, 93) + "AA",
    "aws_access_key_id": "AKIA" + rand(string.ascii_uppercase + "234567", 16),
    "github_token": "ghp_" + rand(ALNUM, 36),
    "gitlab_token": "glpat-" + rand(URLSAFE, 20),
    "slack_token": "xoxb-1234567890-9876543210-" + rand(ALNUM, 24),
    "stripe_secret_key": "sk_live_" + rand(ALNUM, 24),
    "google_api_key": "AIza" + rand(URLSAFE, 35),
    "twilio_api_key": "SK" + rand("0123456789abcdef", 32),
    "sendgrid_api_key": "SG." + rand(URLSAFE, 22) + "." + rand(URLSAFE, 43),
    "npm_token": "npm_" + rand(ALNUM, 36),
    "pypi_token": "pypi-AgEIcHlwaS5vcmc" + rand(URLSAFE, 80),
    "huggingface_token": "hf_" + rand(string.ascii_letters, 34),
}


@pytest.mark.parametrize("rule", sorted(PROVIDERS))
def test_provider_tokens_in_prose_and_code(scanner, rule: str) -> None:  # type: ignore[no-untyped-def]
    token = PROVIDERS[rule]
    for text in (f"here is my key {token} thanks", f'client = Client(api_key="{token}")',
                 f"TOKEN={token}\n"):
        assert found(scanner, text) == [(rule, token)], text


def test_detail_names_the_rule_never_the_value(scanner) -> None:  # type: ignore[no-untyped-def]
    token = PROVIDERS["github_token"]
    (f,) = scanner.scan(f"push with {token}", CTX)
    assert f.kind == "SECRET" and f.detail == "github_token" and token not in f.detail


def test_placeholder_bodies_are_not_tokens(scanner) -> None:  # type: ignore[no-untyped-def]
    for text in ("sk-" + "x" * 48, "ghp_" + "0" * 36, "sk_live_" + "your_key_here_xxxxxxxxxxxx",
                 "export OPENAI_API_KEY=<your-api-key>", "password: ${DB_PASSWORD}",
                 "api_key = os.environ['OPENAI_API_KEY']", "password = request.form['password']",
                 "token = get_token(user)", "password: changeme"):
        assert found(scanner, text) == [], text


def test_aws_secret_key_next_to_its_key_id(scanner) -> None:  # type: ignore[no-untyped-def]
    kid = PROVIDERS["aws_access_key_id"]
    secret = rand(ALNUM + "+/", 40)
    text = f"Access key: {kid}\nSecret: {secret}\n"
    assert found(scanner, text) == [("aws_access_key_id", kid), ("aws_secret_access_key", secret)]


def test_private_key_block_is_one_span(scanner) -> None:  # type: ignore[no-untyped-def]
    body = base64.b64encode(R.randbytes(300)).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    for kind in ("RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"):
        block = f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----"
        assert found(scanner, f"my key:\n{block}\nwhy?") == [("private_key", block)]
    big = base64.b64encode(R.randbytes(2400)).decode()  # a 4096-bit RSA key's size
    block = ("-----BEGIN RSA PRIVATE KEY-----\n"
             + "\n".join(big[i : i + 64] for i in range(0, len(big), 64))
             + "\n-----END RSA PRIVATE KEY-----")
    assert found(scanner, block) == [("private_key", block)]
    # pasted without its END line, or JSON-escaped as in a service-account file
    truncated = f"-----BEGIN RSA PRIVATE KEY-----\n{lines}"
    assert found(scanner, truncated + "\n") == [("private_key", truncated)]
    escaped = "-----BEGIN PRIVATE KEY-----\\n" + body[:64] + "\\n-----END PRIVATE KEY-----\\n"
    assert [d for d, _ in found(scanner, f'{{"private_key": "{escaped}"}}')] == ["private_key"]


def test_public_keys_and_certificates_are_not_secrets(scanner) -> None:  # type: ignore[no-untyped-def]
    cert = base64.b64encode(R.randbytes(200)).decode()
    assert found(scanner, f"-----BEGIN CERTIFICATE-----\n{cert}\n-----END CERTIFICATE-----") == []
    assert found(scanner, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA" + rand(ALNUM, 40) + " me@x") == []


def test_jwt_and_bearer(scanner) -> None:  # type: ignore[no-untyped-def]
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    jwt = (b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(b'{"sub":"42","iat":1700000000}')
           + "." + b64(R.randbytes(32)))
    assert found(scanner, f"Authorization: Bearer {jwt}") == [("jwt", jwt)]
    opaque = rand(URLSAFE, 40)
    assert found(scanner, f"curl -H 'Authorization: Bearer {opaque}' $URL") == [
        ("bearer_token", opaque)]
    assert found(scanner, "Bearer bonds are a kind of security that pays the holder.") == []


def test_passwords_in_urls(scanner) -> None:  # type: ignore[no-untyped-def]
    assert found(scanner, "postgres://app:S3cr3t%21pw@db:5432/orders") == [
        ("url_password", "S3cr3t%21pw")]
    for text in ("postgres://user:password@localhost/db", "https://example.com:8443/path",
                 "use scheme://user:pass@host", "redis://:${REDIS_PASSWORD}@cache:6379"):
        assert found(scanner, text) == [], text


def test_password_assignments_in_code_config_and_prose(scanner) -> None:  # type: ignore[no-untyped-def]
    cases = {
        'password = "hunter2!"': "hunter2!",
        "DB_PASSWORD=correcthorse42": "correcthorse42",
        '{"username": "svc", "password": "Quartz2024!"}': "Quartz2024!",
        "  passwd: 'maple-77'": "maple-77",
        "my password is Tr0ub4dor&3": "Tr0ub4dor&3",
        "mot de passe est Soleil2026!": "Soleil2026!",
    }
    for text, value in cases.items():
        assert found(scanner, text) == [("password_assignment", value)], text
    for text, value in (("keep them: password=hunter2xyz please", "hunter2xyz"),
                        ("log in with pwd=letmein then", "letmein")):
        assert found(scanner, text) == [("password_assignment", value)], text
    assert found(scanner, "and token=hunter2xyz here") == [("secret_assignment", "hunter2xyz")]
    for text in ("call f(password=pwd_input)", "f(password=userPassword)", "password: required",
                 "reset?password=true", "password=mypassword", "login(password = pw)",
                 "the password is incorrect, try again", "password_min_length: 12",
                 "password = password_from_form", "Forgot your password? Reset it here.",
                 "passenger: Alice", "author: JohnSmith2024", "max_tokens: 4096",
                 "tokenizer: bert-base-uncased", "if password == other:"):
        assert found(scanner, text) == [], text


def test_generic_secret_assignments(scanner) -> None:  # type: ignore[no-untyped-def]
    token = rand(ALNUM, 36)
    hexkey = rand("0123456789abcdef", 32)
    for text, value in ((f'"client_secret": "{token}"', token), (f"SECRET_KEY={hexkey}", hexkey),
                        (f"auth_token = '{token}'", token)):
        assert [v for _, v in found(scanner, text)] == [value], text
    assert found(scanner, "cache_key = " + hexkey) == []  # a key of a cache, not a credential


def test_high_entropy_needs_randomness_and_context(scanner) -> None:  # type: ignore[no-untyped-def]
    token = rand(ALNUM, 40)
    assert [d for d, _ in found(scanner, f"use {token} to log in")] == ["high_entropy_string"]
    hexkey = rand("0123456789abcdef", 40)
    assert found(scanner, f"here it is {hexkey}") == []  # bare hex: a digest until told
    assert [d for d, _ in found(scanner, f"the token is {hexkey}")] == ["high_entropy_hex"]


def test_hard_negatives(scanner) -> None:  # type: ignore[no-untyped-def]
    negatives = [
        f"Request {uuid.uuid4()} failed",
        f"trace_id={uuid.uuid4().hex}",
        f"Fixed in commit {hashlib.sha1(b'x').hexdigest()}",
        f"sha256: {hashlib.sha256(b'release').hexdigest()}",
        f"api_key sha256 {hashlib.sha256(b'k').hexdigest()}",
        "Decode: " + base64.b64encode(b"Hello world, this is a test of base64 text").decode(),
        "see /usr/local/lib/python3.11/site-packages/requests/adapters.py line 12",
        "Open src/components/NavigationBarContainerWithSidebar.tsx",
        "https://docs.google.com/document/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit",
        f"Customer cus_{rand(ALNUM, 14)} paid invoice in_{rand(ALNUM, 24)}",
        f"publishable key pk_live_{rand(ALNUM, 24)} goes in the page",
        "data:image/png;base64," + base64.b64encode(R.randbytes(90)).decode(),
        f"Wallet 0x{rand('0123456789abcdef', 40)} got 1 ETH",
        "kill the process, then rotate the keys and reset the token cache",
        "function getUserAuthenticationTokenFromSessionStorage() {}",
        "password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256",
        'B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"',
        'SECRET_KEY = os.getenv("SECRET_KEY", "")',
        "client_secret: ${{ secrets.CLIENT_SECRET }}",
        'password: "{{ vault_db_password }}"',
        "secret = secrets.token_urlsafe(32)",
        'headers = {"Authorization": f"Bearer {token}"}',
        'integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC"',
    ]
    for text in negatives:
        assert found(scanner, text) == [], text


def test_adversarial_inputs_stay_linear(scanner) -> None:  # type: ignore[no-untyped-def]
    for text in ("sk-" * 3000, "password=" * 1000, "xoxb-" * 2000, "eyJ" * 3000 + ".",
                 "-----BEGIN PRIVATE KEY-----\n" + "A" * 9000, "://" * 3000):
        t0 = time.perf_counter()
        scanner.scan(text, CTX)
        assert time.perf_counter() - t0 < 0.5, text[:20]


def test_entropy_expectation_matches_random_strings() -> None:
    rng = random.Random(1)
    chars = ALNUM + "+/"
    for n in (16, 40, 100):
        mean = sum(shannon_entropy("".join(rng.choices(chars, k=n))) for _ in range(400)) / 400
        assert abs(expected_entropy(n, "base64") - mean) < 0.03


def test_options() -> None:
    assert make_scanner({"disabled_rules": ["jwt"], "entropy": False, "allowlist": ["x"]})
    for bad in ({"nope": 1}, {"disabled_rules": ["no_such_rule"]}, {"disabled_rules": "jwt"},
                {"entropy": "yes"}, {"min_entropy_length": 4}, {"allowlist": "abc"}):
        with pytest.raises(ValueError, match="secrets"):
            make_scanner(bad)


def test_disabled_rules_and_allowlist() -> None:
    token = PROVIDERS["github_token"]
    without = make_scanner({"disabled_rules": ["github_token"]}).scan(f"t {token}", CTX)
    assert "github_token" not in {f.detail for f in without}
    assert make_scanner({"allowlist": [token]}).scan(f"t {token}", CTX) == []
    quiet = make_scanner({"entropy": False})
    assert quiet.scan(f"use {rand(ALNUM, 40)} now", CTX) == []


def test_fast_on_ordinary_text(scanner) -> None:  # type: ignore[no-untyped-def]
    text = ("The deploy went fine; the key point is that tokens are counted per request and "
            "the password policy did not change. ") * 20
    text = text[:2000] + " token: " + rand(ALNUM, 32)
    scanner.scan(text, CTX)
    runs = []
    for _ in range(30):
        t0 = time.perf_counter()
        scanner.scan(text, CTX)
        runs.append(time.perf_counter() - t0)
    assert sorted(runs)[15] < 0.002  # median well under 2 ms on 2,000 characters
