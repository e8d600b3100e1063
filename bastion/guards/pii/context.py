"""Context words: what people write near an identifier, per kind and language.

A weak pattern (nine digits, a date, a postcode) becomes a confident finding when one of
these words stands close before it (or just after it); a validated one only gains a
little. Words are matched case-insensitively as word prefixes, so "telefon" covers
"Telefonnummer" and "phone" covers "phones".
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

LANGUAGES = ("en", "de", "fr", "es", "it", "nl")

# kind -> language -> words (lower case; prefixes)
WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "PHONE_NUMBER": {
        # not the bare word "number": "licence number", "order number"
        "en": ("phone", "tel", "call", "mobile", "cell", "fax", "contact", "reach",
               "text me", "whatsapp", "office", "landline", "dial", "ring", "answering",
               "my number", "number is"),
        "de": ("telefon", "tel", "handy", "mobil", "rufnummer", "anruf", "ruf", "fax",
               "erreichbar", "meine nummer", "festnetz"),
        "fr": ("téléphone", "telephone", "tél", "tel", "portable", "mobile", "appel",
               "joindre", "fax", "mon numéro"),
        "es": ("teléfono", "telefono", "tel", "móvil", "movil", "llamar", "llama",
               "llámame", "celular", "fax", "mi número"),
        "it": ("telefono", "tel", "cellulare", "cell", "chiamare", "chiama", "fax",
               "contatto", "il mio numero", "numero di"),
        "nl": ("telefoon", "tel", "mobiel", "bel", "gsm", "fax", "bereikbaar",
               "mijn nummer"),
    },
    "CREDIT_CARD": {
        "en": ("card", "credit", "visa", "mastercard", "amex", "payment", "cc", "debit"),
        "de": ("karte", "kreditkarte", "kartennummer", "zahlung"),
        "fr": ("carte", "paiement", "cb"),
        "es": ("tarjeta", "pago", "crédito", "credito"),
        "it": ("carta", "pagamento", "credito"),
        "nl": ("kaart", "creditcard", "betaling", "betaalpas"),
    },
    "IBAN_CODE": {
        "en": ("iban", "account", "bank", "transfer", "wire"),
        "de": ("iban", "konto", "bank", "überweisung", "bankverbindung"),
        "fr": ("iban", "compte", "banque", "virement", "rib"),
        "es": ("iban", "cuenta", "banco", "transferencia"),
        "it": ("iban", "conto", "banca", "bonifico"),
        "nl": ("iban", "rekening", "bank", "overmaken"),
    },
    "US_SSN": {
        "en": ("ssn", "social security", "social sec", "ss#", "ss #", "ss number"),
    },
    "DE_TAX_ID": {
        "en": ("tax id", "tax identification", "tin", "steuer"),
        "de": ("steuer-id", "steuerid", "steuer-identifikationsnummer",
               "steueridentifikationsnummer", "identifikationsnummer", "idnr", "steuernummer",
               "tin"),
    },
    "FR_NIR": {
        "en": ("social security", "insee", "nir", "ssn"),
        "fr": ("sécurité sociale", "securite sociale", "sécu", "secu", "insee", "nir",
               "numéro de sécurité", "carte vitale", "immatriculation"),
    },
    "ES_NIF": {
        "en": ("dni", "nie", "nif", "id card", "identity"),
        "es": ("dni", "nie", "nif", "documento", "identidad", "identificación",
               "extranjero"),
    },
    "IT_FISCAL_CODE": {
        "en": ("fiscal code", "codice fiscale", "tax code", "tax id"),
        "it": ("codice fiscale", "cod. fisc", "c.f", "cf", "fiscale"),
    },
    "NL_BSN": {
        "en": ("bsn", "citizen service", "social security", "sofi"),
        "nl": ("bsn", "burgerservicenummer", "sofinummer", "sofi", "burgerservice"),
    },
    "UK_NINO": {
        "en": ("national insurance", "nino", "ni number", "ni no", "nin"),
    },
    "DATE_OF_BIRTH": {
        "en": ("born", "birth", "dob", "d.o.b", "birthday", "b."),
        "de": ("geboren", "geb.", "geburt", "geburtsdatum", "geburtstag"),
        "fr": ("né le", "née le", "né", "née", "naissance", "date de naissance"),
        "es": ("nacido", "nacida", "nació", "nací", "nacimiento", "fecha de nacimiento"),
        "it": ("nato", "nata", "nascita", "data di nascita"),
        "nl": ("geboren", "geboortedatum", "geb.", "geboorte"),
    },
    "ZIP_CODE": {
        "en": ("zip", "postcode", "postal code", "post code", "postal"),
        "de": ("plz", "postleitzahl"),
        "fr": ("code postal", "cp"),
        "es": ("código postal", "codigo postal", "c.p", "cp"),
        "it": ("cap", "codice postale", "c.a.p"),
        "nl": ("postcode",),
    },
    "STREET_ADDRESS": {
        "en": ("address", "live", "lives", "located", "ship", "deliver", "street", "reside"),
        "de": ("adresse", "anschrift", "wohne", "wohnt", "wohnhaft", "straße", "lieferung"),
        "fr": ("adresse", "habite", "domicile", "demeurant", "livraison"),
        "es": ("dirección", "direccion", "vive", "vivo", "domicilio", "envío", "envio"),
        "it": ("indirizzo", "abito", "abita", "residente", "domicilio", "consegna"),
        "nl": ("adres", "woon", "woont", "woonachtig", "bezorg"),
    },
    # numbers that pass a checksum by chance but are named as something else
    "NOT_PII_NUMBER": {
        "en": ("order", "tracking", "invoice", "ticket", "ref", "reference", "transaction",
               "shipment", "parcel", "serial", "build", "version", "isbn", "sku", "license",
               "licence", "passport", "policy number", "membership", "customer number",
               "id number"),
        "de": ("bestellnummer", "bestellung", "sendungsnummer", "rechnungsnummer", "rechnung",
               "auftrag", "ticket", "seriennummer", "führerschein", "ausweis", "kundennummer",
               "vertragsnummer"),
        "fr": ("commande", "facture", "suivi", "colis", "référence", "ticket", "permis",
               "passeport", "numéro client"),
        "es": ("pedido", "factura", "seguimiento", "referencia", "envío", "licencia",
               "pasaporte", "número de cliente"),
        "it": ("ordine", "fattura", "spedizione", "riferimento", "patente", "passaporto",
               "codice cliente"),
        "nl": ("bestelling", "bestelnummer", "factuur", "zending", "referentie", "rijbewijs",
               "paspoort", "klantnummer"),
    },
    "IP_ADDRESS": {
        "en": ("ip", "address", "host", "server", "client"),
        "de": ("ip", "adresse"),
        "fr": ("ip", "adresse"),
        "es": ("ip", "dirección"),
        "it": ("ip", "indirizzo"),
        "nl": ("ip", "adres"),
    },
}


class ContextIndex:
    """Where context words occur in one text, per kind, computed on first use."""

    __slots__ = ("_cache", "_lower", "_patterns")

    def __init__(self, lower: str, patterns: dict[str, re.Pattern[str]]) -> None:
        self._lower = lower
        self._patterns = patterns
        self._cache: dict[str, list[int]] = {}

    def near(self, kind: str, start: int, end: int, before: int = 48, after: int = 24) -> bool:
        positions = self._cache.get(kind)
        if positions is None:
            pattern = self._patterns.get(kind)
            positions = [] if pattern is None else [m.end() for m in
                                                    pattern.finditer(self._lower)]
            self._cache[kind] = positions
        if not positions:
            return False
        i = bisect.bisect_left(positions, start - before)
        return i < len(positions) and positions[i] <= end + after


def compile_patterns(languages: Iterable[str]) -> dict[str, re.Pattern[str]]:
    langs = tuple(languages)
    out: dict[str, re.Pattern[str]] = {}
    for kind, by_lang in WORDS.items():
        words = sorted({w for lang in langs for w in by_lang.get(lang, ())}, key=len,
                       reverse=True)
        if words:
            alternation = "|".join(re.escape(w) for w in words)
            out[kind] = re.compile(rf"(?<![^\W\d_])(?:{alternation})")
    return out
