"""Storage redaction (content mode ``redacted``) is the guards' detectors: every kind the
secrets scanner and the PII scanner know, read from their registries, has a sample here,
and none of them survives :mod:`bastion.observe.redact`.

A new rule or kind without a sample fails :func:`test_every_kind_has_a_sample`: add one.
``tests/integration/test_trace_fields.py`` sends the same samples through a real gateway
and reads the stored trace."""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Iterator
from typing import Any

import pytest

from bastion.guards import pii, secrets
from bastion.guards.base import ScanContext
from bastion.observe import redact
from bastion.observe.redact import THRESHOLD, StoreRedactor

R = random.Random(12)
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"


def rand(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


_JWT = (_b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(b'{"sub":"42","iat":1700000000}')
        + "." + _b64(R.randbytes(32)))
_PEM = ("-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(
    base64.b64encode(R.randbytes(48)).decode() for _ in range(4))
    + "\n-----END RSA PRIVATE KEY-----")

# secrets scanner rule -> a text holding one secret it reports under that rule
SECRET_SAMPLES: dict[str, str] = {
    "anthropic_api_key": "key sk-ant-api03-" + rand(URLSAFE, 93) + "AA",
    "openai_api_key": "OPENAI_API_KEY=sk-proj-" + rand(URLSAFE, 40) + "T3BlbkFJ"
                      + rand(URLSAFE, 40),
    "aws_access_key_id": "the key id is AKIA" + rand(string.ascii_uppercase + "234567", 16),
    "aws_secret_access_key": "aws_secret_access_key=" + rand(ALNUM + "+/", 40),
    "github_token": "push with ghp_" + rand(ALNUM, 36),
    "gitlab_token": "token glpat-" + rand(URLSAFE, 20),
    "slack_token": "bot xoxb-1234567890-9876543210-" + rand(ALNUM, 24),
    "slack_webhook": "post to https://hooks.slack.com/services/T0" + rand(ALNUM, 8) + "/B0"
                     + rand(ALNUM, 8) + "/" + rand(ALNUM, 24),
    "stripe_secret_key": "stripe sk_live_" + rand(ALNUM, 24),
    "stripe_test_key": "stripe sk_test_" + rand(ALNUM, 24),
    "stripe_webhook_secret": "endpoint secret whsec_" + rand(ALNUM, 32),
    "google_api_key": "maps key AIza" + rand(URLSAFE, 35),
    "google_oauth_secret": "client GOCSPX-" + rand(URLSAFE, 28),
    "google_oauth_token": "access ya29." + rand(URLSAFE, 60),
    "twilio_api_key": "twilio key SK" + rand(HEX, 32),
    "twilio_auth_token": "TWILIO_AUTH_TOKEN=" + rand(HEX, 32),
    "sendgrid_api_key": "mail SG." + rand(URLSAFE, 22) + "." + rand(URLSAFE, 43),
    "npm_token": "//registry.npmjs.org/:_authToken=npm_" + rand(ALNUM, 36),
    "pypi_token": "upload pypi-AgEIcHlwaS5vcmc" + rand(URLSAFE, 80),
    "huggingface_token": "hub hf_" + rand(string.ascii_letters, 34),
    "azure_connection_string": "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey="
                               + base64.b64encode(R.randbytes(64)).decode()
                               + ";EndpointSuffix=core.windows.net",
    "azure_sas_token": "https://acme.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=o"
                       "&sp=r&se=2030-01-01T00:00:00Z&sig="
                       + base64.b64encode(R.randbytes(32)).decode().replace("=", "%3D"),
    "jwt": "session " + _JWT,
    "bearer_token": "curl -H 'Authorization: Bearer " + rand(URLSAFE, 40) + "' $URL",
    "basic_auth": "Authorization: Basic " + base64.b64encode(
        b"svc-admin:" + rand(ALNUM, 14).encode()).decode(),
    "private_key": "the deploy key:\n" + _PEM,
    "password_assignment": "password=" + rand(ALNUM, 10) + "!7",
    "secret_assignment": '"client_secret": "' + rand(ALNUM, 36) + '"',
    "connection_string": 'connection_string = "Server=db;Database=orders;User Id=app;Password='
                         + rand(ALNUM, 12) + ';"',
    "high_entropy_string": "use " + rand(ALNUM, 40) + " to log in",
    "high_entropy_hex": "the signing key " + rand(HEX, 40) + " is here",
    "url_password": "postgres://app:" + rand(ALNUM, 12) + "@db:5432/orders",
}

# PII scanner kind -> a text holding one of it (with the context words a policy needs)
PII_SAMPLES: dict[str, str] = {
    "EMAIL_ADDRESS": "write to jane.doe@example.com please",
    "PHONE_NUMBER": "call me on +44 20 7946 0958 tonight",
    "CREDIT_CARD": "my card number is 4111 1111 1111 1111",
    "IBAN_CODE": "pay to IBAN DE89 3704 0044 0532 0130 00",
    "IP_ADDRESS": "the server is at 192.168.14.23",
    "MAC_ADDRESS": "its MAC is 3c:22:fb:7a:10:9e",
    "US_SSN": "SSN 536-22-1987",
    "DE_TAX_ID": "Steuer-ID: 86095742719",
    "FR_NIR": "numéro de sécurité sociale 1 84 01 76 451 089 64",
    "ES_NIF": "mi DNI es 12345678Z",
    "IT_FISCAL_CODE": "codice fiscale RSSMRA85T10A562S",
    "NL_BSN": "mijn BSN is 111222333",
    "UK_NINO": "National Insurance number AB 12 34 56 C",
    "URL": "see https://intranet.acme.example/people/jdoe?id=7",
    "DATE_OF_BIRTH": "date of birth: 14/03/1987",
    "DATE_TIME": "the meeting is on 2026-03-15 at 14:30",
    "ZIP_CODE": "ZIP code 94105",
    "STREET_ADDRESS": "I live at 1600 Pennsylvania Avenue",
    "AGE": "the patient is a 74 year old female",
    "PERSON": "my name is Margaret Thornbury",
    "LOCATION": "We flew from Lisbon to Reykjavik last week.",
    "ORGANIZATION": "She works at Deutsche Bank as an analyst.",
    "NRP": "The Norwegian delegation arrived late.",
}


STORE = StoreRedactor(ner=True)  # the ingest's, with tracing.redact_ner (the default)


def _detected(sample: str, want: str, ner: bool = True) -> list[str]:
    """What the scanners themselves report in ``sample`` as ``want`` (a secrets rule or a
    PII kind), at the storage threshold: the values that must not be stored."""
    if want in SECRET_SAMPLES:
        found = secrets.make_scanner({}).scan(sample, ScanContext())
        return [sample[f.start:f.end] for f in found if f.detail == want
                and f.score >= THRESHOLD]
    found = (_PII if ner else _PII_PLAIN).scan(sample, ScanContext())
    return [sample[f.start:f.end] for f in found if f.kind == want and f.score >= THRESHOLD]


_PII: Any = pii.make_scanner({})
_PII_PLAIN: Any = pii.make_scanner({"ner": False})
NER_ONLY = {"LOCATION", "ORGANIZATION", "NRP"}  # PERSON has its cues ("my name is")


def needles(ner: bool = True) -> Iterator[tuple[str, str, list[str]]]:
    """(kind, sample, values the scanners find in it) for every kind of both registries
    (``ner`` false: as the PII scanner without its model finds them)."""
    for rule in sorted(secrets.RULE_NAMES):
        sample = SECRET_SAMPLES[rule]
        yield rule, sample, _detected(sample, rule)
    for kind in pii.KINDS:
        sample = PII_SAMPLES[kind]
        yield kind, sample, _detected(sample, kind, ner)


def test_every_kind_has_a_sample() -> None:
    assert set(SECRET_SAMPLES) == set(secrets.RULE_NAMES), "a secrets rule without a sample"
    assert set(PII_SAMPLES) == set(pii.KINDS), "a PII kind without a sample"


@pytest.mark.parametrize(("kind", "sample"), [
    *sorted(SECRET_SAMPLES.items()), *PII_SAMPLES.items()])
def test_each_sample_is_detected_and_removed(kind: str, sample: str) -> None:
    values = _detected(sample, kind)
    assert values, f"the scanners do not report {kind} in their sample: fix the sample"
    stored = STORE.text(sample)
    for value in values:
        assert value not in stored, (kind, stored)
    assert "<" in stored  # a typed placeholder stands where it was


def test_secrets_the_old_patterns_kept_are_removed() -> None:
    """The reported leak: in ``redacted`` mode these were stored as they were sent."""
    key = rand(ALNUM + "+/", 40)
    assert redact.redact_text(f"aws_secret_access_key={key}") == "aws_secret_access_key=<SECRET>"
    assert redact.redact_text("password=Hunter2Correct!") == "password=<SECRET>"


def test_values_inside_structures_and_placeholder_names() -> None:
    value = {"messages": [{"role": "user", "content": "mail jane.doe@example.com"}],
             "n": 3, "tool": {"arguments": '{"iban": "DE89 3704 0044 0532 0130 00"}'}}
    out = redact.redact_value(value)
    assert out["messages"][0] == {"role": "user", "content": "mail <EMAIL>"}
    assert out["n"] == 3 and "DE89" not in out["tool"]["arguments"]
    assert "<IBAN>" in out["tool"]["arguments"]
    assert redact.redact_text("call +44 20 7946 0958") == "call <PHONE>"


def test_without_ner_names_are_found_by_their_cues_only() -> None:
    plain = StoreRedactor(ner=False)
    assert plain.text(PII_SAMPLES["PERSON"]) == "my name is <PERSON>"
    assert plain.text(PII_SAMPLES["EMAIL_ADDRESS"]) == "write to <EMAIL> please"
    assert "Lisbon" in plain.text(PII_SAMPLES["LOCATION"]), "NER off: places stay"
    assert "Lisbon" not in STORE.text(PII_SAMPLES["LOCATION"])


def test_a_broken_ner_model_falls_back_to_the_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    fallback = StoreRedactor(ner=True)
    real = fallback._build

    def build(ner: bool) -> list[Any]:
        scanners = real(ner)
        if ner:
            class Broken:
                name, kinds = "pii", ("PERSON",)

                def scan(self, text: str, ctx: ScanContext) -> list[Any]:
                    raise RuntimeError("model file fails its checksum")
            scanners[1] = Broken()
        return scanners

    monkeypatch.setattr(fallback, "_build", build)
    assert fallback.text("write to jane.doe@example.com") == "write to <EMAIL>"
    assert fallback.ner is False


def test_configure_sets_the_process_default() -> None:
    """The gateway process never runs the model; the ingest turns it on from its settings."""
    before = redact.redactor()
    assert before.ner is False
    try:
        redact.configure(ner=True)
        assert redact.redactor().ner is True
        assert "Lisbon" not in redact.redact_text(PII_SAMPLES["LOCATION"])
        redact.configure(ner=False)
        assert redact.redactor().ner is False
    finally:
        redact._default = before
