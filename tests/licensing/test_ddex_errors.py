"""Every rejected record names where it is (XPath and line) and why; a message rejected part-way through
leaves nothing behind; the reader streams the message (entries are freed once read)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from licensing.importers.ddex import _stream, import_ddex, read_ddex
from tests.licensing.conftest import DDEX

DJMIX = DDEX / "ern43" / "8 DjMix.xml"


def _counts(con) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("parties", "recordings", "deals", "rights_events", "ddex_messages")}


def test_record_errors_carry_an_xpath_and_line_that_point_at_the_record(con) -> None:
    report = import_ddex(con, DJMIX, actor="ops")
    assert not report.rejected and report.recordings == 1
    missing = [e for e in report.errors if e.reason_code == "missing_isrc"]
    assert len(missing) == 8
    doc = etree.parse(str(DJMIX))
    for error in missing:
        where = error.source_ref.split("#", 1)[1]
        xpath, line = where.split(" (line ")[0], int(where.split(" (line ")[1].split(")")[0])
        [el] = doc.xpath(xpath.replace("/NewReleaseMessage/", "/*/"))
        assert el.sourceline == line
        assert not el.xpath(".//ISRC")  # the record really has no ISRC
        assert f"resource {el.findtext('ResourceReference')}" in where
    stored = con.execute("SELECT delivery_id, reason_code FROM quarantine WHERE reason_code = 'missing_isrc'").fetchall()
    assert len(stored) == 8


def test_a_message_invalid_at_its_end_imports_nothing(con, tmp_path: Path) -> None:
    doc = etree.parse(str(DDEX / "ern43" / "1 Audio.xml"))
    last_deal = doc.getroot().findall("DealList/ReleaseDeal/Deal")[-1]
    etree.SubElement(last_deal, "Bogus")
    path = tmp_path / "late-error.xml"
    doc.write(str(path), xml_declaration=True, encoding="UTF-8")
    before = _counts(con)
    report = import_ddex(con, path, actor="ops", validate_xsd=True, xsd_dir=DDEX / "xsd")
    assert report.rejected and report.errors[0].reason_code == "xsd_invalid"
    assert "Bogus" in report.errors[0].message and "ReleaseDeal" in report.errors[0].message
    assert _counts(con) == before
    # the same file without validation: the bogus element is not one the reader needs
    assert not import_ddex(con, path, actor="ops").rejected


def test_entries_are_freed_once_read() -> None:
    """The streamed entries are emptied once read and dropped from their list when the next one is read:
    whatever the size of the message, at most one emptied entry stays before the one being read."""
    seen = []
    for name, el, _where in _stream(DDEX / "ern43" / "1 Audio.xml", None):
        before = list(el.itersiblings(preceding=True))
        seen.append((name, len(before) <= 1 and all(len(b) == 0 and not b.text for b in before)))
    assert [n for n, _ in seen].count("SoundRecording") == 21
    assert all(ok for _, ok in seen)
    assert read_ddex(DDEX / "ern43" / "1 Audio.xml", source="x").recordings
