"""Validated industry identifiers: ISRC, ISWC, ISNI, IPI and ISO territory codes."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_ISRC = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{2}[0-9]{5}$")
_ISWC = re.compile(r"^T[0-9]{10}$")
_ISNI = re.compile(r"^[0-9]{15}[0-9X]$")
_IPI = re.compile(r"^[0-9]{9,11}$")
_TERRITORY = re.compile(r"^([A-Z]{2}|Worldwide)$")


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


def normalize_territory(value: str) -> str:
    """ISO 3166-1 alpha-2 upper-case, or DDEX's ``Worldwide``."""
    cleaned = value.strip()
    if cleaned.lower() == "worldwide":
        return "Worldwide"
    cleaned = cleaned.upper()
    if not _TERRITORY.match(cleaned):
        raise ValueError(f"not an ISO 3166-1 alpha-2 territory code: {value!r}")
    return cleaned


ISRC = Annotated[str, AfterValidator(normalize_isrc)]
ISWC = Annotated[str, AfterValidator(normalize_iswc)]
ISNI = Annotated[str, AfterValidator(normalize_isni)]
IPI = Annotated[str, AfterValidator(normalize_ipi)]
Territory = Annotated[str, AfterValidator(normalize_territory)]
