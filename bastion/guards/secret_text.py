"""What a string looks like, for the secrets scanner: its entropy against what a random
string of its length and alphabet would have, its character classes, how much of it reads
as words, and whether it is a placeholder from an example."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

# --------------------------------------------------------------------------- entropy

_CLOGC = [0.0] + [c * math.log2(c) for c in range(1, 1025)]


def shannon_entropy(s: str) -> float:
    """Bits per character of ``s`` under its own character distribution."""
    n = len(s)
    if n == 0:
        return 0.0
    clog = _CLOGC
    total = sum(clog[c] if c < 1025 else c * math.log2(c) for c in Counter(s).values())
    return math.log2(n) - total / n


_ALPHABETS = {
    "hex": "0123456789abcdef",
    "alnum_lower": "0123456789abcdefghijklmnopqrstuvwxyz",
    "alnum": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "base64": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/",
}


@lru_cache(maxsize=2048)
def expected_entropy(length: int, alphabet: str) -> float:
    """Mean entropy per character of uniformly random strings of ``length`` over
    ``alphabet``: short strings cannot reach log2 of the alphabet size (20 characters from
    64 are at most log2(20) bits each). Exact: with N_c ~ Binomial(n, 1/k) the count of one
    symbol, E[H] = log2(n) - (k / n) * sum_j P(N_c = j) * j * log2(j)."""
    n, k = length, len(_ALPHABETS[alphabet])
    if n <= 1:
        return 0.0
    p = 1.0 / k
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for j in range(2, n + 1):
        log_pmf = (math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                   + j * log_p + (n - j) * log_q)
        if log_pmf < -40 and j > n * p:
            break
        total += math.exp(log_pmf) * j * math.log2(j)
    return math.log2(n) - k / n * total


def _alphabet_of(s: str) -> str:
    if _HEX_ONLY.fullmatch(s):
        return "hex"
    if _LOWER_ALNUM.fullmatch(s) or _UPPER_ALNUM.fullmatch(s):
        return "alnum_lower"
    if _ALNUM.fullmatch(s):
        return "alnum"
    return "base64"


def randomness(s: str) -> float:
    """Entropy of ``s`` relative to a random string of its length and alphabet (1.0: as
    random as chance; English words and repeated characters score far lower)."""
    body = s.rstrip("=")
    if len(body) < 8:
        return 0.0
    core = re.sub(r"[_\-]", "", body)  # separators do not carry randomness
    if len(core) < 8:
        return 0.0
    return shannon_entropy(core) / expected_entropy(len(core), _alphabet_of(core))


_HEX_ONLY = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_LOWER_ALNUM = re.compile(r"[0-9a-z]+")
_UPPER_ALNUM = re.compile(r"[0-9A-Z]+")
_ALNUM = re.compile(r"[0-9A-Za-z]+")


_DIGIT = re.compile(r"\d")


def _classes(s: str) -> int:
    """How many of lower case, upper case and digits ``s`` has."""
    return (s != s.upper()) + (s != s.lower()) + (_DIGIT.search(s) is not None)


# ------------------------------------------------------------------------ placeholders

_PLACEHOLDER = re.compile(
    r"(?i)^(?:<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|\$[A-Z_][A-Z0-9_]*|%\(?\w*\)?s?|\*+|x{3,}|\.{3,}"
    r"|(?:your|my|the|insert|enter|put|add|replace)[_\- ]?\w*|\w*(?:_here|_goes_here)"
    r"|changeme|change_me|example\w*|sample\w*|dummy\w*|placeholder\w*|redacted|hidden"
    r"|secret|password|passwd|pass|token|api[_\-]?key|none|null|nil|true|false|undefined"
    r"|test|testing|foo|bar|baz|foobar|abc|abc123|123|1234|12345|123456|todo|tbd|n/?a|-+)$"
)


def is_placeholder(value: str) -> bool:
    v = value.strip().strip("'\"`")
    if not v:
        return True
    if _PLACEHOLDER.match(v):
        return True
    # one character repeated, or a run like "aaaa-bbbb" / "0000000"
    return len(set(v.replace("-", "").replace("_", "").lower())) <= 2


_WORDY = re.compile(r"[A-Z]?[a-z]{3,}")


def _wordiness(s: str) -> float:
    """Share of ``s`` in runs that read like words (paths, identifiers, slugs score high;
    random tokens low)."""
    return sum(len(w) for w in _WORDY.findall(s)) / len(s) if s else 0.0
