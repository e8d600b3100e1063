"""Logging: one JSON object per line (or plain text), and no secret in any of it.

:func:`configure_logging` installs one handler on the root logger, with

- :class:`JsonFormatter` (``json=True``): ``{"ts", "level", "logger", "message", "pid"}``,
  plus ``request_id`` and any other ``extra=`` fields the record carries, ``exc_info`` (the
  formatted traceback) and ``stack_info`` when present; or a plain text format;
- :class:`RedactionFilter`, on the handler (a logger's filters do not see records that
  propagate from child loggers; a handler's see them all). It rewrites each record before
  it is formatted: the message with its arguments merged in, string ``extra`` fields, the
  traceback and stack text. Scrubbed are ``Authorization``/``x-api-key`` header values and
  any ``Bearer`` token, key-shaped strings (``sk-...``, ``sk-ant-...``, ``AKIA...``,
  ``ghp_...``, ``xox?-...``, ``hf_...``), and, literally, the values of the secrets the
  gateway knows: ``server.master_key``, the environment variables the models name in
  ``api_key_env``, and the usual provider key variables (``OPENAI_API_KEY``...).

Values shorter than :data:`MIN_SECRET_CHARS` are not matched literally (they would turn
ordinary words into ``[REDACTED]``); nothing that short is a real key. Each pattern runs
only when a cheap substring check says it could match, so an ordinary line (an access log
line) costs about 3 µs to check.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from bastion.config import Settings, read_secret_env
from bastion.secret_values import SECRET_HEADER

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 6
#: environment variables that hold secrets whatever the configuration says
KNOWN_SECRET_ENV = (
    "BASTION_MASTER_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY",
    "GROQ_API_KEY", "MISTRAL_API_KEY", "COHERE_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
    "DEEPSEEK_API_KEY", "TOGETHER_API_KEY", "FIREWORKS_API_KEY", "OPENROUTER_API_KEY",
    "XAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "GITHUB_TOKEN",
)
_CREDENTIAL_NAMES = (
    "authorization", "api_key", "api-key", "apikey", "password", "passwd", "secret_key",
    "secret-key", "client_secret", "client-secret", "access_token", "access-token",
    "refresh_token", "refresh-token",
)
# (substrings that must occur, lowercased, for the pattern to be worth running; pattern):
# the cheap ``in`` checks keep an ordinary line (an access log line) off the regex engine.
_RULES: list[tuple[tuple[str, ...], re.Pattern[str]]] = [
    # a credential's value after its name, whatever the scheme: "Authorization: Bearer x",
    # "x-api-key=x", "'api_key': 'x'", "password=x"
    (_CREDENTIAL_NAMES, re.compile(
        r"(?P<keep>(?<![A-Za-z0-9])(?:(?:proxy-)?authorization|api[_-]?key|password|passwd"
        r"|secret[_-]?key|client[_-]?secret|access[_-]?token|refresh[_-]?token)"
        r"[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)[^\s\"',;}]+",
        re.IGNORECASE,
    )),
    (("bearer",), re.compile(r"(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/=\-]{6,}", re.IGNORECASE)),
    (("sk-",), re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{8,}")),
    (("akia",), re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    (("xox",), re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
    (("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{20,}")),
]
# LogRecord's own attributes: anything else on a record came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName",
}


class Redactor:
    """Scrubs secrets from text: the patterns above, then the known values literally."""

    def __init__(self, secrets: list[str] | tuple[str, ...] = ()) -> None:
        # longest first, so a secret that contains another is replaced whole
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        lower = text.lower()
        for triggers, pattern in _RULES:
            for trigger in triggers:  # plain loops: a generator costs more than the checks
                if trigger in lower:
                    text = pattern.sub(_replace, text)
                    break
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def _replace(match: re.Match[str]) -> str:
    keep = match.groupdict().get("keep") or ""
    return keep + REDACTED


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values the gateway knows of: the master key, the keys the models name
    (``api_key_env``, core and plugin backends alike) and the usual provider variables."""
    secrets: list[str] = []
    if settings.server.master_key is not None:
        secrets.append(settings.server.master_key.get_secret_value())
    names = set(KNOWN_SECRET_ENV)
    headers = [settings.otel.headers]
    for spec in settings.models:
        name = getattr(spec, "api_key_env", None) or (spec.model_extra or {}).get("api_key_env")
        if isinstance(name, str):
            names.add(name)
        configured = getattr(spec, "headers", None)
        if isinstance(configured, dict):
            headers.append(configured)
    for given in headers:  # credentials configured as headers (upstreams', the collector's)
        secrets.extend(
            v.split()[-1] for k, v in given.items() if SECRET_HEADER.search(k) and v.split()
        )
    for name in sorted(names):
        value = read_secret_env(name)
        if value:
            secrets.append(value)
    return secrets


class RedactionFilter(logging.Filter):
    """Rewrites a record so that no secret survives formatting (never drops one)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redact
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep its parts, scrubbed
            message = f"{record.msg} {record.args}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and value is not None:
                setattr(record, key, _redact_value(redact, value))
        return True


def _redact_value(redact: Redactor, value: Any) -> Any:
    """Strings inside ``extra`` values (dicts, lists, tuples); other values as they are,
    unless they print as text with a secret in it (then that text, scrubbed)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {k: _redact_value(redact, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(redact, v) for v in value]
    text = str(value)
    scrubbed = redact(text)
    return value if scrubbed == text else scrubbed


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``ts`` is ISO-8601 in UTC with milliseconds."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            out["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "request_id" and not key.startswith("_"):
                out[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    settings: Settings,
    json: bool,
    *,
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Sets up the root logger: one stream handler (stderr by default), JSON or text, with
    the redaction filter; the filter also goes on any other handler already on the root
    logger. Calling it again (a reload: new keys) replaces what an earlier call set up."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_bastion", False):
            root.removeHandler(handler)
            handler.close()
    redaction = RedactionFilter(Redactor(settings_secrets(settings)))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._bastion = True  # type: ignore[attr-defined]  # ours, to replace next time
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    for each in root.handlers:
        for old in [f for f in each.filters if isinstance(f, RedactionFilter)]:
            each.removeFilter(old)
        each.addFilter(redaction)
    root.setLevel(level)
    return handler
