"""Check digits of structured identifiers.

Each function takes the identifier's characters with separators already removed (upper
case for the alphanumeric ones) and says whether it is well formed. A pattern alone
flags order numbers, hashes and timestamps; a check digit rules out nine in ten (Luhn,
the 11-proef) to ninety-six in a hundred (IBAN) of those.
"""

from __future__ import annotations

# IBAN length per country (SWIFT IBAN registry): a valid mod-97 with the wrong length is
# not an IBAN
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """The issuer prefix (IIN) is one that issues cards of this length."""
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if p2 in (34, 37):
        return n == 15  # American Express
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if 2200 <= p4 <= 2204:
        return 16 <= n <= 19  # Mir
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19  # Discover
    if digits.startswith("62"):
        return 16 <= n <= 19  # UnionPay
    if p2 == 35:
        return 16 <= n <= 19  # JCB (3528-3589; generators use all of 35xx)
    if digits.startswith(("2131", "1800")):
        return n == 15  # JCB (old)
    if 300 <= int(digits[:3]) <= 305 or p2 in (36, 38, 39) or digits.startswith("3095"):
        return 14 <= n <= 19  # Diners Club
    if p2 == 50 or 56 <= p2 <= 69 or digits.startswith("0604"):
        return 12 <= n <= 19  # Maestro
    return False


def credit_card(digits: str) -> bool:
    if not 12 <= len(digits) <= 19 or len(set(digits)) < 2:
        return False
    return card_brand_ok(digits) and luhn(digits)


def iban(code: str) -> bool:
    if IBAN_LENGTHS.get(code[:2]) != len(code) or not code[2:4].isdigit():
        return False
    moved = code[4:] + code[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in moved))
    except ValueError:
        return False
    return number % 97 == 1


def us_ssn(digits: str) -> bool:
    """Area 000, 666 and 900-999, group 00 and serial 0000 are never issued; neither are
    the numbers the SSA voided after they appeared in advertising."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in ("078051120", "219099999", "123456789") and len(set(digits)) > 1


def de_tax_id(digits: str) -> bool:
    """Steuerliche Identifikationsnummer: 11 digits, no leading zero, one digit of the
    first ten repeated (twice or three times), ISO 7064 MOD 11,10 check digit."""
    if len(digits) != 11 or not digits.isdigit() or digits[0] == "0":
        return False
    counts = [digits[:10].count(d) for d in set(digits[:10])]
    if sorted(counts)[-1] not in (2, 3) or sum(1 for c in counts if c > 1) != 1:
        return False
    product = 10
    for ch in digits[:10]:
        total = (int(ch) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(digits[10])


def fr_nir(code: str) -> bool:
    """Numéro d'inscription au répertoire (sécurité sociale): 13 characters + a 2-digit key,
    97 minus the number mod 97; Corsica's départements 2A/2B count as 19/18."""
    if len(code) != 15 or code[0] not in "12378":
        return False
    body, key = code[:13], code[13:]
    if not key.isdigit():
        return False
    dept = body[5:7]
    if dept == "2A":
        body = body[:5] + "19" + body[7:]
    elif dept == "2B":
        body = body[:5] + "18" + body[7:]
    if not body.isdigit():
        return False
    month = int(body[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    return 97 - int(body) % 97 == int(key)


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_dni(code: str) -> bool:
    """DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): the letter is the number
    mod 23."""
    if len(code) != 9:
        return False
    head = code[:8]
    if head[0] in "XYZ":
        head = str("XYZ".index(head[0])) + head[1:]
    if not head.isdigit():
        return False
    return _DNI_LETTERS[int(head) % 23] == code[8]


_CF_ODD = {
    **dict(zip("0123456789", (1, 0, 5, 7, 9, 13, 15, 17, 19, 21), strict=True)),
    **dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
               (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10,
                22, 25, 24, 23), strict=True)),
}


def it_fiscal_code(code: str) -> bool:
    """Codice fiscale: 16 characters, the last a check letter over odd/even position
    tables."""
    if len(code) != 16 or not code.isalnum():
        return False
    total = 0
    for i, ch in enumerate(code[:15]):
        if i % 2 == 0:  # odd position, 1-based
            total += _CF_ODD[ch]
        else:
            total += int(ch) if ch.isdigit() else ord(ch) - 65
    return chr(65 + total % 26) == code[15]


def nl_bsn(digits: str) -> bool:
    """Burgerservicenummer: 9 digits passing the 11-proef (weights 9..2, and -1)."""
    if len(digits) != 9 or not digits.isdigit() or len(set(digits)) < 3:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    total -= int(digits[8])
    return total % 11 == 0 and total != 0


_NINO_BAD_PREFIX = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def uk_nino(code: str) -> bool:
    """National Insurance number: two letters (not D, F, I, Q, U, V; second not O; not the
    administrative prefixes), six digits, suffix A-D."""
    if len(code) != 9:
        return False
    a, b = code[0], code[1]
    if a in "DFIQUV" or b in "DFIQUVO" or code[:2] in _NINO_BAD_PREFIX:
        return False
    return code[2:8].isdigit() and code[8] in "ABCD"
