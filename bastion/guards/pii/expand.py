"""Second pass over the findings: what one finding tells about the text around it.

- A name found once is the same name elsewhere in the text ("... directed by Bryan Maclean
  and starring Maclean").
- Items of a list that holds a found name are names too ("Hleb, Sheila, Donna and Shane").
- The short lines under a street line are the rest of the address (town, region,
  "Estonia 62488"), as long as they look like address lines: a few capitalised words or
  codes, no sentence.
- Cue phrases name places ("flew to", "originally from", "wohnt in", "habite à") and
  organisations ("works for", "Ltd", "GmbH").
"""

from __future__ import annotations

import re

from bastion.guards.base import Finding
from bastion.guards.pii.ner import FILLER

# a capitalised word, hyphenated parts included (a bounded number: patterns that repeat
# words must not be able to split one long hyphenated run in many ways)
_CAP = "[A-ZÄÖÜÀ-ÞŁŠŽ][\\w'\u2019]*(?:-[\\w'\u2019]+){0,3}"
_UPPER_OR_CAP = _CAP

_WORD = re.compile(r"[^\W\d_]+")
_ITEM = rf"{_CAP}(?:[ \t]{_CAP}){{0,2}}"
_LIST_ITEM = re.compile(_ITEM)
_LIST = re.compile(
    rf"(?<![\w'\u2019\-]){_ITEM}(?:,\s+{_ITEM})+,?\s+(?:and|und|et|y|e|en|or)\s+{_ITEM}"
)

_ADDRESS_LINE = re.compile(
    r"[ \t>?]*((?:[A-Z0-9ÄÖÜÀ-ÞŁŠŽ][\w'\u2019.\-]*|nan)(?:[ \t,]+[A-Z0-9ÄÖÜÀ-ÞŁŠŽ]"
    r"[\w'\u2019.\-]*){0,4})[ \t]*$"
)

_PLACE_CUE = re.compile(
    r"(?:\b(?i:flew to|flying to|moved to|lives in|living in|live in|originally from|born in"
    r"|grew up in|travel(?:l?ed|l?ing)? to|visiting|relocated to|based in|wohnt in|wohne in"
    r"|komme aus|kommt aus|habite à|habite a|vit à|vive en|vivo en|abita a|abito a|vivo a"
    r"|woont in|woon in))"
    rf"\s+((?:{_UPPER_OR_CAP})(?:[ ](?:{_UPPER_OR_CAP}|O'|de|del|la|le|am|an der)){{0,3}})"
)
_ORG_SUFFIX = re.compile(
    rf"(?<![\w'\u2019\-])(?:{_CAP}|\d{{1,5}})(?:[ ](?:{_CAP}|&|and|und|\d{{1,5}})){{0,4}},?\s"
    r"(?:Inc|Ltd|LLC|L\.L\.C"
    r"|GmbH|AG|KG|S\.A|SA|S\.p\.A|SpA|S\.r\.l|Srl|B\.V|BV|N\.V|NV|Corp|Corporation|Co|PLC|plc"
    r"|SARL|SAS|S\.L|SL|Group|Partners|Consulting|Technologies|Solutions|Systems|Holdings"
    r"|Industries|Bank|Foundation|University|Institute)\b\.?"
)
_ORG_CUE = re.compile(
    r"\b(?i:work(?:s|ed|ing)? (?:for|at)|employed (?:by|at)|joined|a year at|according to the"
    r"|arbeitet bei|arbeite bei|travaille chez|trabaja en|trabajo en|lavora per|lavoro per"
    r"|lavora presso|werkt bij|werk bij)"
    rf"\s+((?:{_CAP})(?:\s(?:{_CAP}|&|and|of)){{0,3}})"
)
_NOT_NAMES = frozenset(str.split("""
The A An This That It I We You He She They My Our Your His Her Their Mr Mrs Ms Dr And Or But
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June
July August September October November December Here There Home Work School Google
"""))


def expand(text: str, found: list[Finding], want: set[str]) -> list[Finding]:
    extra: list[Finding] = []
    persons = [f for f in found if f.kind == "PERSON" and f.score >= 0.5]
    if "PERSON" in want and persons:
        extra += _repeat_names(text, [f for f in persons if f.score >= 0.75])
        extra += _lists(text, persons, "PERSON")
    orgs = [f for f in found if f.kind == "ORGANIZATION" and f.score >= 0.5]
    if "ORGANIZATION" in want and orgs:
        extra += _lists(text, orgs, "ORGANIZATION")
    streets = [f for f in found if f.kind == "STREET_ADDRESS" and f.score >= 0.5]
    if "STREET_ADDRESS" in want:
        extra += _address_blocks(text, streets)
    if "PERSON" in want:
        extra += _addressees(text, streets)
    if "LOCATION" in want:
        for m in _PLACE_CUE.finditer(text):
            extra.append(Finding("LOCATION", m.start(1), m.end(1), 0.6, "place cue"))
    if "ORGANIZATION" in want:
        for m in _ORG_SUFFIX.finditer(text):
            extra.append(Finding("ORGANIZATION", m.start(), m.end(), 0.75, "company suffix"))
        for m in _ORG_CUE.finditer(text):
            if m.group(1).split()[0] not in _NOT_NAMES:
                extra.append(Finding("ORGANIZATION", m.start(1), m.end(1), 0.6, "org cue"))
    return extra


def _repeat_names(text: str, persons: list[Finding]) -> list[Finding]:
    tokens = set()
    for f in persons:
        for word in text[f.start:f.end].split():
            word = word.strip(".,;:'\"")
            if (len(word) > 2 and word[0].isupper() and word not in _NOT_NAMES
                    and word.lower() not in FILLER and word.isalpha()):
                tokens.add(word)
    if not tokens:
        return []
    return [Finding("PERSON", m.start(), m.end(), 0.7, "repeated name")
            for m in _WORD.finditer(text) if m.group(0) in tokens]


def _lists(text: str, members: list[Finding], kind: str) -> list[Finding]:
    out = []
    for m in _LIST.finditer(text):
        if not any(p.start >= m.start() and p.end <= m.end() for p in members):
            continue
        for item in _LIST_ITEM.finditer(m.group(0)):
            if item.group(0).split()[0] not in _NOT_NAMES:
                out.append(Finding(kind, m.start() + item.start(), m.start() + item.end(),
                                   0.65, "list member"))
    return out


def _address_blocks(text: str, streets: list[Finding]) -> list[Finding]:
    out = []
    for f in streets:
        pos = text.find("\n", f.end)
        if pos < 0 or text[f.end:pos].strip(" \t,"):
            continue  # the street is not the end of its line
        lines = 0
        blank = 0
        while pos >= 0 and lines < 4:
            nxt = text.find("\n", pos + 1)
            line_end = len(text) if nxt < 0 else nxt
            line = text[pos + 1:line_end]
            if not line.strip():
                blank += 1
                if blank > 1:
                    break
                pos = nxt
                continue
            m = _ADDRESS_LINE.fullmatch(line)
            if m is None or len(line) > 48:
                break
            out.append(Finding("STREET_ADDRESS", pos + 1 + m.start(1), pos + 1 + m.end(1), 0.7,
                               "address line"))
            lines += 1
            pos = nxt
    return out


_ADDRESSEE = re.compile(rf"[ \t>]*({_CAP}(?:[ \t]+(?:{_CAP}|[A-Z]\.?)){{1,3}})[ \t]*")


def _addressees(text: str, streets: list[Finding]) -> list[Finding]:
    """The line just above an address block's first line, when it is two to four
    capitalised words: the addressee ("Maureen Thibault\n\n41086 Kiannonkatu 98")."""
    out = []
    for f in streets:
        line_start = text.rfind("\n", 0, f.start) + 1
        if text[line_start:f.start].strip(" \t>"):
            continue
        end = line_start - 1
        while end > 0 and text[end - 1] == "\n":
            end -= 1
        if end <= 0:
            continue
        start = text.rfind("\n", 0, end) + 1
        m = _ADDRESSEE.fullmatch(text, start, end)
        if m is not None and not set(m.group(1).split()) & _NOT_NAMES:
            out.append(Finding("PERSON", m.start(1), m.end(1), 0.65, "addressee"))
    return out
