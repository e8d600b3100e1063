"""Toxicity: insults, threats, hate, sexual content, self-harm and profanity, scored offline
from a weighted lexicon (``_lexicon``) and a few phrase patterns, in English and the
strongest terms of German, French, Spanish, Italian and Dutch.

What makes a lexicon usable on model output:

* **Obfuscation**: the text is matched as a skeleton: folded (case, accents), digits and
  symbols inside words read as letters (``sh1t``, ``a$$``, ``b!tch``), letters spaced or
  dotted out joined (``f u c k``, ``f.u.c.k``), stretched letters accepted (``fuuuck``),
  and a word with ``*`` in it (``f*ck``, ``b**ch``) compared with the single-word terms.
* **Benign senses**: verbs with everyday meanings are not terms ("kill the process",
  "shoot a photo", "attack surface"); a threat is a phrase aimed at a person ("I'll kill
  you", "I'm going to stab him"); words with innocent senses weigh little.
* **Evidence, per category**: a term's weight is the chance that it alone makes the text
  toxic; terms combine as independent evidence (noisy-OR: ``1 - prod(1 - w)``), a repeated
  term adding a quarter of its weight, the other categories' evidence counting half. An
  insult aimed at "you" weighs 0.3 more, at "he/she is" 0.15 more. A single strong
  profanity ("this is fucking great", 0.45) stays under 0.5; "you fucking idiot" does not.

Findings are one per matched term (so a redact action can mask each), kind ``TOXICITY``,
``detail`` the category, score the category's score.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from bastion.guards.base import Finding, ScanContext
from bastion.guards.output._lexicon import LEXICON
from bastion.guards.output._match import Hit, TermMatcher, normalize_term, signature
from bastion.guards.output._text import fold, original_span

KIND = "TOXICITY"
CATEGORIES = tuple(LEXICON)
TARGET_BOOST = 0.3
THIRD_PERSON_BOOST = 0.15

# ------------------------------------------------------------------ phrase patterns

_PERSON = r"(?:you|u|ya|him|her|them|your (?:\w+)|y(?:ou)?r family|all of you|every one of you)"
_HARM_VERBS = (r"(?:kill|murder|stab|shoot|strangle|choke|rape|slaughter|butcher|behead"
               r"|hang|burn|torture|hurt|gut|skin|bury|drown|beat the shit out of)")
_GROUPS = (
    r"(?:jews?|muslims?|christians?|blacks?|black people|whites?|white people|asians?"
    r"|mexicans?|immigrants?|migrants?|refugees?|gays?|gay people|lesbians?"
    r"|trans(?:gender)? people|women|females|arabs?|africans?|indians?|chinese|gypsies|roma"
    r"|latinos?|hispanics?|foreigners?|juden|auslander|fluchtlinge|muslime|schwule|frauen"
    r"|juifs?|arabes?|noirs?|etrangers?|femmes|judios|moros|inmigrantes|negros|mujeres"
    r"|ebrei|negri|immigrati|donne|joden|moslims|buitenlanders|vrouwen)"
)
_DEHUMANIZING = (
    r"(?:animals|vermin|parasites|cockroaches|rats|subhumans?|savages|scum|filth|trash"
    r"|garbage|a disease|a plague|a cancer|inferior|not human|monkeys|apes|pigs|dogs|tiere"
    r"|ungeziefer|parasiten|untermenschen|des animaux|de la vermine|des parasites"
    r"|animales|parasitos|animali|parassiti|dieren|ongedierte)"
)
THREAT_PATTERNS: list[tuple[str, float, re.Pattern[str]]] = [
    ("threat", 0.9, re.compile(
        rf"\b(?:i|we)\s*(?:'ll|will|'m going to|am going to|'m gonna|am gonna|are going to"
        rf"|are gonna|gonna|ll|m going to|m gonna)\s+(?:\w+\s+)?{_HARM_VERBS}\s+{_PERSON}\b")),
    ("threat", 0.85, re.compile(
        rf"\b(?:someone|somebody)\s+(?:should|needs to|ought to)\s+{_HARM_VERBS}\s+{_PERSON}\b")),
    ("threat", 0.8, re.compile(
        r"\b(?:you|u)\s+(?:deserve|need|ought)\s+to\s+(?:die|be killed|be shot|be raped"
        r"|suffer|be hanged|burn)\b")),
    ("hate", 0.9, re.compile(
        rf"\b{_GROUPS}\s+(?:are|r|is|sind|sont|son|sono|zijn)\s+(?:all\s+|just\s+|only\s+"
        rf"|nothing but\s+|like\s+|alle\s+|nur\s+|wie\s+|como\s+|come\s+)?{_DEHUMANIZING}\b")),
    ("hate", 0.9, re.compile(
        rf"\b{_GROUPS}\s+(?:should|must|need to|deserve to|ought to|sollten|mussen|doivent"
        rf"|deben|devono|moeten)\s+(?:all\s+)?(?:die|be killed|be exterminated|be gassed"
        rf"|be shot|be hanged|burn|be wiped out|be eradicated|sterben|vergast werden"
        rf"|mourir|morir|morire|dood)\b")),
    ("hate", 0.85, re.compile(
        rf"\b(?:kill|gas|exterminate|shoot|hang|burn|eradicate|wipe out|genocide)\s+"
        rf"(?:all\s+)?(?:the\s+|those\s+|these\s+)?{_GROUPS}\b")),
    ("hate", 0.7, re.compile(rf"\bi\s+(?:hate|despise)\s+(?:all\s+)?(?:the\s+)?{_GROUPS}\b")),
]
_TARGET = re.compile(
    r"(?:^|[^\w'])(?:you|u|ya|ur|your|you'?re|yourself|du|dich|dir|tu|toi|vous|t'?es|eres"
    r"|sei|jij|je bent)(?:[^\w]+\w+){0,3}[^\w]*$"
)
_THIRD_PERSON = re.compile(
    r"(?:^|[^\w'])(?:he|she|they|he'?s|she'?s|they'?re|this guy|that guy|er|sie|il|elle|el"
    r"|ella|lui|lei|hij|zij)\s+(?:is|are|was|were|ist|est|es|e|is)(?:\s+\w+){0,2}[^\w]*$"
)
# cheap tests before the phrase patterns: a harm verb, a group name
_HARM_STEMS = ("kill", "murder", "stab", "shoot", "strangl", "chok", "rape", "slaughter",
               "butcher", "behead", "hang", "burn", "tortur", "hurt", "gut", "skin", "bury",
               "drown", "beat", "die", "suffer")
_GROUP_STEMS = ("jew", "muslim", "christian", "black", "white", "asian", "mexican", "migra",
                "refug", "gay", "lesbian", "trans", "women", "female", "arab", "africa",
                "indian", "chinese", "gyps", "roma", "latin", "hispan", "foreign", "jude",
                "auslander", "fluchtling", "muslime", "schwul", "frauen", "juif", "noir",
                "etranger", "femme", "judio", "moro", "negr", "mujer", "ebre", "immigra",
                "donne", "joden", "moslim", "buitenland", "vrouw")

# ---------------------------------------------------------------------- skeleton

_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a",
         "$": "s", "!": "i", "|": "i", "+": "t", "€": "e"}
_LEET_CHAR = re.compile(r"[0-9@$!|+€]")
_TOKEN_CHARS = frozenset("@$!|+€")
_SPACED = re.compile(r"(?<![\w*])(?:[a-z](?P<sep>[ .\-_*])){2,}[a-z](?![\w*])")
_MASKED = re.compile(r"(?<![\w*])[a-z]+[*#]+[a-z*#]*(?![\w*])")


def _deleet_text(s: str) -> str:
    """Reads digits and symbols inside words as letters, one character for one."""
    if _LEET_CHAR.search(s) is None:
        return s
    chars: list[str] | None = None
    n, done = len(s), -1
    for m in _LEET_CHAR.finditer(s):
        i = m.start()
        if i < done:
            continue
        a, b = i, i + 1
        while a > 0 and (s[a - 1].isalnum() or s[a - 1] in _TOKEN_CHARS or s[a - 1] == "_"):
            a -= 1
        while b < n and (s[b].isalnum() or s[b] in _TOKEN_CHARS or s[b] == "_"):
            b += 1
        done = b
        token = s[a:b]
        new = _deleet(token)
        if new != token:
            if chars is None:
                chars = list(s)
            chars[a:b] = new
    return "".join(chars) if chars is not None else s


def _deleet(token: str) -> str:
    if not any(c.isalpha() for c in token):
        return token  # a number, a price
    out = []
    for i, ch in enumerate(token):
        repl = _LEET.get(ch)
        # "!" "|" "+" stand for letters only inside a word ("b!tch", not "idiot!")
        if repl and (ch not in "!|+" or (i + 1 < len(token) and token[i + 1].isalpha())):
            out.append(repl)
        else:
            out.append(ch)
    return "".join(out)


def skeleton(text: str) -> tuple[str, list[int] | None]:
    """The text as the lexicon is matched against it, with the original offset of each
    character (``None``: unchanged offsets)."""
    folded, offsets = fold(text)
    folded = _deleet_text(folded)  # one character for one: offsets hold
    if _SPACED.search(folded) is None:
        return folded, offsets
    keep: list[bool] = [True] * len(folded)
    for m in _SPACED.finditer(folded):
        sep = m.group("sep")
        consistent = all(folded[i] == sep for i in range(m.start() + 1, m.end(), 2))
        if consistent:
            for i in range(m.start() + 1, m.end(), 2):
                keep[i] = False
    base = offsets if offsets is not None else range(len(folded))
    chars = [c for c, k in zip(folded, keep, strict=True) if k]
    new_offsets = [o for o, k in zip(base, keep, strict=True) if k]
    return "".join(chars), new_offsets


# ----------------------------------------------------------------------- scanner

class ToxicityScanner:
    name = "toxicity"
    kinds = (KIND,)

    def __init__(self, categories: Iterable[str] = CATEGORIES,
                 extra_terms: Mapping[str, list[str]] | None = None) -> None:
        self.categories = frozenset(categories)
        terms: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for category, tiers in LEXICON.items():
            for weight, joined in tiers.items():
                for term in joined.split("|"):
                    terms[term].append((category, weight))
        for category, extra in (extra_terms or {}).items():
            for term in extra:
                terms[term].append((category, 0.7))
        self._matcher = TermMatcher(terms, fuzzy=True)
        # single words for masked tokens ("f*ck"): normalized term -> (category, weight)
        self._words: list[tuple[str, bool, list[tuple[str, float]]]] = []
        for raw, pairs in terms.items():
            word = normalize_term(raw.rstrip("*"))
            if " " not in word and word.isalpha():
                self._words.append((word, raw.endswith("*"), pairs))

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        sk, offsets = skeleton(text)
        masked: list[Hit] = []
        if "*" in sk or "#" in sk:
            sk, masked = self._unmask(sk)
        hits = self._matcher.hits(sk) + masked
        harm = any(v in sk for v in _HARM_STEMS)
        groups = any(g in sk for g in _GROUP_STEMS)
        for i, (category, weight, pattern) in enumerate(THREAT_PATTERNS):
            if (harm if category == "threat" else groups):
                hits.extend(Hit(category, weight, f"pattern {i}", m.start(), m.end())
                            for m in pattern.finditer(sk))
        hits = [h for h in hits if h.label in self.categories]
        if not hits:
            return []
        weights: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for h in hits:
            w = h.weight
            if h.label == "insult":
                window = max(0, h.start - 40)
                if _TARGET.search(sk, window, h.start):
                    w = min(0.95, w + TARGET_BOOST)
                elif _THIRD_PERSON.search(sk, window, h.start):
                    w = min(0.95, w + THIRD_PERSON_BOOST)
            weights[h.label][h.term].append(w)
        # log(1 - p) per category: noisy-OR of its terms
        logs = {c: _log_miss(terms) for c, terms in weights.items()}
        everything = sum(logs.values())
        scores = {}
        for c, own in logs.items():
            others = 1 - math.exp(everything - own)  # the other categories' evidence...
            miss = math.exp(own) * (1 - others / 2)  # ...counts half
            scores[c] = round(1 - miss, 3)
        findings = []
        for h in hits:
            start, end = original_span(offsets, h.start, h.end, len(text))
            findings.append(Finding(KIND, start, end, scores[h.label], h.label))
        return findings

    def _unmask(self, sk: str) -> tuple[str, list[Hit]]:
        """Words with ``*`` or ``#`` for letters: one that fits a single-word term of its
        length is written out (so "f*ck you" matches the phrase); one that fits only a
        prefix ("f**kers") is a hit of its own."""
        out: list[Hit] = []
        chars: list[str] | None = None
        for m in _MASKED.finditer(sk):
            token = m.group(0)
            visible = sum(c.isalpha() for c in token)
            if visible < 2 or visible < len(token) - visible:
                continue
            for word, is_prefix, pairs in self._words:
                if _fits(token, word):
                    if chars is None:
                        chars = list(sk)
                    chars[m.start() : m.end()] = word
                    break
                if is_prefix and len(token) > len(word) and _fits(token[: len(word)], word):
                    key = signature(word) + "*"
                    out.extend(Hit(label, w, key, m.start(), m.end()) for label, w in pairs)
                    break
        return ("".join(chars) if chars is not None else sk), out


def _fits(token: str, word: str) -> bool:
    """``token`` with its ``*``/``#`` read as any letter spells ``word``."""
    return len(token) == len(word) and all(
        t == w or t in "*#" for t, w in zip(token, word, strict=True))


def _log_miss(terms: Mapping[str, list[float]]) -> float:
    """log of the chance that none of the terms makes the text toxic (a repeat of a term
    counts a quarter of its weight)."""
    total = 0.0
    for ws in terms.values():
        w = max(ws)
        total += math.log1p(-min(w, 0.999)) + (len(ws) - 1) * math.log1p(-w / 4)
    return total


def make_scanner(options: Mapping[str, Any]) -> ToxicityScanner:
    unknown = set(options) - {"categories", "extra_terms"}
    if unknown:
        raise ValueError(f"toxicity: unknown option(s) {sorted(unknown)}")
    categories = options.get("categories", list(CATEGORIES))
    if (isinstance(categories, str) or not isinstance(categories, list) or not categories
            or not set(categories) <= set(CATEGORIES)):
        raise ValueError(f"toxicity: categories must be a non-empty list of {list(CATEGORIES)}")
    extra = options.get("extra_terms", {})
    if not isinstance(extra, Mapping) or not all(
        c in CATEGORIES and isinstance(ts, list) and all(isinstance(t, str) and t for t in ts)
        for c, ts in extra.items()
    ):
        raise ValueError("toxicity: extra_terms must map a category to a list of terms")
    return ToxicityScanner(categories, extra)
