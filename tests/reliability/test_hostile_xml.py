"""Hostile DDEX XML in a delivery's ddex/ folder: each file is refused by name and reason, the good one imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.delivery import rights_files
from licensing.importers.ddex import MAX_BYTES, MAX_DEPTH, import_ddex
from store.audit import verify_chain

DDEX = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "ddex"
if not DDEX.exists():
    DDEX = Path("/work/shared/testdata/ddex")
AUDIO = DDEX / "ern43" / "1 Audio.xml"
SECRET = "linernotes-secret-canary"

LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10))
          + b']>\n<NewReleaseMessage xmlns="http://ddex.net/xml/ern/43">&lol9;</NewReleaseMessage>')


def _xxe(secret_file: Path) -> bytes:
    return (b'<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY xxe SYSTEM "file://' + str(secret_file).encode()
            + b'">]>\n<NewReleaseMessage xmlns="http://ddex.net/xml/ern/43"><MessageHeader><MessageId>&xxe;'
            b"</MessageId></MessageHeader></NewReleaseMessage>")


def _parameter_entity(secret_file: Path) -> bytes:
    return (b'<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY % p SYSTEM "file://' + str(secret_file).encode()
            + b'"> %p;]>\n<NewReleaseMessage xmlns="http://ddex.net/xml/ern/43"/>')


EXTERNAL_DTD = (b'<?xml version="1.0"?>\n<!DOCTYPE NewReleaseMessage SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
                b'<NewReleaseMessage xmlns="http://ddex.net/xml/ern/43"/>')
DEEP = (b'<NewReleaseMessage xmlns="http://ddex.net/xml/ern/43">' + b"<a>" * (MAX_DEPTH + 10)
        + b"</a>" * (MAX_DEPTH + 10) + b"</NewReleaseMessage>")
VERY_DEEP = b"<a>" * 200_000 + b"</a>" * 200_000
MALFORMED = b'<NewReleaseMessage xmlns="http://ddex.net/xml/ern/43"><MessageHeader></NewReleaseMessage>'
WRONG_ROOT = b'<CatalogListMessage xmlns="http://ddex.net/xml/ern/43"/>'
EMPTY_PURGE = b'<PurgeReleaseMessage xmlns="http://ddex.net/xml/ern/43"/>'

CASES = {
    "billion_laughs": (lambda tmp: LAUGHS, {"xml_dtd_forbidden", "xml_entities_forbidden"}),
    "external_entity": (lambda tmp: _xxe(tmp / "secret.txt"), {"xml_dtd_forbidden", "xml_entities_forbidden"}),
    "parameter_entity": (lambda tmp: _parameter_entity(tmp / "secret.txt"),
                         {"xml_dtd_forbidden", "xml_entities_forbidden"}),
    "external_dtd": (lambda tmp: EXTERNAL_DTD, {"xml_dtd_forbidden", "xml_external_forbidden"}),
    "deep_nesting": (lambda tmp: DEEP, {"xml_too_deep"}),
    "very_deep_nesting": (lambda tmp: VERY_DEEP, {"xml_too_deep"}),
    "malformed": (lambda tmp: MALFORMED, {"xml_malformed"}),
    "empty": (lambda tmp: b"", {"xml_malformed"}),
    "wrong_message": (lambda tmp: WRONG_ROOT, {"ddex_unsupported_message"}),
    "empty_purge": (lambda tmp: EMPTY_PURGE, {"ddex_no_header"}),
}


def _delivery(tmp_path: Path, name: str, payload: bytes) -> Path:
    ddex = tmp_path / "delivery" / "ddex"
    ddex.mkdir(parents=True)
    (ddex / "a-good.xml").write_bytes(AUDIO.read_bytes())
    (ddex / f"b-{name}.xml").write_bytes(payload)
    return ddex.parent


def _import_all(con, delivery: Path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the delivery_rights asset does: every file in turn, none stopping the others."""
    return {p.name: import_ddex(con, p, actor="pipeline") for p in rights_files(delivery)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_xml_is_refused_by_name_and_reason_and_the_good_message_imports(case: str, tmp_path: Path,
                                                                                con) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "secret.txt").write_text(SECRET, encoding="utf-8")
    make, reasons = CASES[case]
    delivery = _delivery(tmp_path, case, make(tmp_path))

    reports = _import_all(con, delivery)

    bad = reports[f"b-{case}.xml"]
    assert bad.rejected and bad.errors[0].reason_code in reasons  # type: ignore[attr-defined]
    assert reports["a-good.xml"].recordings == 21 and not reports["a-good.xml"].rejected  # type: ignore[attr-defined]
    rows = con.execute("SELECT source_ref, reason_code FROM quarantine").fetchall()
    assert rows == [(str(delivery / "ddex" / f"b-{case}.xml"), bad.errors[0].reason_code)]  # type: ignore[attr-defined]
    dump = " ".join(str(v) for t in ("quarantine", "audit_log", "parties", "deals")
                    for row in con.execute(f"SELECT * FROM {t}").fetchall() for v in row)
    assert SECRET not in dump and "lollollol" not in dump
    assert verify_chain(con).ok


def test_oversized_message_is_refused_from_its_size_without_reading_it(tmp_path: Path, con) -> None:  # type: ignore[no-untyped-def]
    delivery = _delivery(tmp_path, "huge", b"")
    with open(delivery / "ddex" / "b-huge.xml", "r+b") as handle:  # sparse, nothing written
        handle.truncate(MAX_BYTES + 1)
    reports = _import_all(con, delivery)
    assert reports["b-huge.xml"].errors[0].reason_code == "xml_too_large"  # type: ignore[attr-defined]
    assert str(MAX_BYTES) in reports["b-huge.xml"].errors[0].message  # type: ignore[attr-defined]
    assert reports["a-good.xml"].recordings == 21  # type: ignore[attr-defined]


@pytest.mark.parametrize("old,new,reason", [
    ("<ISRC>JPTO09404900</ISRC>", "<ISRC>JP-TO0-94-049X</ISRC>", "invalid_isrc"),
    ("<ISRC>JPTO09404910</ISRC>", "<ISRC></ISRC>", "missing_isrc"),
    ("<TerritoryCode>JP</TerritoryCode>", "<TerritoryCode>Narnia</TerritoryCode>", "invalid_territory"),
])
def test_one_bad_item_in_a_good_message_is_left_out_with_its_reason(old: str, new: str, reason: str, tmp_path: Path,
                                                                    con) -> None:  # type: ignore[no-untyped-def]
    text = AUDIO.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "mutated.xml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    report = import_ddex(con, path, actor="pipeline")
    assert not report.rejected
    assert [e.reason_code for e in report.errors] == [reason]
    assert report.errors[0].source_ref.startswith("mutated.xml#")
    assert con.execute("SELECT reason_code FROM quarantine").fetchall() == [(reason,)]
    expected = 20 if "ISRC" in old else 21
    assert con.execute("SELECT count(*) FROM recordings").fetchone()[0] == expected
