"""The PII scanner's pattern recognizers: true positives per language, validation that
rejects near-misses, exact offsets, option checking. NER is off here (see
test_guard_pii_ner.py)."""

from __future__ import annotations

import pytest

from bastion.guards.base import Finding, ScanContext
from bastion.guards.builtin import BUILTIN_SCANNERS
from bastion.guards.pii import KINDS, make_scanner
from bastion.guards.pii import checksums as cs

SCANNER = make_scanner({"ner": False})


def scan(text: str, **options: object) -> list[Finding]:
    scanner = make_scanner({"ner": False, **options}) if options else SCANNER
    return scanner.scan(text, ScanContext())


def found(text: str, kind: str, threshold: float = 0.5) -> list[str]:
    return [text[f.start:f.end] for f in scan(text) if f.kind == kind and f.score >= threshold]


def kinds(text: str, threshold: float = 0.5) -> set[str]:
    return {f.kind for f in scan(text) if f.score >= threshold}


# --- checksums ----------------------------------------------------------------------------

def test_luhn_and_card_prefixes() -> None:
    assert cs.credit_card("4111111111111111")
    assert cs.credit_card("378282246310005")  # Amex, 15
    assert cs.credit_card("5555555555554444")
    assert not cs.credit_card("4111111111111112")  # bad Luhn
    assert not cs.credit_card("378282246310005" + "0")  # Amex with 16 digits
    assert not cs.credit_card("9111111111111119")  # no issuer starts with 9


@pytest.mark.parametrize("code", [
    "DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606",
    "ES9121000418450200051332", "IT60X0542811101000000123456", "NL91ABNA0417164300",
])
def test_iban_valid(code: str) -> None:
    assert cs.iban(code)


def test_iban_rejects_bad_check_and_wrong_length() -> None:
    assert not cs.iban("DE89370400440532013001")
    assert not cs.iban("DE8937040044053201300")  # 21 characters, Germany has 22
    assert not cs.iban("XX89370400440532013000")


def test_national_id_checks() -> None:
    assert cs.de_tax_id("86095742719") and not cs.de_tax_id("86095742718")
    assert not cs.de_tax_id("12345678903")  # no repeated digit
    assert cs.fr_nir("255081416802538") and not cs.fr_nir("255081416802539")
    assert cs.fr_nir("269054958815780")
    assert cs.es_dni("12345678Z") and cs.es_dni("X1234567L") and not cs.es_dni("12345678A")
    assert cs.it_fiscal_code("RSSMRA85T10A562S") and not cs.it_fiscal_code("RSSMRA85T10A562T")
    assert cs.nl_bsn("111222333") and cs.nl_bsn("123456782") and not cs.nl_bsn("123456781")
    assert cs.uk_nino("AB123456C") and not cs.uk_nino("QQ123456C") and not cs.uk_nino(
        "GB123456A") and not cs.uk_nino("AB123456E")
    assert cs.us_ssn("536901234") and not cs.us_ssn("000123456") and not cs.us_ssn(
        "666123456") and not cs.us_ssn("912345678") and not cs.us_ssn("536001234") and not (
        cs.us_ssn("536900000"))


# --- recognizers in text ------------------------------------------------------------------

def test_email_offsets_exact() -> None:
    text = "Write to jane.doe+tag@mail.example.co.uk, thanks."
    (f,) = [f for f in scan(text) if f.kind == "EMAIL_ADDRESS"]
    assert text[f.start:f.end] == "jane.doe+tag@mail.example.co.uk"
    assert f.score >= 0.95 and "jane" not in f.detail


@pytest.mark.parametrize("text, number", [
    ("Call me at +1 (415) 555-2671 tomorrow", "+1 (415) 555-2671"),
    ("Phone: (415) 555-2671", "(415) 555-2671"),
    ("UK office: +44 20 7946 0958", "+44 20 7946 0958"),
    ("Meine Telefonnummer ist 030 12345678.", "030 12345678"),
    ("Ruf mich an: +49 (0)30 1234567", "+49 (0)30 1234567"),
    ("Mon numéro de téléphone est le 01 23 45 67 89.", "01 23 45 67 89"),
    ("Mi teléfono es 612 34 56 78", "612 34 56 78"),
    ("Il mio numero di cellulare è 347 123 4567", "347 123 4567"),
    ("Bel me op 06 12345678", "06 12345678"),
    ("Tel. 0041 44 668 18 00", "0041 44 668 18 00"),
    ("Please call Tim at +1-918-395-5597x97114 before Friday.", "+1-918-395-5597x97114"),
    ("They're not answering at 71-33-52-22", "71-33-52-22"),
])
def test_phone_numbers_in_each_language(text: str, number: str) -> None:
    assert found(text, "PHONE_NUMBER") == [number]


def test_phone_rejects_dates_versions_and_short_numbers() -> None:
    assert not found("Released 2023-04-05 10:30 as build 1234567", "PHONE_NUMBER")
    assert not found("Order 12345 shipped in 3 boxes", "PHONE_NUMBER")
    assert not found("see section 1.2.3.4", "PHONE_NUMBER")
    assert not found("my driver's license number is 6940579", "PHONE_NUMBER")
    assert not found("tracking: 0301234567", "PHONE_NUMBER")


@pytest.mark.parametrize("number", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "5555555555554444",
])
def test_credit_cards(number: str) -> None:
    text = f"my card is {number}, expiring soon"
    assert found(text, "CREDIT_CARD", 0.95) == [number]


def test_credit_card_near_misses_not_flagged() -> None:
    assert not found("card 4111 1111 1111 1112", "CREDIT_CARD", 0.3)  # bad Luhn
    assert not found("order number 1234567812345678", "CREDIT_CARD", 0.3)  # bad Luhn
    assert not found("4111 1111-1111 1111", "CREDIT_CARD", 0.3)  # mixed separators
    assert not found("timestamp 1700000000123456", "CREDIT_CARD", 0.3)


@pytest.mark.parametrize("iban", [
    "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR14 2004 1010 0505 0001 3M02 606",
    "ES91 2100 0418 4502 0005 1332", "IT60X0542811101000000123456", "NL91 ABNA 0417 1643 00",
    "gb82west12345698765432",
])
def test_iban_in_text(iban: str) -> None:
    text = f"Please wire it to {iban} and tell me"
    assert found(text, "IBAN_CODE", 0.95) == [iban]


def test_iban_bad_check_not_flagged() -> None:
    assert not found("IBAN DE89 3704 0044 0532 0130 01", "IBAN_CODE", 0.3)
    assert not found("code GB82WEST1234569876543", "IBAN_CODE", 0.3)


def test_ip_addresses() -> None:
    text = "hosts 192.168.1.10 and 2001:db8::8a2e:370:7334 but not 999.1.1.1 or v1.2.3.4"
    assert found(text, "IP_ADDRESS") == ["192.168.1.10", "2001:db8::8a2e:370:7334"]
    assert not found("the meeting is at 12:30:45", "IP_ADDRESS")


def test_mac_addresses() -> None:
    assert found("NIC 00:1A:2B:3C:4D:5E up", "MAC_ADDRESS") == ["00:1A:2B:3C:4D:5E"]
    assert found("mac 00-1a-2b-3c-4d-5e", "MAC_ADDRESS") == ["00-1a-2b-3c-4d-5e"]
    assert found("cisco 001a.2b3c.4d5e", "MAC_ADDRESS") == ["001a.2b3c.4d5e"]
    assert not found("00:1A:2B:3C:4D", "MAC_ADDRESS")


def test_us_ssn() -> None:
    assert found("my SSN is 536-90-1234", "US_SSN", 0.95) == ["536-90-1234"]
    assert found("id 536-90-1234", "US_SSN") == ["536-90-1234"]
    assert found("social security number 536901234", "US_SSN", 0.9) == ["536901234"]
    for bad in ("000-12-3456", "666-12-3456", "912-34-5678", "536-00-1234", "536-90-0000"):
        assert not found(f"SSN {bad}", "US_SSN", 0.3), bad
    assert not found("reference 536901234", "US_SSN", 0.3)  # bare 9 digits, no context


def test_german_tax_id() -> None:
    assert found("Meine Steuer-ID lautet 86095742719.", "DE_TAX_ID", 0.95) == ["86095742719"]
    assert found("Steueridentifikationsnummer: 86 095 742 719", "DE_TAX_ID", 0.95) == [
        "86 095 742 719"]
    assert not found("Steuer-ID 86095742718", "DE_TAX_ID", 0.3)


def test_french_nir() -> None:
    text = "Mon numéro de sécurité sociale : 2 55 08 14 168 025 38"
    assert found(text, "FR_NIR", 0.95) == ["2 55 08 14 168 025 38"]
    assert not found("sécurité sociale 2 55 08 14 168 025 39", "FR_NIR", 0.3)


def test_spanish_dni_nie() -> None:
    assert found("Mi DNI es 12345678Z", "ES_NIF", 0.95) == ["12345678Z"]
    assert found("NIE: X-1234567-L", "ES_NIF", 0.95) == ["X-1234567-L"]
    assert not found("DNI 12345678A", "ES_NIF", 0.3)


def test_italian_fiscal_code() -> None:
    assert found("Il mio codice fiscale è RSSMRA85T10A562S", "IT_FISCAL_CODE", 0.95) == [
        "RSSMRA85T10A562S"]
    assert not found("codice fiscale RSSMRA85T10A562T", "IT_FISCAL_CODE", 0.3)


def test_dutch_bsn_needs_context() -> None:
    assert found("Mijn BSN is 111222333", "NL_BSN", 0.95) == ["111222333"]
    assert found("burgerservicenummer 1234.56.782", "NL_BSN", 0.95) == ["1234.56.782"]
    assert not found("ordernummer 111222333", "NL_BSN")  # 11-proef alone: 1 in 11
    assert not found("BSN 123456781", "NL_BSN", 0.3)


def test_uk_nino() -> None:
    assert found("National Insurance number AB 12 34 56 C", "UK_NINO", 0.95) == [
        "AB 12 34 56 C"]
    assert not found("NINO QQ 12 34 56 C", "UK_NINO", 0.3)


def test_url() -> None:
    text = "see https://example.org/a/b?c=1, or (www.example.com/x)."
    assert found(text, "URL") == ["https://example.org/a/b?c=1", "www.example.com/x"]


@pytest.mark.parametrize("text, date", [
    ("I was born on March 12, 1985.", "March 12, 1985"),
    ("DOB: 12/03/1985", "12/03/1985"),
    ("Ich bin am 12. März 1985 geboren", "12. März 1985"),
    ("geboren am 12.03.1985", "12.03.1985"),
    ("Je suis né le 3 mars 1980 à Lyon", "3 mars 1980"),
    ("Nacido el 5 de mayo de 1990", "5 de mayo de 1990"),
    ("Sono nato il 7 luglio 1975", "7 luglio 1975"),
    ("geboren op 21 april 1992", "21 april 1992"),
    ("date of birth 1985-03-12", "1985-03-12"),
])
def test_date_of_birth_in_each_language(text: str, date: str) -> None:
    assert found(text, "DATE_OF_BIRTH") == [date]


def test_plain_date_is_not_a_birth_date() -> None:
    text = "The meeting moved to 12.03.2025."
    assert not found(text, "DATE_OF_BIRTH", 0.3)
    assert [f.score for f in scan(text) if f.kind == "DATE_TIME"] == [0.4]


@pytest.mark.parametrize("text, address", [
    ("I live at 221B Baker Street, London", "221B Baker Street"),
    ("Ship to 1600 Pennsylvania Avenue NW Suite 5", "1600 Pennsylvania Avenue"),
    ("Ich wohne in der Hauptstraße 5, 10115 Berlin.", "Hauptstraße 5, 10115 Berlin"),
    ("Adresse : 12 rue de la Paix, 75002 Paris", "12 rue de la Paix, 75002 Paris"),
    ("Vivo en Calle Mayor, 3, Madrid", "Calle Mayor, 3"),
    ("Abito in Via Roma 10, Milano", "Via Roma 10"),
    ("Mijn adres is Keizersgracht 123, 1015 CJ Amsterdam", "Keizersgracht 123, 1015 CJ Amsterdam"),
])
def test_street_addresses(text: str, address: str) -> None:
    got = found(text, "STREET_ADDRESS")
    assert got and got[0].startswith(address)


def test_postcodes() -> None:
    assert found("zip code 94105", "ZIP_CODE") == ["94105"]
    assert found("San Francisco, CA 94105", "ZIP_CODE") == ["94105"]
    assert found("London SW1A 1AA", "ZIP_CODE") == ["SW1A 1AA"]
    assert not found("We sold 94105 units", "ZIP_CODE", 0.3)


def test_uuids_hashes_and_order_numbers_are_not_pii() -> None:
    text = ("request 550e8400-e29b-41d4-a716-446655440000 commit "
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 order #100234987 "
            "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 ticket 2024-000123 build 20240512")
    assert kinds(text) == set()


def test_findings_do_not_overlap_and_card_beats_phone() -> None:
    text = "card 4111111111111111 and phone +1 415 555 2671"
    got = scan(text)
    assert [(f.kind, text[f.start:f.end]) for f in got] == [
        ("CREDIT_CARD", "4111111111111111"), ("PHONE_NUMBER", "+1 415 555 2671")]


# --- options ------------------------------------------------------------------------------

def test_entities_option_restricts_kinds() -> None:
    text = "mail a@b.io, card 4111111111111111"
    assert {f.kind for f in scan(text, entities=["EMAIL_ADDRESS"])} == {"EMAIL_ADDRESS"}
    assert {f.kind for f in scan(text, entities="credit_card")} == {"CREDIT_CARD"}


def test_languages_option_drops_other_national_ids() -> None:
    assert not [f for f in scan("DNI 12345678Z", languages=["en", "de"]) if f.kind == "ES_NIF"]


@pytest.mark.parametrize("options, word", [
    ({"bogus": 1}, "bogus"),
    ({"entities": ["EMAIL", "PERSON"]}, "EMAIL"),
    ({"entities": []}, "entities"),
    ({"languages": ["en", "pt"]}, "pt"),
    ({"ner": "yes"}, "ner"),
    ({"ner_model": "xx_missing"}, "ner_model"),
    ({"min_score": 2}, "min_score"),
])
def test_bad_options_raise_value_error(options: dict[str, object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        make_scanner(options)


def test_registered_as_builtin_and_kinds_listed() -> None:
    assert BUILTIN_SCANNERS["pii"] == "bastion.guards.pii:make_scanner"
    assert SCANNER.name == "pii" and set(SCANNER.kinds) == set(KINDS)


def test_detail_never_contains_the_value() -> None:
    text = "a@b.io 4111111111111111 DE89370400440532013000 192.168.0.1 +49 30 12345678"
    for f in scan(text):
        assert text[f.start:f.end] not in f.detail


# --- cue phrases and generic address forms ------------------------------------------------

@pytest.mark.parametrize("text, name", [
    ("Please ask Mr. Leiva about it", "Mr. Leiva"),
    ("Sehr geehrte Frau Schmidt,", "Frau Schmidt"),
    ("my name is rubija", "rubija"),
    ("Je m'appelle Claire Dubois.", "Claire Dubois"),
    ("Hola, me llamo Lucía", "Lucía"),
    ("Mijn naam is Sanne de Vries", "Sanne"),
])
def test_cued_names(text: str, name: str) -> None:
    got = found(text, "PERSON")
    assert got and got[0].startswith(name)


def test_weak_cues_need_a_capitalised_name() -> None:
    assert not found("I'm happy to help, this is fine", "PERSON")
    assert found("Thanks, Maria", "PERSON") == ["Maria"]


def test_ages() -> None:
    assert found("This 74 year old female", "AGE") == ["74"]
    assert found("He just turned 63 years old", "AGE") == ["63"]
    assert found("Er ist 35 Jahre alt", "AGE") == ["35"]
    assert not found("the 2019 report", "AGE")


def test_units_boxes_and_numbered_streets() -> None:
    text = "Billing address: 28245 Puruntie 82 Apt. 595, P.O. Box 242"
    assert found(text, "STREET_ADDRESS") == ["28245 Puruntie 82", "Apt. 595", "P.O. Box 242"]
    assert found("Kasimir-Bolnbach-Straße 12/73", "STREET_ADDRESS") == [
        "Kasimir-Bolnbach-Straße 12/73"]
    assert not found("In 2019 Windows 10 shipped", "STREET_ADDRESS")
    assert not found("I have 3 cats and 4 dogs", "STREET_ADDRESS")


@pytest.mark.parametrize("text, name", [
    ("Mehrudin shouted at Todd: what are you doing here?", "Todd"),
    ("I would like to remove my kid Lukas from the will.", "Lukas"),
    ("Dexter lives on a quiet street", "Dexter"),
    ("Ella: What a wife.\nDestiny: Remember me?", "Ella"),
])
def test_person_cues(text: str, name: str) -> None:
    assert name in found(text, "PERSON")


def test_dialogue_labels_are_not_people() -> None:
    text = "User: hello\nAssistant: hi\nNote: none\nKreditkarte: 4111111111111111"
    assert not found(text, "PERSON")


def test_military_and_lowercase_boxes() -> None:
    assert found("unit 1009 box 0219\ndpo ap 51065", "STREET_ADDRESS") == [
        "unit 1009 box 0219", "dpo ap 51065"]
    assert found("Meet me at PSC 1437, Box 3833", "STREET_ADDRESS") == ["PSC 1437, Box 3833"]


@pytest.mark.parametrize("text", [
    "Ab-" * 2700, "A'" * 4000, "1234567890" * 800, "1 " * 4000, ", ".join(["Alpha"] * 1300),
    "Mr. " * 2000, "a1:" * 2600, "12 Main " * 1000, "Ab Cd\n12 Main Street\n" * 300,
])
def test_pathological_input_stays_linear(text: str) -> None:
    """No pattern may backtrack catastrophically: 8,000 hostile characters in well under a
    second (typically tens of milliseconds)."""
    import time

    start = time.perf_counter()
    scan(text)
    assert time.perf_counter() - start < 1.0
