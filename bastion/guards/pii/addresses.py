"""Street addresses and postcodes, by the forms each language writes them in.

Only shapes that rarely mean anything else are taken: a house number next to a street
word ("221B Baker Street", "Hauptstraße 5", "12 rue de la Paix", "Calle Mayor, 3",
"Via Roma 10", "Keizersgracht 123"), optionally followed by a postcode and town. Bare
postcodes are confident only when distinctive (UK, "CA 94105") or next to a word such as
"zip" or "PLZ"; five bare digits alone are not reported. The NER model adds cities,
countries and the street names it knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bastion.guards.base import Finding
from bastion.guards.pii.context import ContextIndex

# hyphenated parts bounded: see expand._CAP
_CAP = "[A-ZÄÖÜÀÂÉÈÊÎÔÛÇÁÍÓÚÑ][\\w'\u2019]*(?:-[\\w'\u2019]+){0,3}"
_EN_STREET = (
    r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|Way"
    r"|Terrace|Square|Sq|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Trail|Crescent|Close|Row|Walk"
    r"|Grove|Gardens|Mews|Plaza|Alley|Heights|Park|Hill"
)
_UNIT = r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Fl|Floor|#)\.?\s*#?\w{1,6})?"

_STREETS: dict[str, str] = {
    "en": rf"\b\d{{1,5}}[A-Za-z]?,?\s+(?:{_CAP}\.?\s+){{1,4}}(?:{_EN_STREET})\b\.?{_UNIT}",
    "de": (
        r"(?<![\w\-'])[A-ZÄÖÜ][a-zäöüß\-]+(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer"
        r"|chaussee|steig|pfad|markt)\s+\d{1,4}\s?[a-zA-Z]?\b"
        r"|(?<![\w\-'])[A-ZÄÖÜ][a-zäöüß]+(?:er)?\s(?:Straße|Strasse|Str\.|Weg|Platz|Allee|Ring)"
        r"\s+\d{1,4}\s?[a-zA-Z]?\b"
        r"|\b(?:Am|An\sder|Im|In\sder|Auf\sdem|Zum|Zur)\s+[A-ZÄÖÜ][a-zäöüß]+\s+\d{1,4}[a-z]?\b"
        r"|(?<![\w\-'])[A-ZÄÖÜ][a-zäöüß]+(?:-[A-Za-zäöüßÄÖÜ]+){0,4}-(?:Straße|Strasse|Weg|Gasse|Platz|Allee"
        r"|Ring|Damm)\s+\d{1,4}(?:[/\-]\d{1,4})?[a-z]?\b"
    ),
    "nl": (
        r"(?<![\w\-'])[A-Z][a-z\-]+(?:straat|laan|weg|plein|gracht|kade|singel|dijk|hof|steeg|dreef"
        r"|pad|markt|wal)\s+\d{1,4}\s?[a-zA-Z]?\b"
    ),
    "fr": (
        r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?i:rue|avenue|av\.|boulevard|bd|place|chemin|allée"
        r"|allee|impasse|quai|route|cours|square|passage|voie)\s+(?:(?i:de\s+la|de\s+l'|du|des"
        rf"|de|d'|l'|la|le)\s*)?{_CAP}(?:\s+(?:{_CAP}|de|du|des|la|le|l'|d')){{0,4}}"
    ),
    "es": (
        r"\b(?:Calle|C/|Avenida|Avda\.?|Av\.|Plaza|Pza\.|Paseo|Camino|Carretera|Ronda|Travesía"
        r"|Callejón|Glorieta|Rambla)\s+(?:(?:de|del|de\s+la|de\s+los|de\s+las|la|el|los|las)\s+)?"
        rf"{_CAP}(?:\s+(?:{_CAP}|de|del|la|los|las|y)){{0,4}},?\s+(?:nº\s*|n\.º\s*|núm\.\s*|no\.?\s*)?"
        r"\d{1,4}\b(?:,?\s*\d{1,2}º?\s?[A-Za-z]?\b)?"
    ),
    "it": (
        r"\b(?:Via|Viale|Piazza|Piazzale|Corso|Largo|Vicolo|Strada|Contrada|Lungomare|Borgo"
        rf"|Vico)\s+(?:{_CAP}|dei|del|della|delle|degli|di|de|da)(?:\s+(?:{_CAP}|dei|del|della"
        r"|delle|degli|di|da|d'|e)){0,4},?\s+(?:n\.\s*)?\d{1,4}(?:/?[a-zA-Z])?\b"
    ),
}
# postcode and town after a street: "10115 Berlin", "1012 AB Amsterdam", "75002 Paris"
_TOWN_TAIL = re.compile(
    rf",?\s+(?:[A-Z]{{1,2}}-)?(?:\d{{4,5}}|\d{{4}}\s?[A-Z]{{2}})\s+{_CAP}(?:\s{_CAP})?"
    rf"|,\s+{_CAP}(?:\s{_CAP})?,\s+[A-Z]{{2}}\s+\d{{5}}(?:-\d{{4}})?"
)

_ANY_CAP = "[A-ZÀ-ÞĀ-ŽΑ-ΩА-Я][\\w'\u2019]*(?:-[\\w'\u2019]+){0,3}"
# forms shared by every locale's addresses: a unit or box ("Apt. 595", "Suite 501",
# "P.O. Box 242", "PSC 1437, Box 3833"), and "house number, street name, number" lines
_UNIT_LINE = re.compile(
    r"(?<![\w.])(?:(?:Apt|Apartment|Suite|Ste|Unit|Flat)\.?\s*#?\d{1,5}[A-Za-z]?"
    r"(?:,?\s*Box\s+\d{1,6})?"
    r"|(?:P\.?\s?O\.?\s?Box|Postfach|Boîte postale|Apartado|Casella postale|Postbus"
    r"|PSC|Box)\s+\d{1,6}(?:,?\s*Box\s+\d{1,6})?"
    # US military post: "APO AE 09012", "DPO AP 40902"
    r"|(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5})(?![\w])",
    re.IGNORECASE,
)
_NUMBERED_STREET = re.compile(
    rf"(?<![\w.,\-])(?!(?:19|20)\d\d\b)\d{{1,6}}\s+(?:\d{{1,5}}\s+)?"
    rf"(?:(?:ul|al|os|pl|av|Av|Avda|rue|Rue|via|Via|C/)\.?\s+)?{_ANY_CAP}"
    rf"(?:\s+(?:{_CAP}|do|da|de|del|la|le|van|der|den|von|u\.|rkp\.|ul\.)){{0,3}}"
    r"\s+\d{1,5}[A-Za-z]?(?![\w\-]|[.,]\d)"
)
_LEADING_NUMBER = re.compile(r"(?<![\w.,\-])\d{1,6}(?:\s+\d{1,5})?[ \t]+$")
_COMMON_WORDS = frozenset(str.split("""
of the and for to in on with you your are is was my our this that from by at a an
"""))
# a country or town and a postcode closing an address line: "Estonia 62488"
_PLACE_POSTCODE = re.compile(rf"(?m)^[ \t>]*{_CAP}(?:[ ]{_CAP})?[ \t]+(\d{{4,5}})[ \t]*$")

_US_STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
    "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR"
)
_US_ZIP = re.compile(rf"\b(?:{'|'.join(_US_STATES.split())})\s(\d{{5}}(?:-\d{{4}})?)\b")
_UK_POSTCODE = re.compile(r"(?<![\w\-'])[A-Z]{1,2}\d[A-Z\d]?\s?\d[ABD-HJLNP-UW-Z]{2}\b")
_NL_POSTCODE = re.compile(r"\b[1-9]\d{3}\s?(?!SA|SD|SS|AD|BC)[A-Z]{2}\b")
_BARE_POSTCODE = re.compile(r"(?<![\w\-.,])(?:\d{5}(?:-\d{4})?|\d{4}|\d{2}-\d{3})(?![\w\-]|[.,]\d)")


class AddressFinder:
    def __init__(self, languages: Iterable[str], kinds: Iterable[str]) -> None:
        langs = tuple(languages)
        wanted = set(kinds)
        self.streets = "STREET_ADDRESS" in wanted
        self.zips = "ZIP_CODE" in wanted
        self.street = re.compile("|".join(f"(?:{_STREETS[lang]})" for lang in langs
                                          if lang in _STREETS))
        self.uk = "en" in langs
        self.nl = "nl" in langs

    def __call__(self, text: str, ctx: ContextIndex) -> list[Finding]:
        out: list[Finding] = []
        if self.streets:
            for m in self.street.finditer(text):
                start, end = m.start(), m.end()
                lead = _LEADING_NUMBER.search(text, max(0, start - 8), start)
                if lead is not None:  # "3482 Via Franscini 71", "17151 2450 Crown St"
                    start = lead.start()
                tail = _TOWN_TAIL.match(text, end)
                if tail is not None:
                    end = tail.end()
                score = 0.95 if ctx.near("STREET_ADDRESS", start, end) else 0.85
                out.append(Finding("STREET_ADDRESS", start, end, score, "street form"))
            for m in _UNIT_LINE.finditer(text):
                lead = _LEADING_NUMBER.search(text, max(0, m.start() - 8), m.start())
                start = m.start()
                if lead is not None and not text[:lead.start()].rstrip(" \t>").endswith(
                        tuple("abcdefghijklmnopqrstuvwxyz0123456789")):
                    start = lead.start()  # "45818 P.O. Box 242" opening its line
                out.append(Finding("STREET_ADDRESS", start, m.end(), 0.8, "unit or box"))
            for m in _NUMBERED_STREET.finditer(text):
                if _COMMON_WORDS.intersection(m.group(0).lower().split()):
                    continue  # "5 Musicians Of The 70s": a title, not a street
                score = 0.85 if ctx.near("STREET_ADDRESS", m.start(), m.end()) else 0.6
                out.append(Finding("STREET_ADDRESS", m.start(), m.end(), score, "numbered street"))
        if self.zips:
            out.extend(self._postcodes(text, ctx))
            for m in _PLACE_POSTCODE.finditer(text):
                out.append(Finding("ZIP_CODE", m.start(1), m.end(1), 0.6, "place + postcode"))
        return out

    def _postcodes(self, text: str, ctx: ContextIndex) -> list[Finding]:
        out = []
        for m in _US_ZIP.finditer(text):
            out.append(Finding("ZIP_CODE", m.start(1), m.end(1), 0.8, "state + zip"))
        if self.uk:
            for m in _UK_POSTCODE.finditer(text):
                score = 0.95 if ctx.near("ZIP_CODE", m.start(), m.end()) else 0.7
                out.append(Finding("ZIP_CODE", m.start(), m.end(), score, "uk postcode"))
        if self.nl:
            for m in _NL_POSTCODE.finditer(text):
                score = 0.95 if ctx.near("ZIP_CODE", m.start(), m.end()) else 0.5
                out.append(Finding("ZIP_CODE", m.start(), m.end(), score, "nl postcode"))
        for m in _BARE_POSTCODE.finditer(text):
            if ctx.near("ZIP_CODE", m.start(), m.end(), before=24, after=4):
                out.append(Finding("ZIP_CODE", m.start(), m.end(), 0.85, "postcode word"))
        return out
