"""Validated industry identifiers: ISRC, ISWC, ISNI, IPI and ISO territory codes."""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated

import pycountry
from pydantic import AfterValidator

_ISRC = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{2}[0-9]{5}$")
_ISWC = re.compile(r"^T[0-9]{10}$")
_ISNI = re.compile(r"^[0-9]{15}[0-9X]$")
_IPI = re.compile(r"^[0-9]{9,11}$")
# Codes people write that ISO 3166-1 does not assign (or reserves), with the code they mean.
_NOT_ISO = {
    "UK": "the United Kingdom is GB", "EL": "Greece is GR", "EU": "the European Union is not a territory: list its "
    "member states", "XK": "Kosovo has no ISO 3166-1 code", "AN": "the Netherlands Antilles were dissolved: use CW, "
    "SX or BQ", "YU": "Yugoslavia no longer exists", "CS": "Serbia and Montenegro are RS and ME",
    "ZZ": "ZZ is reserved for unknown territories", "WW": "write Worldwide",
}


def normalize_isrc(value: str) -> str:
    """Upper-case, strip hyphens and the ``ISRC`` prefix; raise ValueError when malformed."""
    cleaned = value.strip().upper().replace("-", "").replace(" ", "")
    if cleaned.startswith("ISRC"):
        cleaned = cleaned[4:]
    if not _ISRC.match(cleaned):
        raise ValueError(f"not a valid ISRC: {value!r}")
    return cleaned


def normalize_iswc(value: str) -> str:
    """ISWC ``T-034.524.680-1`` -> ``T0345246801``, checking the check digit."""
    cleaned = re.sub(r"[\s.\-]", "", value.strip().upper())
    if not _ISWC.match(cleaned):
        raise ValueError(f"not a valid ISWC: {value!r}")
    digits = [int(c) for c in cleaned[1:10]]
    total = 1 + sum(d * (i + 1) for i, d in enumerate(digits))
    check = (10 - total % 10) % 10
    if check != int(cleaned[10]):
        raise ValueError(f"ISWC check digit mismatch: {value!r}")
    return cleaned


def normalize_isni(value: str) -> str:
    """ISNI (16 chars, ISO 7064 MOD 11-2 check character)."""
    cleaned = re.sub(r"[\s\-]", "", value.strip().upper())
    if cleaned.startswith("ISNI"):
        cleaned = cleaned[4:]
    if not _ISNI.match(cleaned):
        raise ValueError(f"not a valid ISNI: {value!r}")
    total = 0
    for c in cleaned[:15]:
        total = (total + int(c)) * 2
    check = (12 - total % 11) % 11
    expected = "X" if check == 10 else str(check)
    if cleaned[15] != expected:
        raise ValueError(f"ISNI check character mismatch: {value!r}")
    return cleaned


def normalize_ipi(value: str) -> str:
    cleaned = value.strip()
    if not _IPI.match(cleaned):
        raise ValueError(f"not a valid IPI name number: {value!r}")
    return cleaned.zfill(11)


@cache
def iso_territories() -> frozenset[str]:
    """The ISO 3166-1 alpha-2 codes assigned today (from pycountry's copy of the ISO standard)."""
    return frozenset(c.alpha_2 for c in pycountry.countries)


def normalize_territory(value: str) -> str:
    """An ISO 3166-1 alpha-2 code (upper-cased) or DDEX's ``Worldwide``; ValueError naming the fix otherwise."""
    cleaned = value.strip()
    if cleaned.lower() == "worldwide":
        return "Worldwide"
    code = cleaned.upper()
    if code in iso_territories():
        return code
    hint = _NOT_ISO.get(code)
    if hint is None and len(code) == 2 and code.isalpha():
        hint = "no country has this code"
    raise ValueError(f"not an ISO 3166-1 alpha-2 territory code: {value!r}" + (f" ({hint})" if hint else ""))


ISRC = Annotated[str, AfterValidator(normalize_isrc)]
ISWC = Annotated[str, AfterValidator(normalize_iswc)]
ISNI = Annotated[str, AfterValidator(normalize_isni)]
IPI = Annotated[str, AfterValidator(normalize_ipi)]
Territory = Annotated[str, AfterValidator(normalize_territory)]
