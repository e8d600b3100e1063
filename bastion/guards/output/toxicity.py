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
  profanity ("this is fucking great") scores 0.55, a mild one ("what the hell") 0.2, a
  lone mild insult ("stupid bug") 0.35; "you fucking idiot" 0.75.

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
_HARM_WORDS = ("kill", "murder", "stab", "shoot", "strangl", "chok", "rape", "slaughter",
               "butcher", "behead", "hang", "burn", "tortur", "hurt", "gut", "skin", "bury",
               "drown", "beat the")
_GROUPS = (
    r"(?:jews?|muslims?|christians?|blacks?|black people|whites?|white people|asians?"
    r"|mexicans?|immigrants?|migrants?|refugees?|gays?|gay people|lesbians?"
    r"|trans(?:gender)? people|women|woman|girls|females|arabs?|africans?|indians?|chinese"
    r"|gypsies|roma"
    r"|latinos?|hispanics?|foreigners?|juden|auslander|fluchtlinge|muslime|schwule|frauen"
    r"|juifs?|arabes?|noirs?|etrangers?|femmes|judios|moros|inmigrantes|negros|mujeres"
    r"|immigres|musulmans|homosexuels|ebrei|negri|immigrati|donne|joden|moslims"
    r"|buitenlanders|vrouwen)"
)
_DEHUMANIZING = (
    r"(?:animals|vermin|parasites|cockroaches|rats|subhumans?|savages|scum|filth|trash"
    r"|garbage|a disease|a plague|a cancer|inferior|not human|monkeys|apes|pigs|dogs|tiere"
    r"|ungeziefer|parasiten|untermenschen|des animaux|de la vermine|des parasites"
    r"|animales|parasitos|animali|parassiti|dieren|ongedierte)"
)
# a group called stupid, dirty, criminal...: an insult aimed at a group is hate
_GROUP_INSULTS = (
    r"(?:stupid|dumb|disgusting|dirty|filthy|evil|criminals|freaks|worthless|ugly|lazy"
    r"|thieves|rapists|terrorists|inferior|a mistake|dangerous|sick|perverts|retarded)"
)
# (category, weight, needles: one must occur for the pattern to run; None: a group name)
THREAT_PATTERNS: list[tuple[str, float, tuple[str, ...] | None, re.Pattern[str]]] = [
    ("threat", 0.9, _HARM_WORDS, re.compile(
        rf"\b(?:i|we)\s*(?:'ll|will|'m going to|am going to|'m gonna|am gonna|are going to"
        rf"|are gonna|gonna|ll|m going to|m gonna)\s+(?:\w+\s+){{0,4}}{_HARM_VERBS}"
        rf"\s+{_PERSON}\b")),
    ("threat", 0.8, ("hope", "wish", "pray"), re.compile(
        r"\bi\s+(?:hope|wish|pray)\s+(?:that\s+)?(?:you|u)\s+(?:\w+\s+){0,4}"
        r"(?:die|dies|get raped|get cancer|burn|suffer|rot|get shot|get killed)\b")),
    ("threat", 0.8, ("them all", "em all", "those all"), re.compile(
        r"\b(?:gas|kill|exterminate|shoot|hang|burn|nuke|slaughter)\s+(?:them|em|those)"
        r"\s+all\b")),
    ("threat", 0.85, ("beat", "kick", "punch"), re.compile(
        r"\b(?:beat|kick|punch)\s+(?:you|u|him|her|them)\s+(?:up|senseless|to death|until"
        r"|bloody|black and blue|half to death)")),
    ("threat", 0.85, ("throat", "wrist", "neck"), re.compile(
        r"\b(?:slit|cut|slice)\s+(?:your|ur|his|her|their)\s+(?:throat|wrists|neck)")),
    ("threat", 0.8, ("should be", "must be", "ought to be", "need to be"), re.compile(
        r"\b(?:you|u|people like you|they|them|he|she)\s+(?:should|must|ought to|need to)"
        r"\s+be\s+(?:put down|shot|hanged|killed|executed|lynched|gassed|burned)")),
    # the other languages' threats with a few words between the parts
    ("threat", 0.9, ("dich", "je vais", "te voy", "ti ", "ik ga", "ik zal"), re.compile(
        r"\bich\s+(?:werde|will|wurde)\s+dich\s+(?:\w+\s+){0,3}(?:umbringen|toten"
        r"|kaltmachen|abstechen|erschiessen|abknallen)\b"
        r"|\bje\s+vais\s+te\s+(?:\w+\s+){0,2}(?:tuer|buter|crever|egorger)\b"
        r"|\bte\s+voy\s+a\s+(?:\w+\s+){0,2}(?:matar|apunalar|reventar)\b"
        r"|\bti\s+(?:\w+\s+){0,2}(?:ammazzo|uccido|sgozzo)\b"
        r"|\bik\s+(?:ga|zal)\s+je\s+(?:\w+\s+){0,2}(?:vermoorden|afmaken|doodmaken"
        r"|neersteken)\b")),
    ("threat", 0.85, ("someone", "somebody"), re.compile(
        rf"\b(?:someone|somebody)\s+(?:should|needs to|ought to)\s+{_HARM_VERBS}\s+{_PERSON}\b")),
    ("threat", 0.8, ("deserve", "need to", "ought to"), re.compile(
        r"\b(?:you|u)\s+(?:deserve|need|ought)\s+to\s+(?:die|be killed|be shot|be raped"
        r"|suffer|be hanged|burn)\b")),
    ("hate", 0.9, None, re.compile(
        rf"\b{_GROUPS}\s+(?:are|r|is|sind|sont|son|sono|zijn)\s+(?:all\s+|just\s+|only\s+"
        rf"|nothing but\s+|like\s+|alle\s+|nur\s+|wie\s+|como\s+|come\s+)?{_DEHUMANIZING}\b")),
    ("hate", 0.9, None, re.compile(
        rf"\b{_GROUPS}\s+(?:should|must|need to|deserve to|ought to|sollten|mussen|doivent"
        rf"|deben|devono|moeten)\s+(?:all\s+)?(?:die|be killed|be exterminated|be gassed"
        rf"|be shot|be hanged|burn|be wiped out|be eradicated|sterben|vergast werden"
        rf"|mourir|morir|morire|dood)\b")),
    ("hate", 0.85, None, re.compile(
        rf"\b(?:kill|gas|exterminate|shoot|hang|burn|eradicate|wipe out|genocide)\s+"
        rf"(?:all\s+)?(?:the\s+|those\s+|these\s+)?{_GROUPS}\b")),
    ("hate", 0.7, None, re.compile(rf"\bi\s+(?:hate|despise)\s+(?:all\s+)?(?:the\s+)?{_GROUPS}\b")),
    ("hate", 0.75, None, re.compile(
        rf"\b{_GROUPS}\s+(?:are|r|is)\s+(?:all\s+|just\s+|so\s+|too\s+|such\s+|naturally\s+"
        rf"|inherently\s+)*{_GROUP_INSULTS}\b")),
    ("self_harm", 0.85, ("bring",), re.compile(r"\bbring\s+dich\s+(?:\w+\s+){1,3}um\b")),
    ("threat", 0.75, ("punch", "hit", "slap", "smack", "kick", "stab", "shoot", "smash"),
     re.compile(r"\b(?:punch|hit|slap|smack|kick|stab|shoot|smash)\s+(?:you|u|ya|him|her)\s+in"
                r"\s+(?:the|your|his|her)\s+(?:face|head|mouth|teeth|throat|balls|nuts|gut)")),
    ("threat", 0.85, ("out of",), re.compile(
        r"\bbeat\s+the\s+(?:crap|shit|hell|fuck|living daylights)\s+out\s+of\s+"
        r"(?:you|u|ya|him|her|them)\b")),
    ("threat", 0.8, ("get", "catch"), re.compile(
        r"(?:^|[.!?,]\s*|\bjust\s+|\bgo\s+)(?:get|catch)\s+(?:cancer|aids|ebola|raped"
        r"|hit by a (?:car|bus|truck|train))\b")),
    ("hate", 0.5, None, re.compile(rf"\btypical\s+{_GROUPS}\b")),
    ("hate", 0.85, ("should", "must", "need to", "deserve"), re.compile(
        r"\b(?:these|those|all the|all)\s+(?:animals|vermin|rats|parasites|savages|cockroaches"
        r"|subhumans)\s+(?:should|must|need to|deserve to)\s+(?:all\s+)?(?:be\s+)?(?:wiped out"
        r"|exterminated|killed|gassed|shot|die|burn|burned|eradicated)")),
]
_TARGET = re.compile(
    r"(?:^|[^\w'])(?:you|u|ya|ur|your|you'?re|yourself|du|dich|dir|tu|toi|vous|t'?es|eres"
    r"|sei|jij|je bent)(?:[^\w]+\w+){0,3}[^\w]*$"
)
_THIRD_PERSON = re.compile(
    r"(?:^|[^\w'])(?:he|she|they|he'?s|she'?s|they'?re|this guy|that guy|er|sie|il|elle|el"
    r"|ella|lui|lei|hij|zij)\s+(?:is|are|was|were|ist|est|es|e|is)(?:\s+\w+){0,2}[^\w]*$"
    # "... is a gullible idiot", "... are such morons": an insult as the predicate
    r"|\b(?:is|are|was|were|'s|'re)\s+(?:(?:a|an|such|so|total|complete|absolute|real|utter"
    r"|fucking|little|big|stupid|gullible)\s+){1,3}$"
)
# cheap test before the group patterns: a group name
_GROUP_STEMS = ("jew", "muslim", "christian", "black", "white", "asian", "mexican", "migra",
                "refug", "gay", "lesbian", "trans", "women", "female", "arab", "africa",
                "indian", "chinese", "gyps", "roma", "latin", "hispan", "foreign", "jude",
                "auslander", "fluchtling", "muslime", "schwul", "frauen", "juif", "noir",
                "etranger", "femme", "judio", "moro", "negr", "mujer", "ebre", "immigra",
                "donne", "joden", "moslim", "buitenland", "vrouw", "immigr")

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
        # single words for masked tokens ("f*ck"), by length; prefixes ("fuck*") apart
        self._words: dict[int, list[str]] = defaultdict(list)
        self._prefixes: list[tuple[str, list[tuple[str, float]]]] = []
        for raw, pairs in terms.items():
            word = normalize_term(raw.rstrip("*"))
            if " " in word or not word.isalpha():
                continue
            if raw.endswith("*"):
                self._prefixes.append((word, pairs))
            self._words[len(word)].append(word)

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        sk, offsets = skeleton(text)
        masked: list[Hit] = []
        if "*" in sk or "#" in sk:
            sk, masked = self._unmask(sk)
        hits = self._matcher.hits(sk) + masked
        groups = any(g in sk for g in _GROUP_STEMS)
        for i, (category, weight, needles, pattern) in enumerate(THREAT_PATTERNS):
            if groups if needles is None else any(n in sk for n in needles):
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
            word = next((w for w in self._words.get(len(token), ()) if _fits(token, w)), None)
            if word is not None:
                if chars is None:
                    chars = list(sk)
                chars[m.start() : m.end()] = word
                continue
            for prefix, pairs in self._prefixes:
                if len(token) > len(prefix) and _fits(token[: len(prefix)], prefix):
                    key = signature(prefix) + "*"
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
