"""Secrets: provider API keys and tokens, private keys, passwords in URLs and assignments,
and high-entropy strings that look like credentials.

Three tiers, in order of confidence:

1. **Provider rules**: token shapes with a fixed prefix (``sk-ant-``, ``AKIA``, ``ghp_``,
   ``glpat-``, ``xoxb-``, ``AIza``, ``SG.``, ``hf_``...), PEM/OpenSSH private key blocks,
   JWTs, ``Bearer``/``Basic`` credentials, Azure connection strings. Each rule runs only when
   one of its literal needles occurs in the (lower-cased) text, so ordinary prose costs a
   few substring tests. A body that is too regular to be random (``sk-xxxxxxxx``,
   ``ghp_your_token_here``) is not reported.
2. **Assignments**: ``password = "..."``, ``"api_key": "..."``, ``DB_PASSWORD=...`` env
   lines, ``scheme://user:pass@host`` and "my password is ..." in prose. Placeholders
   (``<token>``, ``${VAR}``, ``changeme``, ``xxxx``), code expressions
   (``os.environ[...]``) and identifiers are skipped.
3. **Entropy**: runs of base64/hex/alphanumeric characters whose Shannon entropy per
   character is close to what a random string of that length and alphabet has (the
   expectation is computed exactly, once per length, so short tokens are not held to the
   log2(alphabet) ceiling they cannot reach). Hex-only runs (git SHAs, SHA-256 digests,
   UUIDs) and base64 that decodes to text are reported only with a credential keyword
   just before them; a hash keyword (``sha256``, ``commit``, ``digest``) suppresses.

Every finding is kind ``SECRET`` with the rule name as ``detail`` (never the value). Scores:
provider shapes 0.85-0.99, assignments 0.55-0.9, entropy 0.35-0.85; a policy threshold of
0.5 keeps the first two tiers and the confident part of the third.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from bastion.guards.base import Finding, ScanContext
from bastion.guards.secret_text import (
    _alphabet_of,
    _classes,
    _wordiness,
    is_placeholder,
    randomness,
)

KIND = "SECRET"


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...]  # lower-case literals; the rule runs only if one occurs
    score: float
    group: int | str = 0  # the group that is the secret (the span reported)
    # body -> adjusted score (None: not a secret after all)
    check: Callable[[str], float | None] | None = None
    # the needles are where a match starts: the pattern is tried only there (a regex that
    # begins with \b or (?i) gets no literal-prefix search from the engine: finditer would
    # try every position)
    anchored: bool = True
    # the span grows over the surrounding non-space characters (a whole connection string)
    expand: bool = False


def _random_body(min_ratio: float = 0.72, min_classes: int = 2) -> Callable[[str], float | None]:
    """A check for a provider rule: the part after the prefix must look random."""

    def check(body: str) -> float | None:
        tail = body
        for sep in ("_", "-"):  # drop the provider prefix ("ghp_", "sk-proj-")
            head, _, rest = tail.partition(sep)
            if rest and len(head) <= 8 and head.isalpha():
                tail = rest
        if "your" in tail.lower() or "example" in tail.lower() or is_placeholder(tail):
            return None
        if _classes(tail) < min_classes:
            return None
        return 0.0 if randomness(tail) >= min_ratio else None

    return check


# -------------------------------------------------------------------------- providers

def _jwt_check(token: str) -> float | None:
    header = token.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        parsed = json.loads(decoded)
    except (ValueError, binascii.Error):
        return -0.15  # shaped like a JWT, header is not JSON
    if isinstance(parsed, dict) and ("alg" in parsed or "typ" in parsed):
        return 0.0
    return -0.15


def _basic_check(token: str) -> float | None:
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
        text = decoded.decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = text.partition(":")
    if not sep or not password or is_placeholder(password):
        return None
    return 0.0


def _bearer_check(token: str) -> float | None:
    if is_placeholder(token) or _classes(token) < 2:
        return None
    if token.count(".") == 2 and token.startswith("eyJ"):
        return 0.0  # a JWT; the JWT rule reports it too, the merge keeps one
    return 0.0 if randomness(token) >= 0.7 else None


_B64 = r"A-Za-z0-9+/"
_URLSAFE = r"A-Za-z0-9_\-"
_END = r"(?![A-Za-z0-9_\-])"

# bodies are bounded (1,024; key blocks and JWTs more): a pattern tried at many starts must
# not scan to the end of a long text from each
_PROVIDER_RULES: list[_Rule] = [
    _Rule("anthropic_api_key", re.compile(
        rf"\bsk-ant-(?:api|admin|oat|sid)\d\d-[{_URLSAFE}]{{32,1024}}{_END}"), ("sk-ant-",), 0.99),
    _Rule("anthropic_api_key", re.compile(rf"\bsk-ant-[{_URLSAFE}]{{24,1024}}{_END}"),
          ("sk-ant-",), 0.92, check=_random_body()),
    _Rule("openai_api_key", re.compile(
        rf"\bsk-(?:(?:proj|svcacct|admin)-)?[{_URLSAFE}]{{20,1024}}T3BlbkFJ[{_URLSAFE}]{{20,1024}}{_END}"),
        ("sk-",), 0.99),
    _Rule("openai_api_key", re.compile(
        rf"\bsk-(?!ant-)(?:(?:proj|svcacct|admin)-)?[{_URLSAFE}]{{32,1024}}{_END}"),
        ("sk-",), 0.93, check=_random_body()),
    _Rule("aws_access_key_id", re.compile(
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|A3T[A-Z0-9])[A-Z2-7]{16}\b"),
        ("akia", "asia", "abia", "acca", "agpa", "aida", "aroa", "aipa", "anpa", "anva", "a3t"),
        0.95),
    _Rule("aws_secret_access_key", re.compile(
        rf"(?i:aws|amazon)[\w.\-]{{0,30}}(?i:secret|sk)[\w.\-]{{0,20}}[\"']?\s{{0,3}}"
        rf"(?::=|=>|=|:|,)\s{{0,3}}[\"'`]?(?P<v>[{_B64}]{{40}})(?![{_B64}=])"),
        ("aws", "amazon"), 0.95, "v", _random_body(0.7, 2)),
    _Rule("github_token", re.compile(rf"\bgh[pousr]_[A-Za-z0-9]{{36,255}}{_END}"),
          ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), 0.97, check=_random_body()),
    _Rule("github_token", re.compile(rf"\bgithub_pat_[A-Za-z0-9_]{{50,255}}{_END}"),
          ("github_pat_",), 0.98, check=_random_body()),
    _Rule("gitlab_token", re.compile(
        rf"\bgl(?:pat|dt|rt|ptt|soat|cbt|imt|ft|oas)-[{_URLSAFE}]{{20,1024}}{_END}"),
        ("glpat-", "gldt-", "glrt-", "glptt-", "glsoat-", "glcbt-", "glimt-", "glft-", "gloas-"),
        0.96, check=_random_body()),
    _Rule("slack_token", re.compile(
        r"\bxox[abposre]-(?:[0-9]+-)*[A-Za-z0-9]{8,1024}(?:-[A-Za-z0-9]+)*"),
        ("xox",), 0.95, check=_random_body(0.6, 1)),
    _Rule("slack_token", re.compile(r"\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{32,1024}"), ("xapp-",),
          0.97),
    _Rule("slack_webhook", re.compile(
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]{20,1024}"),
        ("hooks.slack.com",), 0.95, anchored=False),
    _Rule("stripe_secret_key", re.compile(rf"\b(?:sk|rk)_live_[A-Za-z0-9]{{20,1024}}{_END}"),
          ("sk_live_", "rk_live_"), 0.98, check=_random_body()),
    _Rule("stripe_test_key", re.compile(rf"\b(?:sk|rk)_test_[A-Za-z0-9]{{20,1024}}{_END}"),
          ("sk_test_", "rk_test_"), 0.85, check=_random_body()),
    _Rule("stripe_webhook_secret", re.compile(rf"\bwhsec_[A-Za-z0-9+/]{{24,1024}}{_END}"),
          ("whsec_",), 0.95, check=_random_body()),
    _Rule("google_api_key", re.compile(rf"\bAIza[{_URLSAFE}]{{35}}{_END}"), ("aiza",), 0.96),
    _Rule("google_oauth_secret", re.compile(rf"\bGOCSPX-[{_URLSAFE}]{{28}}{_END}"),
          ("gocspx-",), 0.97),
    _Rule("google_oauth_token", re.compile(rf"\bya29\.[{_URLSAFE}]{{30,1024}}{_END}"),
          ("ya29.",), 0.93),
    _Rule("twilio_api_key", re.compile(r"\bSK[0-9a-fA-F]{32}\b"), ("sk",), 0.88,
          check=_random_body(0.75, 1)),
    _Rule("twilio_auth_token", re.compile(
        r"(?i:twilio|auth[_\-]?token)[\w\s.\"':=\-]{0,40}?\b(?P<v>[0-9a-f]{32})\b"),
        ("twilio", "auth_token", "authtoken", "auth-token"), 0.85, "v", _random_body(0.75, 1)),
    _Rule("sendgrid_api_key", re.compile(rf"\bSG\.[{_URLSAFE}]{{22}}\.[{_URLSAFE}]{{43}}{_END}"),
          ("sg.",), 0.98),
    _Rule("npm_token", re.compile(rf"\bnpm_[A-Za-z0-9]{{36}}{_END}"), ("npm_",), 0.96,
          check=_random_body()),
    _Rule("pypi_token", re.compile(rf"\bpypi-AgE[{_URLSAFE}]{{50,1024}}{_END}"), ("pypi-age",),
          0.99),
    _Rule("huggingface_token", re.compile(rf"\b(?:hf|api_org)_[A-Za-z0-9]{{30,1024}}{_END}"),
          ("hf_", "api_org_"), 0.94, check=_random_body()),
    _Rule("azure_connection_string", re.compile(
        r"(?i)(?:AccountKey|SharedAccessKey|SharedAccessSignature)=[A-Za-z0-9+/=%&:\-]{20,1024}"),
        ("accountkey=", "sharedaccesskey=", "sharedaccesssignature="), 0.96, expand=True),
    _Rule("azure_sas_token", re.compile(
        r"[?&]sv=\d{4}-\d\d-\d\d&[^\s\"'<>]*?\bsig=[A-Za-z0-9%+/=]{20,1024}"), ("sig=",), 0.9,
        anchored=False),
    _Rule("jwt", re.compile(
        rf"\beyJ[{_URLSAFE}]{{8,4096}}\.eyJ[{_URLSAFE}]{{8,8192}}\.[{_URLSAFE}]{{8,4096}}{_END}"),
        ("eyj",), 0.93, check=_jwt_check),
    _Rule("bearer_token", re.compile(
        r"(?i)\bbearer\s+(?P<v>[A-Za-z0-9\-._~+/]{16,1024}=*)(?![A-Za-z0-9\-._~+/=])"),
        ("bearer",), 0.9, "v", _bearer_check),
    _Rule("basic_auth", re.compile(
        r"(?i)\bauthorization[\"']?\s*[:=]\s*[\"']?basic\s+(?P<v>[A-Za-z0-9+/]{8,1024}=*)"),
        ("authorization",), 0.9, "v", _basic_check),
    _Rule("private_key", re.compile(
        r"-----BEGIN (?P<t>(?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
        # the whole block; a truncated one (no END line) up to the end of its base64 lines
        r"(?:[\s\S]{16,16384}?-----END (?P=t)-----"
        r"|(?:(?:\\[rn]|\s)+(?:[A-Za-z0-9+/=]{16,1024}|[A-Za-z\-]+: [^\n\\]*))+)"),
        ("private key",), 0.99, anchored=False),
    _Rule("private_key", re.compile(
        r"PuTTY-User-Key-File-\d: [\s\S]{20,16384}?Private-MAC: [0-9a-f]+"),
        ("putty-user-key-file",), 0.99),
    _Rule("private_key", re.compile(r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b"),
          ("age-secret-key-",), 0.99),
]


# ------------------------------------------------------------------------ assignments

# names that hold credentials; "key" alone is too common ("key point") and needs a qualifier
# The last word of a credential's name (the part before it, "api_", "DB_", "stripeSecret",
# is taken back from the text). A word must not run on into a lower-case letter:
# "secretary", "tokenizer", "author", "keyboard" are not credential names.
_CREDENTIAL_WORDS = (
    r"(?:pass(?:word|wd|phrase|wort|e)?|pwd|secret|token|key|auth|credentials?|creds"
    r"|conn(?:ection)?[_\-]?str(?:ing)?|dsn|webhook[_\-]?url|contrase(?:ñ|n)a|wachtwoord)"
    r"(?-i:(?![a-z]))"
)
# where such a word can start (lower case): the assignment pattern is tried only there
_ASSIGN_ROOTS = ("pass", "pwd", "secret", "token", "key", "auth", "cred", "conn", "dsn",
                 "webhook", "contrase", "wachtwoord")
_ASSIGN = re.compile(
    rf"(?i)(?P<name>{_CREDENTIAL_WORDS}[\w.\-]{{0,24}})(?P<close>[\"'\]]?)[ \t]{{0,4}}"
    rf"(?P<op>:=|=>|==|=|:|\s(?:is|ist|est|es|è|is:)\s)[ \t]{{0,4}}"
    r"(?:(?P<q>[\"'`])(?P<qv>[^\"'`\n]{1,256})(?P=q)|(?P<uv>[^\s\"'`,;)}\]]{1,256}))"
)
_CODE_VALUE = re.compile(
    r"(?i)^(?:os\.|process\.env|env\(|getenv|environ|config\.|settings\.|self\.|this\.|\$|%"
    r"|request\.|req\.|args\.|kwargs|params|input\(|vault:|secret:|ref\+|arn:aws:secretsmanager"
    r"|![a-z]+$)"
    r"|[()\[\]{}]"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_PASSWORDISH = re.compile(r"(?i)pass|pwd")
# too generic alone: the value must look random
_WEAK_NAME = re.compile(r"(?i)^(?:key|auth|token)s?$")
_NOT_CREDENTIAL_WORDS = re.compile(
    r"(?i)(?:_?(?:id|ids|name|names|type|types|file|path|dir|url|uri|length|len|size|count|"
    r"field|fields|prompt|label|hint|policy|expir\w*|ttl|timeout|header|endpoint|format|"
    r"provider|version|algorithm|alg|limit|min|max|regex|pattern|column|mode|method|"
    r"hash|strength|reset|required|enabled|visible|input|validation|manager|store|words?|"
    r"count|index|cache|usage|budget))$"
)
_NOT_SECRET_WORD = re.compile(
    r"(?i)public|publishable|cache|idempot|primary|foreign|sort|partition|routing|dedup|lookup"
    r"|bucket|shortcut|hotkey|keyboard|monkey|turkey|hockey|whiskey|jockey|donkey|max_?tokens?"
    r"|num_?tokens|tokens?_?(?:count|limit|usage)"
)
_PROSE_NAME = re.compile(
    r"(?i)^(?:pass(?:word|wort|phrase|e)?|pwd|contrase(?:ñ|n)a|wachtwoord|mot de passe)$"
)
_CONN_NAME = re.compile(r"(?i)conn|dsn|webhook")
# a tight ``name=value`` for these names is a credential whatever the value's entropy
# (password=hunter2xyz), unless the value reads as a variable or a setting
_TIGHT_NAME = re.compile(r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token)s?$")
_CAMEL = re.compile(r"[a-z][A-Z]")
_CRED_IN_VALUE = re.compile(r"(?i)pass|pwd|secret|token|key|cred|auth")
_SETTING_VALUE = re.compile(
    r"(?i)^(?:true|false|none|null|nil|yes|no|on|off|required|optional|hidden|masked|"
    r"redacted|empty|unset|reset|changed|invalid|incorrect|expired|string|text|bool|"
    r"boolean|default|undefined|missing|random|generated|omitted|disabled|enabled)$"
)


def _tight_value(full_name: str, value: str, text: str, m: re.Match[str]) -> bool:
    """``password=hunter2xyz`` mid-sentence: a name of a credential, ``=`` or ``:`` with
    no space either side, a value of 6+ characters that is neither an identifier of code
    (snake_case, dotted, camelCase, one naming a credential) nor a setting's word."""
    op = m.group("op")
    if op not in ("=", ":") or m.group("close"):
        return False
    if text[m.start("op") - 1 : m.start("op")].isspace() or m.end("op") != m.start("uv"):
        return False
    return (
        _TIGHT_NAME.search(full_name) is not None and len(value) >= 6
        and "_" not in value and "." not in value and not _CAMEL.search(value)
        and not _CRED_IN_VALUE.search(value) and not _SETTING_VALUE.match(value)
    )


def _is_code_name(value: str) -> bool:
    """``password_from_form``, ``userPassword``, ``cfg.token``: a variable, not a value."""
    return _IDENTIFIER.fullmatch(value) is not None and _wordiness(value) >= 0.6


def _assign_matches(text: str, lower: str) -> Iterable[re.Match[str]]:
    if len(lower) != len(text):  # lower-casing changed offsets (rare non-ASCII text)
        yield from _ASSIGN.finditer(text)
        return
    yield from _anchored(_ASSIGN, text, lower, _ASSIGN_ROOTS)


def _anchored(pattern: re.Pattern[str], text: str, lower: str,
              needles: Iterable[str]) -> Iterable[re.Match[str]]:
    """``pattern`` matched only where one of ``needles`` starts in ``lower`` (the text
    lower-cased, same offsets), left to right, no two matches overlapping: a regex tried
    at a handful of anchors instead of at every position."""
    starts: list[int] = []
    for needle in needles:
        i = lower.find(needle)
        while i >= 0:
            starts.append(i)
            i = lower.find(needle, i + 1)
    end = -1
    for i in sorted(starts):
        if i < end:
            continue
        m = pattern.match(text, i)
        if m is not None:
            end = m.end()
            yield m


def _assignment_findings(text: str, lower: str) -> Iterable[Finding]:
    for m in _assign_matches(text, lower):
        name = m.group("name")
        op = m.group("op")
        quoted = m.group("qv") is not None
        value = m.group("qv") if quoted else m.group("uv")
        vstart = m.start("qv") if quoted else m.start("uv")
        # the whole identifier, e.g. DB_PASSWORD, stripeSecretKey, aws.secret_key
        begin = m.start()
        while begin > max(0, m.start() - 40) and (text[begin - 1].isalnum()
                                                   or text[begin - 1] in "_.-"):
            begin -= 1
        prefix_text = text[begin : m.start()]
        full_name = prefix_text + name
        if _NOT_SECRET_WORD.search(full_name):
            continue
        if _NOT_CREDENTIAL_WORDS.search(full_name.rstrip(".-_")) and not _PASSWORDISH.search(
            full_name[-8:]
        ):
            continue
        if op == "==" or value is None:
            continue
        value = value.strip()
        if is_placeholder(value) or _CODE_VALUE.search(value):
            continue
        if not quoted and _SETTING_VALUE.match(value):
            continue  # password: required, token=none (a schema or a flag, not a value)
        tight = not quoted and _tight_value(full_name, value, text, m)
        prose = op.strip() not in (":=", "=>", "=", ":")
        if prose:
            # "my password is hunter2": only for password-like names, and the value must
            # not be an ordinary word ("the password is incorrect")
            if not _PROSE_NAME.match(full_name) or not (
                quoted or any(c.isdigit() for c in value)
                or (_classes(value) >= 2 and any(not c.isalnum() for c in value))
            ):
                continue
        elif not quoted:
            line_start = text.rfind("\n", 0, m.start()) + 1
            lead = text[line_start:begin]
            at_line_start = lead.strip() in ("", "export", "-", "set", "ENV", "env", "#")
            # an env or YAML line (DB_PASSWORD=hunter, password: hunter) takes bare words;
            # code (password = password_from_form) assigns a variable
            config_line = at_line_start and (
                op == ":" or text[m.end("op") : m.end("op") + 1] not in (" ", "\t"))
            if _is_code_name(value) and not tight and not (
                config_line and _PASSWORDISH.search(full_name)
            ):
                continue
            if not at_line_start and not tight and _classes(value) < 2 and not any(
                not c.isalnum() for c in value
            ):
                continue
        if value.startswith("http") and "://" in value and not _CONN_NAME.search(full_name):
            continue  # token_url = "https://..." (a URL with a password is its own rule)
        ratio = randomness(value) if len(value) >= 8 else 0.0
        if _PASSWORDISH.search(full_name):
            rule, score = "password_assignment", 0.8 if len(value) >= 6 else 0.6
        elif _CONN_NAME.search(full_name):
            if "://" not in value and "password=" not in value.lower():
                continue
            rule, score = "connection_string", 0.75
        else:
            rule = "secret_assignment"
            score = 0.55 + 0.35 * min(1.0, max(0.0, (ratio - 0.6) / 0.35))
            if quoted or not tight:
                if len(value) < 8 or (_classes(value) < 2 and ratio < 0.85):
                    continue
                if _WEAK_NAME.match(full_name) and ratio < 0.8:
                    continue
        if prose:
            score = min(score, 0.75)
        yield Finding(KIND, vstart, vstart + len(value), round(score, 3), rule)


_URL_PASSWORD = re.compile(
    r"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://(?P<u>[^\s:/?#@\"'<>]{0,64}):(?P<p>[^\s/?#@\"'<>]{1,128})"
    r"@[A-Za-z0-9.\-\[\]_]+"
)


def _url_findings(text: str) -> Iterable[Finding]:
    for m in _URL_PASSWORD.finditer(text):
        password = m.group("p")
        if is_placeholder(password) or _CODE_VALUE.search(password):
            continue
        yield Finding(KIND, m.start("p"), m.end("p"), 0.9, "url_password")


# ---------------------------------------------------------------------------- entropy

_CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{20,}={0,2}(?![A-Za-z0-9+/=_\-])")
# The word just before a candidate says what it is: a credential word boosts the score
# ("token: ...", "my api key is ..."), a hash word suppresses it ("sha256: ...", "commit ...").
_KEY_WORD = re.compile(
    r"(?i)key|secret|token|passw|pwd|credential|auth(?!or)|bearer|private|signature|^sig$"
    r"|cookie|session|salt|otp|cred|jwt"
)
_HASH_WORD = re.compile(
    r"(?i)sha\d*|md5|hash|digest|checksum|commit|revision|^rev$|etag|uuid|guid|fingerprint"
    r"|integrity|object|blob|tree|build|image|container|request[_\-]?id|trace|span|(?:^|_)id$"
)
_TRAILING_SEPARATORS = re.compile(r"[\s\"'`:=>,(\[{]+\Z")  # whitespace of any kind too
_WORD_BREAK = re.compile(r"[^\w\-]")


def _word_before(before: str) -> str:
    """The last word of ``before``, skipping separators and a linking "is"."""
    tail = _TRAILING_SEPARATORS.sub("", before)
    words = tail.split()
    if len(words) > 1 and words[-1] in ("is", "are", "was"):
        words = _TRAILING_SEPARATORS.sub("", " ".join(words[:-1])).split()
    return _WORD_BREAK.split(words[-1])[-1] if words else ""


# "cus_", "in_", "pk_live_", "acct_": object ids and publishable keys, not credentials
_ID_PREFIX = re.compile(r"[a-z]{1,8}(?:_(?:live|test))?_(?=[A-Za-z0-9]{8,}$)")
_SECRET_PREFIXES = ("sk_", "rk_", "key_", "secret_", "token_", "pat_", "api_", "auth_", "pw_")
# public material that is as random as a key: certificates, public keys, ssh public keys
_PUBLIC_BLOCK = re.compile(
    r"-----BEGIN [A-Z0-9 ]*(?:CERTIFICATE|PUBLIC KEY)[A-Z ]*-----"
    r"[\s\S]*?(?:-----END [A-Z0-9 ]*-----|$)"
    r"|\b(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-ssh-ed25519@openssh\.com)"
    r" AAAA[A-Za-z0-9+/]+=*"
)


def _sequential(s: str) -> bool:
    """An alphabet or a keyboard run ("ABCDEF...", "0123456789"): as varied as a key, but
    half its neighbours are consecutive characters."""
    steps = sum(ord(b) - ord(a) == 1 for a, b in pairwise(s))
    return steps * 2 > len(s)


def _looks_like_text_b64(token: str) -> bool:
    body = token.replace("-", "+").replace("_", "/")
    if len(body) % 4 == 1:
        return False
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, binascii.Error):
        return False
    if not raw:
        return False
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(c.isprintable() or c in "\n\t\r" for c in decoded)
    return printable / len(decoded) > 0.95 and (" " in decoded or "{" in decoded
                                               or decoded.isalpha())


def _entropy_score(token: str, before: str, min_length: int) -> tuple[float, str] | None:
    core = token.rstrip("=")
    if len(core) < min_length:
        return None
    if len(core) > 512 or before.endswith(("base64,", "base64, ")):
        return None  # a data URI or an embedded file, not a credential
    word = _word_before(before[-40:])
    keyword = (_KEY_WORD.search(word) is not None and not _NOT_SECRET_WORD.search(word)
               and not _NOT_CREDENTIAL_WORDS.search(word))
    alphabet = _alphabet_of(core.replace("-", "").replace("_", ""))
    if alphabet == "hex" and not keyword:
        return None  # git SHAs, SHA-256 digests, UUIDs, MD5s: only after a credential word
    wordy = _wordiness(core)
    if wordy > 0.55:
        return None  # a path, an identifier, a slug
    if "/" in core and core.count("/") >= 2 and wordy > 0.3:
        return None
    hashy = _HASH_WORD.search(word) is not None
    ratio = randomness(core)
    if ratio < 0.85 or _sequential(core):
        return None
    digits = any(c.isdigit() for c in core)
    if alphabet == "hex":
        if hashy:
            return None
        return 0.55 + (0.15 if len(core) >= 32 else 0.0), "high_entropy_hex"
    if alphabet == "alnum_lower":
        score = 0.3 if digits else 0.2
    elif _classes(core) >= 3:
        score = 0.6
    elif len(core) >= 32 and digits:
        score = 0.5
    else:
        score = 0.3
    if _looks_like_text_b64(core):
        score -= 0.45
    if core.startswith(("pk_live_", "pk_test_")):
        return None  # Stripe publishable keys are public by design
    if _ID_PREFIX.match(core) and not core.startswith(_SECRET_PREFIXES):
        score -= 0.3
    if keyword:
        score += 0.25
    if hashy:
        score -= 0.3
    if len(core) >= 32:
        score += 0.05
    if ratio >= 0.95:
        score += 0.05
    score = min(0.85, score)
    if score < 0.35:
        return None
    return score, "high_entropy_string"


_URL_REST = re.compile(r"[^\s\"'<>]*")


def _url_spans(text: str) -> list[tuple[int, int]]:
    """Where URLs are: from each "://" back over the scheme and on to the next space."""
    spans = []
    i = text.find("://")
    while i >= 0:
        start = i
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "+.-"):
            start -= 1
        m = _URL_REST.match(text, i + 3)
        end = m.end() if m else i + 3
        spans.append((start, end))
        i = text.find("://", end)
    return spans
_QUERY_SECRET = re.compile(
    r"(?i)[?&;#](?:[\w\-]*(?:key|token|secret|sig|signature|password|auth|session|code))=$"
)


def _entropy_findings(text: str, min_length: int) -> Iterable[Finding]:
    urls = _url_spans(text) if "://" in text else []
    public = ([m.span() for m in _PUBLIC_BLOCK.finditer(text)]
              if "-----BEGIN" in text or "ssh-" in text or "ecdsa-" in text else [])
    for m in _CANDIDATE.finditer(text):
        token = m.group(0)
        start = m.start()
        if public and any(s <= start < e for s, e in public):
            continue
        before = text[max(0, start - 48) : start]
        scored = _entropy_score(token, before, min_length)
        if scored is None:
            continue
        score, rule = scored
        # part of a URL (a document id, a path): not a credential unless it is the value of
        # a query parameter named like one (?api_key=..., &sig=...)
        if any(s <= start < e for s, e in urls) and not _QUERY_SECRET.search(before):
            score -= 0.3
            if score < 0.35:
                continue
        end = start + len(token.rstrip("="))
        yield Finding(KIND, start, end, round(score, 3), rule)


# ---------------------------------------------------------------------------- scanner

class SecretsScanner:
    """Finds credentials in text; see the module docstring for the tiers and scores."""

    name = "secrets"
    kinds = (KIND,)

    def __init__(self, *, disabled_rules: Iterable[str] = (), entropy: bool = True,
                 min_entropy_length: int = 20, allowlist: Iterable[str] = ()) -> None:
        disabled = frozenset(disabled_rules)
        self._disabled = disabled
        self._rules = [r for r in _PROVIDER_RULES if r.name not in disabled]
        self._needles = frozenset(n for r in self._rules for n in r.needles)
        self._assignments = not disabled.issuperset(_ASSIGNMENT_RULES)
        self._urls = "url_password" not in disabled
        self._entropy = entropy and not disabled.issuperset(_ENTROPY_RULES)
        self._min_length = min_entropy_length
        self._allow = frozenset(allowlist)

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        if len(text) < 8:
            return []
        lower = text.lower()
        present = {n for n in self._needles if n in lower}
        found: list[Finding] = []
        for rule in self._rules:
            if present.isdisjoint(rule.needles):
                continue
            for m in _rule_matches(rule, text, lower, present):
                score = rule.score
                if rule.check is not None:
                    delta = rule.check(m.group(rule.group))
                    if delta is None:
                        continue
                    score += delta
                start, end = m.start(rule.group), m.end(rule.group)
                if rule.expand:
                    start, end = _expand(text, start, end)
                found.append(Finding(KIND, start, end, round(score, 3), rule.name))
        if "aws_access_key_id" in {f.detail for f in found}:
            found.extend(_aws_secret_near(text, found))
        extra: list[Finding] = []
        if self._urls and "://" in text:
            extra.extend(_url_findings(text))
        if self._assignments:
            extra.extend(_assignment_findings(text, lower))
        if self._entropy:
            extra.extend(_entropy_findings(text, self._min_length))
        if self._disabled:
            extra = [f for f in extra if f.detail not in self._disabled]
        if self._allow:
            found = [f for f in found if text[f.start : f.end] not in self._allow]
            extra = [f for f in extra if text[f.start : f.end] not in self._allow]
        # where findings overlap the best one stays; the lower tiers only where no provider
        # rule matched
        return _merge(found, extra)


def _rule_matches(rule: _Rule, text: str, lower: str,
                  present: set[str]) -> Iterable[re.Match[str]]:
    if not rule.anchored or len(lower) != len(text):
        yield from rule.pattern.finditer(text)
        return
    yield from _anchored(rule.pattern, text, lower, (n for n in rule.needles if n in present))


_NOT_SPAN = frozenset(" \t\r\n\"'`<>")


def _expand(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and text[start - 1] not in _NOT_SPAN:
        start -= 1
    while end < len(text) and text[end] not in _NOT_SPAN:
        end += 1
    return start, end


def _merge(first: list[Finding], second: list[Finding]) -> list[Finding]:
    """Non-overlapping findings: ``first`` by score (then length), then ``second`` where
    nothing in ``first`` is; sorted by position. O(n log n), for texts full of tokens."""
    starts: list[int] = []
    ends: list[int] = []  # of the kept findings, both sorted by start (they do not overlap)
    kept: list[Finding] = []
    for tier in (first, second):
        for f in sorted(tier, key=lambda f: (-f.score, f.start - f.end, f.start)):
            if f.end <= f.start:
                continue
            i = bisect.bisect_right(starts, f.start)
            if (i > 0 and ends[i - 1] > f.start) or (i < len(starts) and starts[i] < f.end):
                continue
            starts.insert(i, f.start)
            ends.insert(i, f.end)
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


_AWS_SECRET_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])")


def _aws_secret_near(text: str, found: list[Finding]) -> Iterable[Finding]:
    """A 40-character base64 token within a few lines of an access key id is its secret."""
    taken = [(f.start, f.end) for f in found]
    for f in found:
        if f.detail != "aws_access_key_id":
            continue
        lo, hi = max(0, f.start - 300), min(len(text), f.end + 300)
        for m in _AWS_SECRET_TOKEN.finditer(text, lo, hi):
            token = m.group(0)
            if _classes(token) >= 2 and randomness(token) >= 0.8 and all(
                m.end() <= s or m.start() >= e for s, e in taken
            ):
                yield Finding(KIND, m.start(), m.end(), 0.93, "aws_secret_access_key")


_ASSIGNMENT_RULES = frozenset({"password_assignment", "secret_assignment", "connection_string"})
_ENTROPY_RULES = frozenset({"high_entropy_string", "high_entropy_hex"})
RULE_NAMES = frozenset(
    {r.name for r in _PROVIDER_RULES} | _ASSIGNMENT_RULES | _ENTROPY_RULES | {"url_password"}
)
_OPTIONS = {"disabled_rules", "entropy", "min_entropy_length", "allowlist"}


def make_scanner(options: Mapping[str, Any]) -> SecretsScanner:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValueError(f"secrets: unknown option(s) {sorted(unknown)}")
    disabled = options.get("disabled_rules", ())
    if isinstance(disabled, str) or not all(isinstance(d, str) for d in disabled):
        raise ValueError("secrets: disabled_rules must be a list of rule names")
    bad = set(disabled) - RULE_NAMES
    if bad:
        raise ValueError(f"secrets: disabled_rules has unknown rule(s) {sorted(bad)}")
    entropy = options.get("entropy", True)
    if not isinstance(entropy, bool):
        raise ValueError("secrets: entropy must be true or false")
    min_length = options.get("min_entropy_length", 20)
    if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 12:
        raise ValueError("secrets: min_entropy_length must be an integer >= 12")
    allow = options.get("allowlist", ())
    if isinstance(allow, str) or not all(isinstance(a, str) for a in allow):
        raise ValueError("secrets: allowlist must be a list of strings")
    return SecretsScanner(disabled_rules=disabled, entropy=entropy,
                          min_entropy_length=min_length, allowlist=allow)
