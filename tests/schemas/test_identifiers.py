"""Industry identifiers, table-driven: what is accepted (and how it is normalised) and what is refused, and why."""

from __future__ import annotations

import pycountry
import pytest

from schemas.identifiers import normalize_isni, normalize_isrc, normalize_iswc, normalize_territory

ISRC_CASES = [
    ("USRC17607839", "USRC17607839"),
    ("us-rc1-76-07839", "USRC17607839"),
    ("ISRC USRC17607839", "USRC17607839"),
    (" GBAYE0601498 ", "GBAYE0601498"),
    ("USRC1760783", "not a valid ISRC"),      # 11 characters
    ("USRC176078390", "not a valid ISRC"),    # 13 characters
    ("1SRC17607839", "not a valid ISRC"),     # country code must be letters
    ("USRC1X607839", "not a valid ISRC"),     # year must be digits
    ("", "not a valid ISRC"),
]
ISWC_CASES = [
    ("T-034.524.680-1", "T0345246801"),
    ("T0345246801", "T0345246801"),
    ("t 034 524 680 1", "T0345246801"),
    ("T-034.524.680-2", "check digit mismatch"),
    ("T-345.246.800-1", "check digit mismatch"),
    ("T03452468", "not a valid ISWC"),
    ("X0345246801", "not a valid ISWC"),
]
ISNI_CASES = [
    ("0000 0001 2103 2683", "0000000121032683"),
    ("0000 0001 2281 955X", "000000012281955X"),
    ("0000-0001-2281-955x", "000000012281955X"),
    ("ISNI 0000 0000 8045 6315", "0000000080456315"),
    ("0000 0001 2103 2684", "check character mismatch"),
    ("0000 0001 2281 9551", "check character mismatch"),
    ("0000 0001 2103 268", "not a valid ISNI"),
    ("000X 0001 2103 2683", "not a valid ISNI"),
]
TERRITORY_CASES = [
    ("GB", "GB"), ("gb", "GB"), (" de ", "DE"), ("Worldwide", "Worldwide"), ("WORLDWIDE", "Worldwide"),
    ("US", "US"), ("JP", "JP"), ("CW", "CW"),
    ("UK", "the United Kingdom is GB"),
    ("EL", "Greece is GR"),
    ("EU", "European Union is not a territory"),
    ("XX", "no country has this code"),
    ("ZZ", "reserved for unknown territories"),
    ("GBR", "not an ISO 3166-1 alpha-2 territory code"),
    ("G", "not an ISO 3166-1 alpha-2 territory code"),
    ("", "not an ISO 3166-1 alpha-2 territory code"),
    ("World", "not an ISO 3166-1 alpha-2 territory code"),
]


def _check(fn, raw: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    valid = expected == expected.upper().replace(" ", "") or expected == "Worldwide"
    if valid:
        assert fn(raw) == expected
    else:
        with pytest.raises(ValueError) as exc:
            fn(raw)
        assert expected in str(exc.value)


@pytest.mark.parametrize("raw,expected", ISRC_CASES)
def test_isrc(raw: str, expected: str) -> None:
    _check(normalize_isrc, raw, expected)


@pytest.mark.parametrize("raw,expected", ISWC_CASES)
def test_iswc(raw: str, expected: str) -> None:
    _check(normalize_iswc, raw, expected)


@pytest.mark.parametrize("raw,expected", ISNI_CASES)
def test_isni(raw: str, expected: str) -> None:
    _check(normalize_isni, raw, expected)


@pytest.mark.parametrize("raw,expected", TERRITORY_CASES)
def test_territory(raw: str, expected: str) -> None:
    _check(normalize_territory, raw, expected)


def test_every_assigned_iso_code_is_accepted_and_nothing_else_of_two_letters() -> None:
    assigned = {c.alpha_2 for c in pycountry.countries}
    assert len(assigned) >= 249
    for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            code = a + b
            if code in assigned:
                assert normalize_territory(code) == code
            else:
                with pytest.raises(ValueError):
                    normalize_territory(code)
