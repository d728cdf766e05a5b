"""DDEX ERN import: the official samples, what the policy makes of them, and hostile XML."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from licensing.evaluate import evaluate_catalog
from licensing.explain import explain
from licensing.importers.ddex import MAX_DEPTH, DdexRejected, import_ddex, validate_against_xsd, xsd_for
from licensing.policy import load_policy
from tests.licensing.conftest import DDEX
from tests.licensing.helpers import add_track

ERN43 = sorted((DDEX / "ern43").glob("*.xml"))
AUDIO = DDEX / "ern43" / "1 Audio.xml"


def _counts(con) -> dict[str, int]:
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("parties", "recordings", "deals", "deal_recordings", "recording_contributors")}


@pytest.mark.parametrize("path", ERN43 + [DDEX / "ern38" / "instance1.xml"], ids=lambda p: p.name)
def test_official_samples_import(con, path: Path) -> None:
    report = import_ddex(con, path, actor="rights-ops")
    assert not report.rejected
    assert report.parties >= 1
    # every item left out is written down with a reason
    q = con.execute("SELECT count(*) FROM quarantine WHERE stage = 'rights_import'").fetchone()[0]
    assert q == len(report.errors)
    again = import_ddex(con, path, actor="rights-ops")
    assert again.already_imported


def test_audio_sample_content(con) -> None:
    report = import_ddex(con, AUDIO, actor="rights-ops", validate_xsd=True)
    assert (report.recordings, report.deals, report.errors) == (21, 3, ())
    deals = con.execute("SELECT use_types, territories_included, valid_from FROM deals ORDER BY deal_id").fetchall()
    assert deals[0] == (["ConditionalDownload", "Stream"], ["JP"], date(2004, 4, 1))
    contributors = con.execute("SELECT DISTINCT name, role FROM recording_contributors").fetchall()
    assert ("Saeko Shu", "MainArtist") in contributors


@pytest.mark.parametrize("purpose", ["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining"])
def test_streaming_deals_are_denied_for_training_and_say_so(con, purpose: str) -> None:
    import_ddex(con, AUDIO, actor="rights-ops")
    decision = explain(con, "JPTO09404900", purpose=purpose, territory="JP", on_date=date(2026, 1, 1),
                       policy=load_policy())
    assert not decision.allowed
    assert "deal_use_not_licensed" in decision.reason_codes
    assert "licenses this use type" in decision.explanation
    # the same through the catalog evaluator once audio with that ISRC is ingested
    add_track(con, 1, "JPTO09404900", [])
    summary = evaluate_catalog(con, load_policy(), purpose=purpose, territory="JP", on_date=date(2026, 1, 1),
                               actor="rights-ops")
    assert summary.allowed == 0 and summary.by_reason.get("deal_use_not_licensed") == 1
    assert summary.by_reason.get("contributors_unknown") is None  # the DDEX main artist counts as known


def test_non_ai_purposes_are_outside_the_training_policy(con) -> None:
    import_ddex(con, AUDIO, actor="rights-ops")
    decision = explain(con, "JPTO09404900", purpose="Stream", territory="JP", on_date=date(2026, 1, 1),
                       policy=load_policy())
    assert decision.reason_codes == ("purpose_unknown",)  # training policy never allows non-AI purposes


def test_generative_ai_contributor_marks_recording(con, tmp_path: Path) -> None:
    text = AUDIO.read_text(encoding="utf-8").replace(
        "<Role>Artist</Role>", "<Role>Artist</Role></Contributor><Contributor SequenceNumber=\"2\">"
        "<ContributorPartyReference>PSaekoShu</ContributorPartyReference><Role UserDefinedValue=\"GenerativeAI\">"
        "UserDefined</Role>", 1)
    path = tmp_path / "ai.xml"
    path.write_text(text, encoding="utf-8")
    report = import_ddex(con, path, actor="rights-ops", validate_xsd=True)
    assert not report.rejected, report.errors
    flagged = con.execute("SELECT isrc, ai_evidence FROM recordings WHERE ai_generated").fetchall()
    assert flagged == [("JPTO09404900", "DDEX Role = GenerativeAI")]
    add_track(con, 1, "JPTO09404900", [])
    s = evaluate_catalog(con, load_policy(), purpose="UseForDataMining", territory="JP", on_date=date(2026, 1, 1),
                         actor="ops")
    assert s.by_reason["ai_generated"] == 1


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ern:NewReleaseMessage xmlns:ern="http://ddex.net/xml/ern/43"><MessageHeader><MessageId>&lol3;</MessageId>
</MessageHeader></ern:NewReleaseMessage>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ern:NewReleaseMessage xmlns:ern="http://ddex.net/xml/ern/43"><MessageHeader><MessageId>&xxe;</MessageId>
</MessageHeader></ern:NewReleaseMessage>"""
NETWORK_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">
<ern:NewReleaseMessage xmlns:ern="http://ddex.net/xml/ern/43"/>"""
DEEP = (b'<ern:NewReleaseMessage xmlns:ern="http://ddex.net/xml/ern/43">' + b"<a>" * (MAX_DEPTH + 5)
        + b"</a>" * (MAX_DEPTH + 5) + b"</ern:NewReleaseMessage>")


@pytest.mark.parametrize("payload,code", [
    (BILLION_LAUGHS, "xml_dtd_forbidden"), (XXE, "xml_dtd_forbidden"), (NETWORK_DTD, "xml_dtd_forbidden"),
    (DEEP, "xml_too_deep"), (b"<ern:NewReleaseMessage xmlns:ern='http://ddex.net/xml/ern/43'><oops>", "xml_malformed"),
    (b"<NewReleaseMessage/>", "ddex_unsupported_message"), (b"", "xml_malformed"),
], ids=["billion-laughs", "xxe", "network-dtd", "deep", "truncated", "no-namespace", "empty"])
def test_hostile_or_malformed_xml_is_rejected_and_nothing_imported(con, tmp_path: Path, payload: bytes, code: str) -> None:
    path = tmp_path / "evil.xml"
    path.write_bytes(payload)
    before = _counts(con)
    report = import_ddex(con, path, actor="rights-ops")
    assert report.rejected and report.errors[0].reason_code == code
    assert _counts(con) == before
    assert con.execute("SELECT reason_code FROM quarantine").fetchall() == [(code,)]
    assert con.execute("SELECT action FROM audit_log").fetchall() == [("rights.import.rejected",)]


def test_oversized_message_is_rejected_before_reading(con, tmp_path: Path, monkeypatch) -> None:
    import licensing.importers.ddex as ddex

    monkeypatch.setattr(ddex, "MAX_BYTES", 1000)
    report = import_ddex(con, AUDIO, actor="ops")
    assert report.rejected and report.errors[0].reason_code == "xml_too_large"
    assert _counts(con)["deals"] == 0


def test_xsd_invalid_message_is_rejected_whole(con, tmp_path: Path) -> None:
    path = tmp_path / "invalid.xml"
    path.write_text(AUDIO.read_text(encoding="utf-8").replace("<MessageId>Test1.1</MessageId>", ""), encoding="utf-8")
    report = import_ddex(con, path, actor="ops", validate_xsd=True)
    assert report.rejected and report.errors[0].reason_code == "xsd_invalid"
    assert _counts(con) == {k: 0 for k in _counts(con)}
    # without validation the same message is readable
    assert not import_ddex(con, path, actor="ops").rejected


def test_every_official_ern43_sample_validates(con) -> None:
    for sample in sorted((DDEX / "ern43").glob("*.xml")):
        validate_against_xsd(sample.read_bytes(), "http://ddex.net/xml/ern/43", DDEX / "xsd")


def test_ern38_sample_is_checked_against_383_and_fails_on_its_own_values(con) -> None:
    """The 3.8 sample (namespace ern/38) meets the 3.8.3 XSD (ern/383) through the explicit mapping.

    It is a generated instance: it fails on values, not on the namespace. 30 <Nationality> elements
    hold 'IdentifierType', which is no ISO territory code in any ERN version, and one
    <ResourceContributorRole> holds 'Journalist', outside the 3.8.3 allowed values.
    """
    report = import_ddex(con, DDEX / "ern38" / "instance1.xml", actor="ops", validate_xsd=True)
    assert report.rejected and report.errors[0].reason_code == "xsd_invalid"
    message = report.errors[0].message
    assert "ernv383/release-notification.xsd (ERN 3.8.3), the message's namespace http://ddex.net/xml/ern/38 " \
           "(ERN 3.8) mapped to http://ddex.net/xml/ern/383" in message
    assert ("Element 'Nationality': [facet 'enumeration'] The value 'IdentifierType' is not an allowed value "
            "(line 279, 30 times)") in message
    assert "Element 'ResourceContributorRole': [facet 'enumeration'] The value 'Journalist' is not an allowed value" \
           in message
    assert "No matching global declaration" not in message  # the namespace itself is accepted
    assert _counts(con) == {k: 0 for k in _counts(con)}
    # the same sample imports without validation (the values that fail the XSD are not ones we read)
    assert not import_ddex(con, DDEX / "ern38" / "instance1.xml", actor="ops").rejected


def test_ern38_sample_validates_once_its_invalid_values_are_fixed() -> None:
    """Only the reported values stand between the sample and the 3.8.3 XSD: fix them and it passes.

    (In 3.8.3 an IndirectResourceContributor's Nationality is typed differently; the sample's
    'IdentifierType' is accepted there, so those are left alone.)
    """
    from lxml import etree

    doc = etree.parse(str(DDEX / "ern38" / "instance1.xml"))
    for el in doc.iter("Nationality"):
        if el.getparent().tag != "IndirectResourceContributor":
            el.text = "FR"
    for el in doc.iter("ResourceContributorRole"):
        if el.text == "Journalist":
            el.text = "Actor"
    try:
        validate_against_xsd(etree.tostring(doc), "http://ddex.net/xml/ern/38", DDEX / "xsd")
    except DdexRejected as exc:
        pytest.fail(str(exc))


def test_an_exact_38_xsd_wins_over_the_mapping(tmp_path: Path) -> None:
    (tmp_path / "ernv38").mkdir()
    (tmp_path / "ernv38" / "release-notification.xsd").write_text("<x/>", encoding="utf-8")
    (tmp_path / "ernv383").mkdir()
    (tmp_path / "ernv383" / "release-notification.xsd").write_text("<x/>", encoding="utf-8")
    assert xsd_for("http://ddex.net/xml/ern/38", tmp_path) == ("ernv38/release-notification.xsd",
                                                               "http://ddex.net/xml/ern/38")
    (tmp_path / "ernv38" / "release-notification.xsd").unlink()
    assert xsd_for("http://ddex.net/xml/ern/38", tmp_path) == ("ernv383/release-notification.xsd",
                                                               "http://ddex.net/xml/ern/383")
    with pytest.raises(DdexRejected, match="no XSD for namespace http://ddex.net/xml/ern/43"):
        xsd_for("http://ddex.net/xml/ern/43", tmp_path)


def test_strict_mode_rejects_message_with_invalid_items(con) -> None:
    report = import_ddex(con, DDEX / "ern38" / "instance1.xml", actor="ops", strict=True)
    assert report.rejected and report.errors[0].reason_code == "ddex_strict_item_errors"
    assert _counts(con)["parties"] == 0
