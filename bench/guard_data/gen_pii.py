"""Generates PII span sets in six languages: ``pii_gen_{lang}.jsonl`` (+ ``pii_gen_neg.jsonl``).

    .venv/bin/python bench/guard_data/gen_pii.py [--rows 150] [--seed 7]

Values come from Faker's locale providers (de_DE, fr_FR, es_ES, it_IT, nl_NL, en_US/en_GB):
names, companies, cities, street addresses, phone numbers, IBANs, card numbers, and the
national IDs Faker knows how to make valid (US SSN, French NIR, Spanish DNI/NIE, Italian
codice fiscale, Dutch BSN). German tax IDs (Faker has none; ISO 7064 check digit) and UK
NINOs (Faker's use the never-issued ZZ prefix) are made here: those share their rules with
the scanner. Sentences come from
templates written here, in each language, with and without context words. The negative set
holds look-alikes that must not be flagged (UUIDs, hashes, order and ticket numbers,
versions, timestamps), with no entities. ``pii_handwritten.jsonl`` holds 30 prompts written by
hand in the register of real requests (eight of them without PII).

Independence: written by the scanner's author, so these are regression checks of the
recognizers across languages, not an independent benchmark. Seeded: same output each run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from faker import Faker

OUT = Path(__file__).resolve().parent
LOCALES = {"en": "en_US", "de": "de_DE", "fr": "fr_FR", "es": "es_ES", "it": "it_IT",
           "nl": "nl_NL"}

# {TYPE} placeholders; a template's words are its language's
TEMPLATES: dict[str, list[str]] = {
    "en": [
        "Hi, I'm {PERSON} and my email is {EMAIL_ADDRESS}.",
        "Please call {PERSON} at {PHONE_NUMBER} before Friday.",
        "My card number is {CREDIT_CARD}, expiry next year.",
        "Wire the refund to {IBAN_CODE} please.",
        "My SSN is {US_SSN} and I was born on {DATE_OF_BIRTH}.",
        "National Insurance number: {UK_NINO}",
        "{PERSON} works for {ORGANIZATION} in {LOCATION}.",
        "Ship it to {STREET_ADDRESS}, attention {PERSON}.",
        "The server at {IP_ADDRESS} logged MAC {MAC_ADDRESS}.",
        "See {URL} for the details, or write to {EMAIL_ADDRESS}.",
        "Date of birth: {DATE_OF_BIRTH}. Phone: {PHONE_NUMBER}",
        "{PERSON} ({EMAIL_ADDRESS}) asked about invoice 4471.",
    ],
    "de": [
        "Hallo, ich bin {PERSON}, meine E-Mail ist {EMAIL_ADDRESS}.",
        "Bitte rufen Sie mich unter {PHONE_NUMBER} an.",
        "Meine Steuer-ID lautet {DE_TAX_ID}.",
        "Überweisen Sie den Betrag auf das Konto {IBAN_CODE}.",
        "Ich bin am {DATE_OF_BIRTH} geboren und wohne in der {STREET_ADDRESS}.",
        "{PERSON} arbeitet bei {ORGANIZATION} in {LOCATION}.",
        "Kreditkarte: {CREDIT_CARD}",
        "Telefon {PHONE_NUMBER}, Adresse {STREET_ADDRESS}",
        "Der Rechner mit der IP {IP_ADDRESS} hat die MAC-Adresse {MAC_ADDRESS}.",
        "Geburtsdatum: {DATE_OF_BIRTH}, Name: {PERSON}",
    ],
    "fr": [
        "Bonjour, je m'appelle {PERSON} et mon e-mail est {EMAIL_ADDRESS}.",
        "Vous pouvez me joindre au {PHONE_NUMBER}.",
        "Mon numéro de sécurité sociale est {FR_NIR}.",
        "Merci de faire le virement sur {IBAN_CODE}.",
        "Je suis né le {DATE_OF_BIRTH} et j'habite {STREET_ADDRESS}.",
        "{PERSON} travaille chez {ORGANIZATION} à {LOCATION}.",
        "Ma carte bancaire : {CREDIT_CARD}",
        "Téléphone : {PHONE_NUMBER}, adresse : {STREET_ADDRESS}",
        "L'adresse IP {IP_ADDRESS} correspond à la machine {MAC_ADDRESS}.",
        "Date de naissance : {DATE_OF_BIRTH}",
    ],
    "es": [
        "Hola, soy {PERSON} y mi correo es {EMAIL_ADDRESS}.",
        "Llámame al {PHONE_NUMBER}, por favor.",
        "Mi DNI es {ES_NIF}.",
        "Mi NIE es {ES_NIE}.",
        "Haga la transferencia a la cuenta {IBAN_CODE}.",
        "Nací el {DATE_OF_BIRTH}; fecha de nacimiento confirmada. Vivo en {STREET_ADDRESS}.",
        "{PERSON} trabaja en {ORGANIZATION} en {LOCATION}.",
        "Tarjeta de crédito: {CREDIT_CARD}",
        "Teléfono: {PHONE_NUMBER}. Dirección: {STREET_ADDRESS}",
        "La IP {IP_ADDRESS} y la MAC {MAC_ADDRESS} son del portátil.",
    ],
    "it": [
        "Ciao, sono {PERSON} e la mia email è {EMAIL_ADDRESS}.",
        "Chiamami al numero {PHONE_NUMBER}.",
        "Il mio codice fiscale è {IT_FISCAL_CODE}.",
        "Fai il bonifico su {IBAN_CODE}.",
        "Sono nato il {DATE_OF_BIRTH} e abito in {STREET_ADDRESS}.",
        "{PERSON} lavora per {ORGANIZATION} a {LOCATION}.",
        "Carta di credito: {CREDIT_CARD}",
        "Telefono: {PHONE_NUMBER}, indirizzo: {STREET_ADDRESS}",
        "L'indirizzo IP {IP_ADDRESS} appartiene al dispositivo {MAC_ADDRESS}.",
        "Data di nascita: {DATE_OF_BIRTH}",
    ],
    "nl": [
        "Hoi, ik ben {PERSON} en mijn e-mail is {EMAIL_ADDRESS}.",
        "Bel me op {PHONE_NUMBER}.",
        "Mijn BSN is {NL_BSN}.",
        "Maak het bedrag over naar rekening {IBAN_CODE}.",
        "Ik ben geboren op {DATE_OF_BIRTH} en woon op {STREET_ADDRESS}.",
        "{PERSON} werkt bij {ORGANIZATION} in {LOCATION}.",
        "Creditcard: {CREDIT_CARD}",
        "Telefoon: {PHONE_NUMBER}, adres: {STREET_ADDRESS}",
        "Het IP-adres {IP_ADDRESS} hoort bij {MAC_ADDRESS}.",
        "Geboortedatum: {DATE_OF_BIRTH}",
    ],
}

DATE_FORMATS = {
    "en": ["%B %d, %Y", "%m/%d/%Y", "%Y-%m-%d", "%d %B %Y"],
    "de": ["%d.%m.%Y", "%d. {month} %Y"],
    "fr": ["%d/%m/%Y", "%d {month} %Y"],
    "es": ["%d/%m/%Y", "%d de {month} de %Y"],
    "it": ["%d/%m/%Y", "%d {month} %Y"],
    "nl": ["%d-%m-%Y", "%d {month} %Y"],
}
MONTHS = {
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
          "diciembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre "
          "dicembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november "
          "december",
}


def de_tax_id(rng: random.Random) -> str:
    while True:
        digits = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(9)]
        counts = sorted(digits.count(d) for d in set(digits))
        if counts[-1] != 2 or sum(1 for c in counts if c > 1) != 1:
            continue
        product = 10
        for d in digits:
            total = (d + product) % 10 or 10
            product = (total * 2) % 11
        check = 11 - product
        digits.append(0 if check == 10 else check)
        text = "".join(map(str, digits))
        return text if rng.random() < 0.7 else f"{text[:2]} {text[2:5]} {text[5:8]} {text[8:]}"


def uk_nino(rng: random.Random) -> str:
    """Faker's en_GB ``ssn`` uses the never-issued ZZ prefix: a valid prefix here."""
    first = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in {"GB", "NK", "TN", "ZZ"}:
        second = "A"
    digits = f"{rng.randint(0, 999999):06d}"
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{first}{second}{digits}{suffix}"


def spaced(value: str, rng: random.Random, group: int = 4) -> str:
    if rng.random() < 0.5:
        return value
    return " ".join(value[i:i + group] for i in range(0, len(value), group))


def values(fake: Faker, lang: str, rng: random.Random) -> dict[str, Callable[[], str]]:
    def dob() -> str:
        date = fake.date_between(start_date=dt.date(1935, 1, 1), end_date=dt.date(2006, 12, 31))
        fmt = rng.choice(DATE_FORMATS[lang])
        if "{month}" in fmt:
            fmt = fmt.replace("{month}", MONTHS[lang].split()[date.month - 1])
        return date.strftime(fmt)

    return {
        "PERSON": fake.name,
        "EMAIL_ADDRESS": fake.email,
        "PHONE_NUMBER": fake.phone_number,
        "CREDIT_CARD": lambda: spaced(fake.credit_card_number(), rng),
        "IBAN_CODE": lambda: spaced(fake.iban(), rng),
        "US_SSN": fake.ssn,
        "UK_NINO": lambda: uk_nino(rng),
        "DE_TAX_ID": lambda: de_tax_id(rng),
        "FR_NIR": lambda: fake.ssn(),
        "ES_NIF": lambda: fake.nif(),
        "ES_NIE": lambda: fake.nie(),
        "IT_FISCAL_CODE": fake.ssn,
        "NL_BSN": fake.ssn,
        "DATE_OF_BIRTH": dob,
        "ORGANIZATION": fake.company,
        "LOCATION": fake.city,
        "STREET_ADDRESS": lambda: fake.street_address().replace("\n", ", "),
        "IP_ADDRESS": lambda: fake.ipv4() if rng.random() < 0.8 else fake.ipv6(),
        "MAC_ADDRESS": fake.mac_address,
        "URL": fake.url,
    }


def render(template: str, makers: dict[str, Callable[[], str]]) -> dict[str, object]:
    text, entities, pos = "", [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        text += template[pos:m.start()]
        kind = m.group(1)
        value = makers[kind]()
        entities.append({"start": len(text), "end": len(text) + len(value),
                         "type": "ES_NIF" if kind == "ES_NIE" else kind})
        text += value
        pos = m.end()
    text += template[pos:]
    return {"text": text, "entities": entities}


def negatives(rng: random.Random, n: int) -> list[dict[str, object]]:
    r = rng.randint
    makers: list[Callable[[], str]] = [
        lambda: f"request id {uuid.UUID(int=rng.getrandbits(128))} failed",
        lambda: f"commit {rng.getrandbits(160):040x} fixes the build",
        lambda: f"sha256 {rng.getrandbits(256):064x}",
        lambda: f"order #{r(10**7, 10**10)} shipped on 2024-0{r(1, 9)}-1{r(0, 9)}",
        lambda: f"ticket {r(2019, 2025)}-{r(0, 999999):06d} is closed",
        lambda: f"upgrade to version {r(1, 9)}.{r(0, 20)}.{r(0, 99)}.{r(0, 999)}",
        lambda: f"the job ran at {r(10, 23)}:{r(10, 59)}:{r(10, 59)} and took {r(2, 900)} ms",
        lambda: f"invoice {r(10**11, 10**13)} total {r(10, 9999)}.{r(10, 99)} EUR",
        lambda: f"tracking number {r(10**15, 10**16)}",
        lambda: f"the meeting is on {r(1, 28)}/{r(1, 12)}/2025 in room {r(100, 999)}",
        lambda: f"we sold {r(10000, 99999)} units in Q{r(1, 4)}",
        lambda: f"build {r(20200101, 20251231)} passed {r(100, 9999)} tests",
    ]
    return [{"text": rng.choice(makers)(), "entities": [], "lang": "en"} for _ in range(n)]


# hand-written prompts in the register of real requests, phrased without the templates
# above or the dev set's: (text, [(value, type), ...]); offsets are found by search
HANDWRITTEN: list[tuple[str, list[tuple[str, str]]]] = [
    ("Can you draft a reply to Priya Natarajan? She asked whether the invoice for March "
     "was paid.", [("Priya Natarajan", "PERSON")]),
    ("Summarise this: 'Hi team, Jonas Becker from Siemens Healthineers will visit our "
     "Rotterdam office next week.'", [("Jonas Becker", "PERSON"),
                                       ("Siemens Healthineers", "ORGANIZATION"),
                                       ("Rotterdam", "LOCATION")]),
    ("My wife's card ending 0005 was charged twice, full number 5105 1051 0510 5100.",
     [("5105 1051 0510 5100", "CREDIT_CARD")]),
    ("Translate to French: please send the parcel to 742 Evergreen Terrace, Springfield.",
     [("742 Evergreen Terrace", "STREET_ADDRESS"), ("Springfield", "LOCATION")]),
    ("Our VPN gateway is 10.24.8.1 and the backup is at fd12:3456:789a:1::1, can you "
     "check the firewall rules?", [("10.24.8.1", "IP_ADDRESS"),
                                    ("fd12:3456:789a:1::1", "IP_ADDRESS")]),
    ("Write a polite email to hr@northwind-traders.com asking about my payslip.",
     [("hr@northwind-traders.com", "EMAIL_ADDRESS")]),
    ("Is +33 6 12 34 56 78 a mobile number? A customer left it on the form.",
     [("+33 6 12 34 56 78", "PHONE_NUMBER")]),
    ("Refund to NL02 ABNA 0123 4567 89 please, account holder M. de Jong.",
     [("NL02 ABNA 0123 4567 89", "IBAN_CODE"), ("M. de Jong", "PERSON")]),
    ("The patient, Olivia Brennan, born 14/02/1961, reports chest pain since Tuesday.",
     [("Olivia Brennan", "PERSON"), ("14/02/1961", "DATE_OF_BIRTH")]),
    ("Explain how Kubernetes schedules pods across nodes.", []),
    ("Give me a Python function that validates an IBAN with mod 97.", []),
    ("What is 4 + 4 * 12, and why does operator precedence matter?", []),
    ("Rewrite this paragraph in a friendlier tone: we regret to inform you that your "
     "application was unsuccessful.", []),
    ("List three books about the history of Rome.", [("Rome", "LOCATION")]),
    ("Angela, can you forward the contract to Marcus Feldmann at Feldmann & Söhne GmbH?",
     [("Angela", "PERSON"), ("Marcus Feldmann", "PERSON"),
      ("Feldmann & Söhne GmbH", "ORGANIZATION")]),
    ("Mein Name ist Katrin Vogel, ich wohne in der Lindenallee 12, 50968 Köln.",
     [("Katrin Vogel", "PERSON"), ("Lindenallee 12, 50968 Köln", "STREET_ADDRESS")]),
    ("Je m'appelle Hugo Lefèvre, mon numéro est le 06 98 76 54 32.",
     [("Hugo Lefèvre", "PERSON"), ("06 98 76 54 32", "PHONE_NUMBER")]),
    ("Hola, soy Marta Ruiz y mi DNI es 87654321X.",
     [("Marta Ruiz", "PERSON"), ("87654321X", "ES_NIF")]),
    ("Buongiorno, sono Luca Bianchi, abito in Via Garibaldi 8, Torino.",
     [("Luca Bianchi", "PERSON"), ("Via Garibaldi 8", "STREET_ADDRESS"),
      ("Torino", "LOCATION")]),
    ("Hallo, ik ben Daan Visser en mijn telefoonnummer is 06 23456789.",
     [("Daan Visser", "PERSON"), ("06 23456789", "PHONE_NUMBER")]),
    ("The build 4.12.0 failed on commit 3f9a2c1 with exit code 137.", []),
    ("Order #88231045 was shipped by DHL on 2024-05-02.", [("DHL", "ORGANIZATION")]),
    ("Call me tomorrow on (212) 555-0187 after 5pm, thanks, Dave", [
        ("(212) 555-0187", "PHONE_NUMBER"), ("Dave", "PERSON")]),
    ("SSN for the W-2 is 219-09-9998? No wait, it's 432-87-1190.",
     [("432-87-1190", "US_SSN")]),
    ("Flight from Lisbon to Oslo on 3 June, passenger Ms. Ingrid Solberg.",
     [("Lisbon", "LOCATION"), ("Oslo", "LOCATION"), ("Ms. Ingrid Solberg", "PERSON")]),
    ("Our company Brightwave Analytics Ltd is based at 18 Queen Street, Edinburgh EH2 1JX.",
     [("Brightwave Analytics Ltd", "ORGANIZATION"), ("18 Queen Street", "STREET_ADDRESS"),
      ("Edinburgh", "LOCATION"), ("EH2 1JX", "ZIP_CODE")]),
    ("How do I say 'good morning' in Japanese?", [("Japanese", "NRP")]),
    ("Device MAC 3c:22:fb:91:0e:7d keeps dropping off the Wi-Fi.",
     [("3c:22:fb:91:0e:7d", "MAC_ADDRESS")]),
    ("See https://intranet.example.com/people/jsmith for John's profile.",
     [("https://intranet.example.com/people/jsmith", "URL"), ("John", "PERSON")]),
    ("Please anonymise: Tomasz Kowalski (tomasz.k@poczta.pl, +48 601 234 567) lives in "
     "Gdańsk.", [("Tomasz Kowalski", "PERSON"), ("tomasz.k@poczta.pl", "EMAIL_ADDRESS"),
                 ("+48 601 234 567", "PHONE_NUMBER"), ("Gdańsk", "LOCATION")]),
]


def handwritten() -> list[dict[str, object]]:
    rows = []
    for text, spans in HANDWRITTEN:
        entities = []
        for value, kind in spans:
            start = text.index(value)
            entities.append({"start": start, "end": start + len(value), "type": kind})
        rows.append({"text": text, "entities": entities, "lang": "en"})
    return rows


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # some Faker providers pick from sets: string hashing must be fixed for the same
        # output on every run
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=150)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    for i, (lang, locale) in enumerate(LOCALES.items()):
        rng = random.Random(args.seed + i)
        fake = Faker(locale)
        fake.seed_instance(args.seed + i)
        makers = values(fake, lang, rng)
        rows = []
        for _ in range(args.rows):
            row = render(rng.choice(TEMPLATES[lang]), makers)
            row["lang"] = lang
            rows.append(row)
        write(OUT / f"pii_gen_{lang}.jsonl", rows)
    write(OUT / "pii_gen_neg.jsonl", negatives(random.Random(args.seed), args.rows))
    write(OUT / "pii_handwritten.jsonl", handwritten())


def write(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path.name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
