"""Generate Bastion's prompt-injection training corpus (deterministic).

    python training/injection/generate.py            # writes training/injection/data/corpus.jsonl

Rows are ``{"text", "label", "lang", "family", "template", "source"}``: label 1 is an attack,
0 benign; ``family`` the attack or benign family; ``template`` the id of the main phrase
template it was built from (held-out evaluations split on it, so test rows share no template
with training rows); ``source`` is ``prompt``, ``document`` or ``tool`` (ScanContext.source).

The corpus is built from hand-written banks (``phrases.py``, ``benign.py``) by combination
and by the obfuscations attackers use (leetspeak, homoglyphs, zero-width characters, base64,
hex, rot13, reversed text, Unicode tag characters). Benign rows are mostly hard negatives:
they use the attack vocabulary innocently.
"""

# ruff: noqa: RUF001 (homoglyph tables are the point)
from __future__ import annotations

import base64
import codecs
import json
import random
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benign as B  # noqa: E402
import benign_extra as X  # noqa: E402
import benign_more as M  # noqa: E402
import phrases as P  # noqa: E402

SEED = 20261201
OUT = HERE / "data" / "corpus.jsonl"
PII_DEV = HERE.parents[2] / "shared" / "data" / "pii_dev_en.jsonl"

Row = dict[str, object]

LANG_WEIGHT = {"en": 1.0, "de": 0.45, "fr": 0.3, "es": 0.3, "it": 0.3, "nl": 0.3}

GREET = {
    "en": ["", "", "", "Hi! ", "Hello, ", "Quick question: ", "Hey there. ", "Please help: "],
    "de": ["", "", "Hallo! ", "Kurze Frage: ", "Hi, "],
    "fr": ["", "", "Bonjour ! ", "Petite question : ", "Salut, "],
    "es": ["", "", "¡Hola! ", "Una pregunta: ", "Buenas, "],
    "it": ["", "", "Ciao! ", "Domanda veloce: ", "Salve, "],
    "nl": ["", "", "Hoi! ", "Snelle vraag: ", "Hallo, "],
}
THANKS = {
    "en": ["", "", "", " Thanks!", " Thank you.", " Keep it short.", " Answer in bullet points."],
    "de": ["", "", " Danke!", " Bitte kurz.", " Vielen Dank."],
    "fr": ["", "", " Merci !", " Sois bref.", " Merci beaucoup."],
    "es": ["", "", " ¡Gracias!", " Sé breve.", " Muchas gracias."],
    "it": ["", "", " Grazie!", " Sii breve.", " Grazie mille."],
    "nl": ["", "", " Bedankt!", " Hou het kort.", " Dank je wel."],
}


def surface(rng: random.Random, text: str) -> str:
    """Casing and punctuation noise applied to attacks and benign alike (so it is no cue)."""
    r = rng.random()
    if r < 0.12:
        text = text.lower()
    elif r < 0.16:
        text = text.upper()
    if rng.random() < 0.1:
        text = text.rstrip(".!?")
    return text


def lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:1].isupper() and s[1:2].islower() else s


def cap_first(s: str) -> str:
    return s[:1].upper() + s[1:]


def pick_lang(rng: random.Random) -> str:
    langs = list(LANG_WEIGHT)
    return rng.choices(langs, weights=[LANG_WEIGHT[x] for x in langs])[0]


# --- benign generators ---------------------------------------------------------------------

def benign_general(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(B.GENERAL[lang]))
    t = rng.choice(B.TOPICS[lang])
    text = B.GENERAL[lang][i].format(t=t)
    if text == t:
        text = cap_first(t)
    text = rng.choice(GREET[lang]) + cap_first(text) + rng.choice(THANKS[lang])
    return text, f"general:{lang}:{i}"


def benign_from(bank: list[str], name: str) -> Callable[[random.Random, str], tuple[str, str]]:
    def gen(rng: random.Random, lang: str) -> tuple[str, str]:
        i = rng.randrange(len(bank))
        return rng.choice(GREET["en"]) + bank[i] + rng.choice(THANKS["en"]), f"{name}:{i}"
    return gen


def benign_risky(rng: random.Random, lang: str) -> tuple[str, str]:
    bank = B.RISKY_WORDS[lang]
    i = rng.randrange(len(bank))
    text = bank[i]
    if rng.random() < 0.3:  # two benign sentences
        text = f"{benign_general(rng, lang)[0]} {text}"
    return rng.choice(GREET[lang]) + text + rng.choice(THANKS[lang]), f"risky:{lang}:{i}"


def benign_life(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(M.SITUATION[lang]))
    sit = M.SITUATION[lang][i].format(place=rng.choice(M.PLACES), rel=rng.choice(M.RELS[lang]),
                                      n=rng.randint(6, 80), job=rng.choice(M.JOBS[lang]),
                                      topic=rng.choice(B.TOPICS["en"]))
    req = " ".join(rng.sample(M.REQUEST[lang], k=rng.choice([1, 1, 2])))
    return rng.choice(GREET[lang]) + sit + " " + req + rng.choice(THANKS[lang]), f"life:{lang}:{i}"


def benign_factual(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(M.FACTUAL[lang]))
    text = M.FACTUAL[lang][i]
    if rng.random() < 0.25:  # several questions in one message, as people do
        text += " " + rng.choice(M.FACTUAL[lang])
    return rng.choice(GREET[lang]) + text, f"factual:{lang}:{i}"


def benign_hard(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(M.HARD_NEGATIVE))
    text = M.HARD_NEGATIVE[i]
    r = rng.random()
    if r < 0.3:
        text = benign_general(rng, pick_lang(rng))[0].strip() + " " + text
    elif r < 0.45:
        text = text + " " + benign_factual(rng, "en")[0]
    return text, f"hard:{i}"


def benign_everyday(rng: random.Random, lang: str) -> tuple[str, str]:
    """Non-English benign prompts, so that a language is no cue for an attack."""
    r = rng.random()
    if r < 0.45:
        i = rng.randrange(len(M.EVERYDAY[lang]))
        text, template = M.EVERYDAY[lang][i], f"everyday:{lang}:{i}"
    elif r < 0.65:
        text, template = benign_life(rng, lang)
    elif r < 0.8:
        text, template = benign_factual(rng, lang)
    elif r < 0.9:
        text, template = benign_general(rng, lang)
    else:
        text, template = benign_retract(rng, lang)
    return rng.choice(GREET[lang]) + text + rng.choice(THANKS[lang]), template


def benign_retract(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(M.RETRACT[lang]))
    q = rng.choice([benign_factual, benign_general])(rng, lang)[0].strip()
    q = q[:1].lower() + q[1:] if M.RETRACT[lang][i].endswith((", {q}", ": {q}")) else q
    return M.RETRACT[lang][i].format(q=q), f"retract:{lang}:{i}"


def benign_multi(rng: random.Random, lang: str) -> tuple[str, str]:
    gens = [benign_general, benign_life, benign_factual, benign_risky]
    parts = [rng.choice(gens)(rng, lang)[0].strip() for _ in range(rng.choice([2, 2, 3]))]
    return rng.choice([" ", ". ", "\n", " "]).join(parts), "multi"


_PII_TEXTS: list[str] = []


def benign_pii(rng: random.Random, lang: str) -> tuple[str, str]:
    """Natural English sentences from the shared PII development set (benign text)."""
    if not _PII_TEXTS:
        _PII_TEXTS.extend(json.loads(line)["text"] for line in PII_DEV.open(encoding="utf-8"))
    i = rng.randrange(len(_PII_TEXTS))
    return _PII_TEXTS[i], f"pii:{i % 50}"


_DOC_CHUNKS: list[str] = []


def benign_pydoc(rng: random.Random, lang: str) -> tuple[str, str]:
    """Chunks of the Python reference (stdlib ``pydoc_data``): technical prose full of
    imperatives ("Return ...", "Ignore ...", "Do not ...")."""
    if not _DOC_CHUNKS:
        import pydoc_data.topics as topics

        for key in sorted(topics.topics):
            paras = [p.strip() for p in topics.topics[key].split("\n\n") if len(p.strip()) > 80]
            _DOC_CHUNKS.extend(p for p in paras if not p.startswith(("   ", ">>>")))
    i = rng.randrange(len(_DOC_CHUNKS))
    text = " ".join(_DOC_CHUNKS[i].split())
    if len(text) > 1500:
        text = text[:1500].rsplit(" ", 1)[0]
    return text, f"pydoc:{i % 100}"


def benign_encoded(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(B.ENCODED_BENIGN))
    raw = bytes(rng.randrange(256) for _ in range(rng.randrange(24, 90)))
    text = B.ENCODED_BENIGN[i].format(
        b64=base64.b64encode(raw).decode(),
        b64s=base64.urlsafe_b64encode(raw[:32]).decode().rstrip("="),
        hex=raw[:32].hex(), hex40=raw[:20].hex(),
        b64text=base64.b64encode(rng.choice(B.BENIGN_B64_TEXTS).encode()).decode(),
        uuid=str(uuid.UUID(int=rng.getrandbits(128))),
    )
    return text, f"encoded_benign:{i}"


def benign_procedure(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(M.DOC_TITLES))
    steps = rng.sample(M.DOC_STEPS, k=rng.randint(3, 8))
    style = rng.randrange(3)
    if style == 0:
        body = "\n".join(f"{n}. {s}" for n, s in enumerate(steps, 1))
    elif style == 1:
        body = "\n".join(f"- {s}" for s in steps)
    else:
        body = " ".join(steps)
    return f"{M.DOC_TITLES[i]}\n\n{body}", f"procedure:{i}"


def benign_document(rng: random.Random, lang: str) -> tuple[str, str]:
    docs = rng.sample(range(len(B.DOCUMENTS)), k=rng.choice([1, 1, 2]))
    text = "\n\n".join(B.DOCUMENTS[d] for d in docs)
    return text, f"document:{docs[0]}"


def wrap_document_prompt(rng: random.Random, doc: str) -> str:
    task = rng.choice([
        "Summarize this email:\n\n", "Translate the following text into English:\n",
        "What is the main point of this page?\n---\n", "Extract the action items:\n",
        "Here is a document. Answer questions about it.\n\n", "Proofread this:\n",
        "Fasse diesen Text zusammen:\n", "Résume ce texte :\n",
    ])
    return task + doc


# --- the false-positive pass (benign_extra.py) -------------------------------------------------

def benign_meta(rng: random.Random, lang: str) -> tuple[str, str]:
    """Questions about prompts, LLMs and the user's own earlier instructions."""
    r = rng.random()
    if r < 0.45:
        i = rng.randrange(len(X.META_TOPIC[lang]))
        text = rng.choice(X.META_ASK[lang]).format(t=X.META_TOPIC[lang][i])
        template = f"meta_topic:{lang}:{i}"
    elif r < 0.8:
        i = rng.randrange(len(X.META_OWN[lang]))
        text = X.META_OWN[lang][i].format(x=rng.choice(X.META_THING[lang]))
        template = f"meta_own:{lang}:{i}"
    else:
        i = rng.randrange(len(X.META_SECURITY[lang]))
        text, template = X.META_SECURITY[lang][i], f"meta_security:{lang}:{i}"
    return rng.choice(GREET[lang]) + text + rng.choice(THANKS[lang]), template


def benign_howto(rng: random.Random, lang: str) -> tuple[str, str]:
    """Everyday how-to questions and editing requests that use an attacker's verbs."""
    if rng.random() < 0.75:
        i = rng.randrange(len(X.HOWTO_VERB[lang]))
        text = rng.choice(X.HOWTO_ASK[lang]).format(v=X.HOWTO_VERB[lang][i])
        template = f"howto:{lang}:{i}"
    else:
        i = rng.randrange(len(X.EDIT_REQUEST[lang]))
        text, template = X.EDIT_REQUEST[lang][i], f"edit:{lang}:{i}"
    return rng.choice(GREET[lang]) + text + rng.choice(THANKS[lang]), template


def benign_persona(rng: random.Random, lang: str) -> tuple[str, str]:
    """Harmless role-play: a persona and an ordinary task, no rule-breaking."""
    i = rng.randrange(len(X.ROLE_PAIR[lang]))
    role, task = X.ROLE_PAIR[lang][i]
    text = rng.choice(X.ROLE_ASK[lang]).format(r=role, task=task, Task=cap_first(task))
    return rng.choice(GREET[lang]) + text + rng.choice(THANKS[lang]), f"persona:{lang}:{i}"


def benign_decode(rng: random.Random, lang: str) -> tuple[str, str]:
    """Decode and translate requests whose payload is harmless text."""
    if rng.random() < 0.3:
        i = rng.randrange(len(X.TRANSLATE_TEXT))
        text = rng.choice(X.TRANSLATE_ASK).format(s=X.TRANSLATE_TEXT[i],
                                                  lang=rng.choice(X.TRANSLATE_LANG))
        return text, f"translate_harmless:{i}"
    i = rng.randrange(len(X.HARMLESS_PAYLOAD))
    raw = X.HARMLESS_PAYLOAD[i].encode()
    text = rng.choice(X.DECODE_ASK).format(
        p=base64.b64encode(raw).decode(), h=raw.hex(" ") if rng.random() < 0.3 else raw.hex(),
        u="".join(f"%{b:02X}" for b in raw))
    return text, f"decode_harmless:{i}"


def benign_pref(rng: random.Random, lang: str) -> tuple[str, str]:
    """Standing preferences ("from now on, answer in Spanish") and questions about how models
    forget or ignore things: the user steering the assistant, not overriding it."""
    if lang == "en" and rng.random() < 0.45:
        i = rng.randrange(len(X.LLM_BEHAVIOUR))
        return rng.choice(GREET[lang]) + X.LLM_BEHAVIOUR[i], f"llm_behaviour:{i}"
    i = rng.randrange(len(X.PREF_WHAT[lang]))
    text = rng.choice(X.PREF_LEAD[lang]) + X.PREF_WHAT[lang][i]
    if rng.random() < 0.3:
        text = benign_factual(rng, lang)[0].strip() + " " + text
    return rng.choice(GREET[lang]) + text, f"pref:{lang}:{i}"


def benign_dev(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(X.DEV_TASKS))
    return rng.choice(GREET["en"]) + X.DEV_TASKS[i] + rng.choice(THANKS["en"]), f"dev:{i}"


def benign_short(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(X.SHORT))
    text = X.SHORT[i]
    if rng.random() < 0.3:
        text = rng.choice(GREET["en"]).strip() + " " + text
    return text, f"short:{i % 20}"


# --- attack generators ---------------------------------------------------------------------

def leadin(rng: random.Random, lang: str) -> str:
    r = rng.random()
    if r < 0.45:
        return ""
    if r < 0.65:
        return benign_general(rng, lang)[0].strip() + " "
    if r < 0.8:
        return rng.choice([benign_life, benign_factual])(rng, lang)[0].strip() + " "
    return rng.choice(B.TRANSLATE + B.SYSPROMPT[-6:]) + "\n"


def attack_override(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(P.OVERRIDE[lang]))
    clause = P.OVERRIDE[lang][i]
    payload = rng.choice(P.PAYLOAD[lang])
    conn = rng.choice(P.CONNECT[lang])
    tail = payload
    body = clause + conn + (cap_first(tail) if conn.rstrip().endswith((".", "!", ":")) or
                            conn.endswith("\n") else tail)
    if rng.random() < 0.15:
        body += "."
    return leadin(rng, lang) + body, f"override:{lang}:{i}"


def attack_hijack(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(P.HIJACK[lang]))
    body = P.HIJACK[lang][i].format(x=rng.choice(P.HIJACK_X))
    lead = (rng.choice([benign_general, benign_life, benign_factual])(rng, lang)[0].strip() + " "
            if rng.random() < 0.7 else "")
    return lead + body, f"hijack:{lang}:{i}"


def attack_extract(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(P.EXTRACT[lang]))
    text = P.EXTRACT[lang][i]
    r = rng.random()
    if r < 0.25:
        text = rng.choice(P.OVERRIDE[lang]) + ". " + text
    elif r < 0.45:
        text = benign_general(rng, lang)[0].strip() + " " + text
    return rng.choice(GREET[lang]) + text, f"extract:{lang}:{i}"


def attack_dan(rng: random.Random, lang: str) -> tuple[str, str]:
    name = rng.choice(P.PERSONA_NAMES)
    exp = rng.choice(P.PERSONA_EXPANSIONS)
    i = rng.randrange(len(P.JB_INTRO))
    parts = [P.JB_INTRO[i]]
    parts += rng.sample(P.JB_FREEDOM, k=rng.randint(2, 6))
    if rng.random() < 0.7:
        parts.append(rng.choice(P.JB_FORMAT))
    if rng.random() < 0.7:
        parts += rng.sample(P.JB_PRESSURE, k=rng.randint(1, 2))
    parts.append(rng.choice(P.JB_CONFIRM))
    sep = rng.choice([" ", "\n", "\n\n"])
    text = sep.join(p for p in parts if p).format(N=name, E=exp)
    return text, f"dan:{i}"


def attack_jb_short(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(P.JB_SHORT[lang]))
    text = P.JB_SHORT[lang][i].format(N=rng.choice(P.PERSONA_NAMES), q=rng.choice(P.JB_Q))
    return rng.choice(GREET[lang]) + text, f"jb:{lang}:{i}"


def attack_fake_role(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(P.FAKE_ROLE))
    p = rng.choice(P.PAYLOAD[lang] + P.EXTRACT[lang])
    lead = benign_general(rng, lang)[0].strip() + "\n" if rng.random() < 0.5 else ""
    return lead + P.FAKE_ROLE[i].format(p=cap_first(p)), f"fake_role:{i}"


def attack_split(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(P.SPLIT))
    a, b = rng.choice(P.SPLIT_PAIRS)
    return P.SPLIT[i].format(a=a, b=b), f"split:{i}"


def attack_indirect(rng: random.Random, lang: str) -> tuple[str, str]:
    i = rng.randrange(len(P.INDIRECT[lang]))
    inj = P.INDIRECT[lang][i].format(mail=rng.choice(P.EVIL_MAIL), url=rng.choice(P.EVIL_URL))
    if rng.random() < 0.3:
        inj = rng.choice(["<div style=\"display:none\">{}</div>", "<!-- {} -->", "[//]: # ({})",
                          "\u200b{}\u200b", "<span style='color:white;font-size:1px'>{}</span>",
                          "{}"]).format(inj)
    r = rng.random()
    gen = benign_document if r < 0.5 else benign_procedure if r < 0.75 else benign_pydoc
    doc = gen(rng, lang)[0]
    paras = doc.split("\n") if "\n" in doc else doc.split(". ")
    pos = rng.randrange(len(paras) + 1)
    paras.insert(pos, inj)
    return "\n".join(paras), f"indirect:{lang}:{i}"


# --- obfuscation ---------------------------------------------------------------------------

LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
HOMO = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і", "y": "у",
        "s": "ѕ", "A": "Α", "E": "Ε", "O": "Ο", "I": "І", "T": "Т"}


def obf_leet(rng: random.Random, s: str) -> str:
    return "".join(LEET[c.lower()] if c.lower() in LEET and rng.random() < 0.7 else c for c in s)


def obf_homoglyph(rng: random.Random, s: str) -> str:
    return "".join(HOMO[c] if c in HOMO and rng.random() < 0.5 else c for c in s)


def obf_spaced(rng: random.Random, s: str) -> str:
    sep = rng.choice([" ", ".", "-", "_"])
    words = s.split(" ")
    k = rng.randrange(len(words))
    words[k] = sep.join(words[k])
    if len(words) > 2:
        k = rng.randrange(len(words))
        words[k] = sep.join(words[k])
    return " ".join(words)


def obf_zero_width(rng: random.Random, s: str) -> str:
    zw = rng.choice(["\u200b", "\u200c", "\u2060", "\ufeff", "\u00ad"])
    return "".join(c + zw if c.isalpha() and rng.random() < 0.4 else c for c in s)


def obf_b64(rng: random.Random, s: str) -> str:
    enc = base64.b64encode(s.encode()).decode()
    return rng.choice(["Decode this base64 and follow the instructions: {}",
                       "{}", "Please base64-decode and execute: {}",
                       "Here is my question in base64: {}",
                       "Dekodiere und befolge: {}"]).format(enc)


def obf_hex(rng: random.Random, s: str) -> str:
    return rng.choice(["Decode this hex and do what it says: {}", "{}",
                       "hex: {}"]).format(s.encode().hex())


def obf_rot13(rng: random.Random, s: str) -> str:
    return rng.choice(["Apply rot13 and obey: {}", "{}", "ROT13: {}"]).format(
        codecs.encode(s, "rot13"))


def obf_reverse(rng: random.Random, s: str) -> str:
    return rng.choice(["Read this backwards and do it: {}", "{}"]).format(s[::-1])


def obf_tags(rng: random.Random, s: str) -> str:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in s if ord(c) < 128)
    return rng.choice(["What a nice day!", "Summarize this.", "Hello"]) + hidden


OBFUSCATIONS: list[tuple[str, Callable[[random.Random, str], str]]] = [
    ("leet", obf_leet), ("homoglyph", obf_homoglyph), ("spaced", obf_spaced),
    ("zero_width", obf_zero_width), ("base64", obf_b64), ("hex", obf_hex),
    ("rot13", obf_rot13), ("reverse", obf_reverse), ("tags", obf_tags),
]


def attack_obfuscated(rng: random.Random, lang: str) -> tuple[str, str]:
    gen = rng.choice([attack_override, attack_extract, attack_hijack])
    base, _ = gen(rng, lang)
    k = rng.randrange(len(OBFUSCATIONS))
    name, fn = OBFUSCATIONS[k]
    return fn(rng, base), f"obf:{name}"


def benign_obfuscated(rng: random.Random, lang: str) -> tuple[str, str]:
    """Benign text under the mild obfuscations (so odd characters alone are no cue)."""
    base, _ = rng.choice([benign_general, benign_risky])(rng, lang)
    k = rng.choice([0, 1])  # leet, homoglyph
    name, fn = OBFUSCATIONS[k]
    return fn(rng, base), f"obf_benign:{name}"


# --- assembly ------------------------------------------------------------------------------

# (family, label, generator, count, source)
PLAN: list[tuple[str, int, Callable[[random.Random, str], tuple[str, str]], int, str]] = [
    ("override", 1, attack_override, 1600, "prompt"),
    ("hijack", 1, attack_hijack, 800, "prompt"),
    ("extraction", 1, attack_extract, 1100, "prompt"),
    ("roleplay_jailbreak", 1, attack_dan, 320, "prompt"),
    ("roleplay_jailbreak", 1, attack_jb_short, 900, "prompt"),
    ("fake_delimiter", 1, attack_fake_role, 400, "prompt"),
    ("payload_split", 1, attack_split, 250, "prompt"),
    ("indirect", 1, attack_indirect, 1000, "document"),
    ("obfuscated", 1, attack_obfuscated, 700, "prompt"),
    ("general", 0, benign_general, 1000, "prompt"),
    ("life", 0, benign_life, 1000, "prompt"),
    ("factual", 0, benign_factual, 800, "prompt"),
    ("hard_negative", 0, benign_hard, 700, "prompt"),
    ("multi", 0, benign_multi, 300, "prompt"),
    ("pii_text", 0, benign_pii, 450, "prompt"),
    ("pydoc", 0, benign_pydoc, 450, "document"),
    ("procedure", 0, benign_procedure, 700, "document"),
    ("risky_words", 0, benign_risky, 800, "prompt"),
    ("security", 0, benign_from(B.SECURITY, "security"), 400, "prompt"),
    ("code", 0, benign_from(B.CODE, "code"), 400, "prompt"),
    ("roleplay_benign", 0, benign_from(B.ROLEPLAY_BENIGN, "roleplay_benign"), 450, "prompt"),
    ("sysprompt", 0, benign_from(B.SYSPROMPT, "sysprompt"), 400, "prompt"),
    ("translate", 0, benign_from(B.TRANSLATE, "translate"), 250, "prompt"),
    ("support", 0, benign_from(B.SUPPORT, "support"), 250, "prompt"),
    ("llm_meta", 0, benign_from(M.LLM_META, "llm_meta"), 350, "prompt"),
    ("everyday", 0, benign_everyday, 4000, "prompt"),
    ("instructions_everyday", 0, benign_from(M.INSTRUCTIONS_EVERYDAY, "instr"), 500, "prompt"),
    ("retract", 0, benign_retract, 500, "prompt"),
    ("code", 0, benign_from(M.CODE_MORE, "code_more"), 300, "prompt"),
    ("document", 0, benign_document, 650, "document"),
    ("encoded_benign", 0, benign_encoded, 300, "prompt"),
    ("obfuscated_benign", 0, benign_obfuscated, 200, "prompt"),
    ("meta", 0, benign_meta, 1300, "prompt"),
    ("howto", 0, benign_howto, 1000, "prompt"),
    ("persona", 0, benign_persona, 800, "prompt"),
    ("decode_harmless", 0, benign_decode, 500, "prompt"),
    ("short", 0, benign_short, 150, "prompt"),
    ("preference", 0, benign_pref, 600, "prompt"),
    ("dev_task", 0, benign_dev, 300, "prompt"),
]

# languages the multilingual banks cover for each generator (others are English-only)
MULTI = {attack_override, attack_hijack, attack_extract, attack_jb_short, attack_fake_role,
         attack_indirect, benign_general, benign_risky, attack_obfuscated, benign_obfuscated,
         benign_life, benign_factual, benign_multi, benign_retract, benign_meta, benign_howto,
         benign_persona, benign_pref}


def generate(seed: int = SEED) -> list[Row]:
    rng = random.Random(seed)  # noqa: S311 (reproducible data, not secrets)
    rows: list[Row] = []
    seen: set[str] = set()
    for family, label, gen, count, source in PLAN:
        made = tries = 0
        while made < count and tries < count * 20:
            tries += 1
            if gen is benign_everyday:
                lang = rng.choice(["de", "fr", "es", "it", "nl"])
            else:
                lang = pick_lang(rng) if gen in MULTI else "en"
            text, template = gen(rng, lang)
            src = source
            if source == "document":
                r = rng.random()
                if r < 0.3:
                    src = "tool"
                elif r < 0.5:  # the same document pasted into a prompt
                    text, src = wrap_document_prompt(rng, text), "prompt"
            elif family not in ("obfuscated", "encoded_benign", "decode_harmless"):
                text = surface(rng, text)
            if text in seen:
                continue
            seen.add(text)
            rows.append({"text": text, "label": label, "lang": lang, "family": family,
                         "template": template, "source": src})
            made += 1
    rng.shuffle(rows)
    return rows


def main() -> None:
    rows = generate()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    attacks = sum(1 for r in rows if r["label"] == 1)
    print(f"wrote {len(rows)} rows ({attacks} attacks) to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
