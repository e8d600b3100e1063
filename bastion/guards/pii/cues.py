"""Names and ages that a cue phrase announces: "Mr. Leiva", "Frau Schmidt", "my name is
rubija", "je m'appelle Claire", "aged 74", "35 Jahre alt".

The NER model misses a name written in lower case or standing alone after "my name is",
and never reports ages; these phrases say what follows in any register.
"""

from __future__ import annotations

import re

from bastion.guards.base import Finding
from bastion.guards.pii.ner import FILLER

_NAME = r"[A-ZÄÖÜÀ-ÞŁŠŽ][\w'\u2019\-]+"
_TITLES = (
    r"Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Herr|Frau|Hr|Fr|M|Mme|Mlle|Sr|Sra|Srta|Don|Doña|Sig"
    r"|Sig\.ra|Dott|Dhr|Mevr|Mw"
)
_TITLED = re.compile(
    rf"(?<![\w.])(?:{_TITLES})\.?\s+{_NAME}(?:\s+(?:van|von|de|der|den|la|le|di|da|del|ten"
    rf"|ter|du|dos|das)?\s*{_NAME}){{0,2}}"
)
_WORD = r"[^\W\d_][\w'\u2019\-]+"
_STOP = r"(?!(?i:and|und|et|y|e|en|from|at|in|I|is|was|but|or)\b)"
# a cue that names what follows: the name may be written in lower case
_CUE = re.compile(
    r"(?i:my name is|my name's|i am called|call me|ich heiße|ich heisse|mein name ist"
    r"|je m'appelle|je m\u2019appelle|mon nom est|me llamo|mi nombre es|mi chiamo"
    r"|il mio nome è|ik heet|mijn naam is|(?:first|last|full|middle|sur|family|given|maiden) ?name"
    r"(?: is|:|\?)?|nombre:|nom:|name:)"
    rf"\s+({_WORD}(?:[ \t]+{_STOP}{_WORD})?)"
)
# a weaker one ("I'm", "this is", a signature): only a capitalised name
_WEAK_CUE = re.compile(
    r"(?:\b(?i:i'm|i\u2019m|this is|regards,|thanks,|cheers,|signed|ich bin|je suis|soy"
    r"|sono|ik ben)|^(?i:from:))"
    rf"\s+({_NAME}(?:[ \t]+{_NAME})?)",
    re.MULTILINE,
)
# a capitalised word that a person-only verb follows or a kinship word precedes
_PERSON_VERB = re.compile(
    rf"(?<![\w'\u2019\-])({_NAME}(?:[ \t]+{_NAME})?)[ \t]+(?:lives|lived|shouted|said|says"
    r"|asked|told|wrote|replied|answered|smiled|laughed|cried|whispered|married|wohnt|sagte|habite|dit"
    r"|vive|dijo|abita|disse|woont|zei)\b"
)
_PERSON_AFTER = re.compile(
    r"\b(?i:shouted at|said to|spoke to|talking to|talked to|married|met with|was called"
    r"|is called|named|my (?:kid|son|daughter|wife|husband|friend|brother|sister|mother"
    r"|father|mom|mum|dad|boss|colleague|partner|grandfather|grandmother|uncle|aunt|cousin"
    r"|nephew|niece|fiancée?|girlfriend|boyfriend)|mein(?:e)? (?:Sohn|Tochter|Frau|Mann"
    r"|Bruder|Schwester|Freund|Freundin)|mon (?:fils|frère|mari|ami)|ma (?:fille|sœur|femme"
    r"|amie)|mi (?:hijo|hija|hermano|hermana|esposa|marido|amigo|amiga)|mio (?:figlio"
    r"|fratello|marito)|mia (?:figlia|sorella|moglie)|mijn (?:zoon|dochter|vrouw|man|broer"
    r"|zus|vriend|vriendin))"
    rf"[ \t]+({_NAME}(?:[ \t]+{_NAME})?)"
)
# a speaker's name opening a dialogue line: "Ella: What a wife."
_SPEAKER = re.compile(rf"(?m)^[ \t>]*({_NAME}):[ \t]*[\"\w]")
_LABELS = frozenset(str.split("""
Note Notes Answer Question Subject Re Fw Fwd From To Cc Bcc Date Time Name Address Phone Email
When Where Who What Why How Title Summary Example Examples Input Output User Assistant System
Human AI Bot Warning Error Tip Step Update Edit Source Comment Response Reply Result Context
Instruction Instructions Task Text Translation Prompt Query Important Caution Ingredients Usage
Description Status Type Total Price Location Directions Tags Category Reason Goal Options Hint
Solution Problem Draft Final Customer Agent Support Admin Moderator Me You Him Her Us Them
Datum Antwort Frage Betreff Hinweis Réponse Objet Asunto Respuesta Pregunta Oggetto Risposta
Domanda Onderwerp Antwoord Vraag Opmerking
"""))
_NOT_NAMES = frozenset(str.split("""
a an the not here there going sorry happy fine good glad ok okay sure just so very really
she he they it we you i who everyone someone somebody nobody anyone tomorrow today tonight
later now soon anytime asap when if back again please
from at in on with and looking writing calling trying interested new back done still also
your his her their our my is was
ein eine der die das nicht sehr gerade un une le la pas très un una el la no muy uno una il
lo non molto een de het niet erg
"""))
_AGE = re.compile(
    r"(?i)(?<![\w.])(?:(\d{1,3})[\s\-](?:years?|yrs?)[\s\-]old|aged\s+(\d{1,3})"
    r"|age(?:\s+of)?:?\s+(\d{1,3})|turned\s+(\d{1,3})|(\d{1,3})\s+jahre\s+alt"
    r"|(\d{1,3})\s+ans\b|(\d{1,3})\s+años|(\d{1,3})\s+anni\b|(\d{1,3})\s+jaar\s+oud)"
    r"(?![\w])"
)


def find_cued_names(text: str) -> list[Finding]:
    out = find_person_cues(text)
    for m in _TITLED.finditer(text):
        out.append(Finding("PERSON", m.start(), m.end(), 0.85, "title + name"))
    for m in (*_CUE.finditer(text), *_WEAK_CUE.finditer(text)):
        words = m.group(1).split()
        while words and words[-1].lower() in _NOT_NAMES:
            words.pop()
        if not words or words[0].lower() in _NOT_NAMES:
            continue
        start = m.start(1)
        end = start + len(" ".join(words)) if len(words) > 1 else start + len(words[0])
        if text[start:end].split() != words:  # spacing other than one space: first word only
            end = start + len(words[0])
        out.append(Finding("PERSON", start, end, 0.75, "name cue"))
    return out


def find_person_cues(text: str) -> list[Finding]:
    """Names that a verb, a kinship word or a dialogue layout marks as a person's."""
    out = []
    for pattern, score in ((_PERSON_VERB, 0.65), (_PERSON_AFTER, 0.7)):
        for m in pattern.finditer(text):
            words = m.group(1).split()
            if words[0] in _LABELS or words[0].lower() in _NOT_NAMES:
                continue
            out.append(Finding("PERSON", m.start(1), m.end(1), score, "person cue"))
    for m in _SPEAKER.finditer(text):
        if m.group(1) not in _LABELS and m.group(1).lower() not in FILLER:
            out.append(Finding("PERSON", m.start(1), m.end(1), 0.6, "dialogue speaker"))
    return out


def find_ages(text: str) -> list[Finding]:
    out = []
    for m in _AGE.finditer(text):
        group = next(i for i in range(1, 10) if m.group(i) is not None)
        if 0 < int(m.group(group)) < 130:
            out.append(Finding("AGE", m.start(group), m.end(group), 0.6, "age phrase"))
    return out
