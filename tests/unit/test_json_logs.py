"""Structured logs: one JSON object per line, and no secret in any line, text or JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bastion.config import Settings, load_settings
from bastion.observe.logs import (
    REDACTED,
    JsonFormatter,
    RedactionFilter,
    Redactor,
    configure_logging,
    settings_secrets,
)

MASTER = "mk-7f3a9c1e5b2d8f40"  # not key-shaped: only the literal match can catch it
UPSTREAM = "upstream-key-9d8c7b6a5f4e"


@pytest.fixture()
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("BASTION_TEST_LOG_UPSTREAM_KEY", UPSTREAM)
    return load_settings(env={}, overrides={
        "server.master_key": MASTER,
        "models": [{
            "name": "up", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "BASTION_TEST_LOG_UPSTREAM_KEY",
            "headers": {"x-custom-token": "tok-custom-1234567", "x-trace": "visible"},
        }],
        "otel": {"headers": {"authorization": "Basic b3RlbC1jb2xsZWN0b3I="}},
    })


@pytest.fixture()
def capture(settings: Settings) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """configure_logging on the root logger, writing to a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {h: list(h.filters) for h in root.handlers})
    out = io.StringIO()
    configure_logging(settings, json=True, stream=out)
    yield logging.getLogger("bastion.test.child"), out
    for handler in list(root.handlers):
        if handler not in saved[0]:
            root.removeHandler(handler)
    for handler, filters in saved[2].items():
        handler.filters[:] = filters
    root.setLevel(saved[1])


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_one_json_object_per_line_with_the_fields(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    log, out = capture
    log.info("hello %s", "world", extra={"request_id": "req-1", "model": "up"})
    log.warning("second\nline")
    first, second = lines(out)
    assert first["message"] == "hello world"
    assert first["level"] == "INFO" and second["level"] == "WARNING"
    assert first["logger"] == "bastion.test.child"
    assert first["request_id"] == "req-1" and first["model"] == "up"
    assert isinstance(first["pid"], int)
    assert first["ts"].endswith("+00:00") and "T" in first["ts"]
    assert "request_id" not in second
    assert second["message"] == "second\nline", "a newline stays inside its JSON string"


def test_exception_is_formatted_into_the_line(capture: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = capture
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    (entry,) = lines(out)
    assert entry["message"] == "failed"
    assert "Traceback" in entry["exc_info"] and "ValueError: boom" in entry["exc_info"]


def test_master_key_logged_by_mistake_is_redacted_everywhere(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    log, out = capture
    log.warning(f"key in the message: {MASTER}")
    log.warning("key in the args: %s / %r", MASTER, {"key": MASTER})
    log.info("as extra", extra={"request_id": "r", "detail": {"auth": [MASTER]}})
    try:
        raise RuntimeError(f"could not use key {MASTER}")
    except RuntimeError:
        log.exception("key in the exception text")
    text = out.getvalue()
    assert MASTER not in text
    entries = lines(out)
    assert entries[0]["message"] == f"key in the message: {REDACTED}"
    assert entries[1]["message"] == f"key in the args: {REDACTED} / {{'key': '{REDACTED}'}}"
    assert entries[2]["detail"] == {"auth": [REDACTED]}
    assert f"could not use key {REDACTED}" in entries[3]["exc_info"]


def test_upstream_keys_and_configured_credentials_are_redacted(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    log, out = capture
    log.error("upstream said no to %s", UPSTREAM)
    log.error("sent headers %s", {"x-custom-token": "tok-custom-1234567", "x-trace": "visible"})
    log.error("collector auth b3RlbC1jb2xsZWN0b3I=")
    text = out.getvalue()
    assert UPSTREAM not in text and "tok-custom-1234567" not in text
    assert "b3RlbC1jb2xsZWN0b3I=" not in text
    assert "visible" in text, "a header that is not a credential is kept"


@pytest.mark.parametrize(
    ("raw", "leak"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("headers [(b'authorization', b'Bearer tok_1234567890')]", "tok_1234567890"),
        ("{'Authorization': 'Bearer zzz999yyy'}", "zzz999yyy"),
        ("x-api-key: ant-key-123456", "ant-key-123456"),
        ("OPENAI_API_KEY=whatever-value", "whatever-value"),
        ("password=hunter2hunter2", "hunter2hunter2"),
        ("key sk-proj-abcdefghijklmnop1234 in text", "sk-proj-abcdefghijklmnop1234"),
        ("anthropic sk-ant-api03-abcdefghijkl", "sk-ant-api03-abcdefghijkl"),
        ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
        ("hf hf_abcdefghijklmnopqrstuvwxyz", "hf_abcdefghijklmnopqrstuvwxyz"),
    ],
)
def test_secret_shapes_are_redacted(raw: str, leak: str) -> None:
    redacted = Redactor()(raw)
    assert leak not in redacted and REDACTED in redacted


def test_ordinary_text_is_left_alone() -> None:
    text = "GET /v1/models model=gpt-4o status=200 ms=1.2 tokens_in=12 max_tokens=32 sk-1"
    assert Redactor([MASTER])(text) == text


def test_redaction_is_idempotent() -> None:
    redact = Redactor([MASTER])
    once = redact(f"Authorization: Bearer {MASTER} and sk-abcdefghijklmnop")
    assert redact(once) == once


def test_secrets_come_from_settings(settings: Settings) -> None:
    secrets = settings_secrets(settings)
    assert MASTER in secrets and UPSTREAM in secrets
    assert "tok-custom-1234567" in secrets and "b3RlbC1jb2xsZWN0b3I=" in secrets
    assert "visible" not in secrets


def test_filter_applies_to_records_from_any_logger_through_the_handler() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactionFilter(Redactor([MASTER])))
    log = logging.getLogger("bastion.test.isolated")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("%s", MASTER, stack_info=True)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert MASTER not in out.getvalue()
    (entry,) = lines(out)
    assert entry["message"] == REDACTED and "stack_info" in entry


def test_configure_again_replaces_the_handler_and_text_mode_redacts_too(
    settings: Settings, capture: tuple[logging.Logger, io.StringIO],
) -> None:
    log, _ = capture
    text_out = io.StringIO()
    configure_logging(settings, json=False, stream=text_out)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_bastion", False)]
    assert len(ours) == 1
    log.warning("Authorization: Bearer %s", MASTER)
    line = text_out.getvalue().strip()
    assert line.endswith(f"WARNING bastion.test.child: Authorization: Bearer {REDACTED}")
