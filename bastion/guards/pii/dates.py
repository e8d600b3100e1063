"""Dates, and dates of birth: a calendar date (numeric or with a month name in one of the
six languages) that a birth word ("born", "geboren", "né le", "nacido", "nato",
"geboortedatum"...) stands near. A date with no such word is only a ``DATE_TIME`` with a
low score: most dates in prompts are deadlines and meetings, not personal data.
"""

from __future__ import annotations

import re

from bastion.guards.base import Finding
from bastion.guards.pii.context import ContextIndex

MONTHS = {
    "en": "january february march april may june july august september october november "
          "december jan feb mar apr jun jul aug sep sept oct nov dec",
    "de": "januar jänner februar märz april mai juni juli august september oktober november "
          "dezember",
    "fr": "janvier février fevrier mars avril mai juin juillet août aout septembre octobre "
          "novembre décembre decembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre "
          "noviembre diciembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre "
          "novembre dicembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november "
          "december",
}
_ALL_MONTHS = sorted({w for words in MONTHS.values() for w in words.split()}, key=len,
                     reverse=True)
_MONTH = "(?:" + "|".join(_ALL_MONTHS) + r")\.?"
_YEAR = r"(?:19|20)\d{2}"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"

_DATE = re.compile(
    rf"(?<![\w.\-/])(?:"
    # 1985-03-12, 12.03.1985, 12/03/1985, 3/12/85
    rf"{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?:[ T]\d{{2}}:\d{{2}}(?::\d{{2}})?)?"
    rf"|{_DAY}[./\-](?:0?[1-9]|1[0-2])[./\-](?:{_YEAR}|\d{{2}})"
    rf"|(?:0?[1-9]|1[0-2])/{_DAY}/(?:{_YEAR}|\d{{2}})"
    # 12 March 1985, 12. März 1985, 12 de marzo de 1985, 1er janvier 1990
    rf"|{_DAY}(?:st|nd|rd|th|er|º|°|\.)?\s(?:de\s|of\s)?{_MONTH}(?:\sde|\sdel)?,?\s{_YEAR}"
    # March 12, 1985 / March 12th 1985
    rf"|{_MONTH}\s{_DAY}(?:st|nd|rd|th)?,?\s{_YEAR}"
    rf")(?![\w\-/]|\.\d)",
    re.IGNORECASE,
)


def find_dates(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _DATE.finditer(text):
        if ctx.near("DATE_OF_BIRTH", m.start(), m.end(), before=40, after=8):
            out.append(Finding("DATE_OF_BIRTH", m.start(), m.end(), 0.9, "date near birth word"))
        else:
            out.append(Finding("DATE_TIME", m.start(), m.end(), 0.4, "calendar date"))
    return out
