"""Musical works: writers and publishers (with publishing shares) from ERN 4.3 and from rights files; their
consent is required for generative training, and publishing shares must add up like master shares.
Both evaluators (reference and set-based SQL) give the same decisions."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from licensing.evaluate import evaluate_catalog
from licensing.explain import explain
from licensing.importers.ddex import DdexRejected, read_ddex
from licensing.policy import load_policy
from store.database import connect
from store.home import Home
from tests.licensing.conftest import DDEX
from tests.licensing.ddex_samples import ISNI_A, ISNI_B, single
from tests.licensing.helpers import add_track, consent, deal
from tests.roles import write_test_roles

runner = CliRunner()
ISRC, ISWC = "GBAYC1700598", "T0345246801"
GEN = ("--purpose", "UseForTrainingGenerativeAI", "--territory", "DE", "--on", "2026-03-01")


def _run(home: Path, *args: str):  # type: ignore[no-untyped-def]
    who = [] if args[1] in ("explain", "history") else ["--actor", "rita"]
    return runner.invoke(app, [*args, "--home", str(home), *who], catch_exceptions=False)


def _rights(path: Path, parties: list[dict] = (), deals: list[dict] = (), consents: list[dict] = (),
            works: list[dict] = ()) -> Path:
    path.write_text(json.dumps({"schema_version": 1, "parties": list(parties), "deals": list(deals),
                                "consents": list(consents), "works": list(works)}), encoding="utf-8")
    return path


def _explain(home: Path) -> dict:
    r = _run(home, "rights", "explain", ISRC, *GEN, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)[0]


def _both_evaluators_agree(home: Path) -> list[str]:
    policy = load_policy()
    with connect(Home.from_env(home).db_path) as con:
        ref = explain(con, ISRC, purpose=GEN[1], territory="DE", on_date=date(2026, 3, 1), policy=policy)
        evaluate_catalog(con, policy, purpose=GEN[1], territory="DE", on_date=date(2026, 3, 1), actor="rita")
        row = con.execute("SELECT d.decision_id, d.reason_codes FROM current_decisions c JOIN decisions d "
                          "USING (decision_id) WHERE d.isrc = ? AND d.purpose = ? AND d.territory = 'DE' "
                          "AND d.on_date = DATE '2026-03-01' AND d.policy_hash = ?",
                          [ISRC, GEN[1], policy.content_hash]).fetchall()
    assert row == [(ref.decision_id, [c.value for c in ref.reason_codes])]
    return list(row[0][1])


def test_writers_and_publishers_from_ern43_need_consent_and_full_shares(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    parties = [{"party_id": "P-label", "name": "Label", "isni": None, "ipi": None},
               {"party_id": "P-artist", "name": "Artist", "isni": ISNI_A, "ipi": None},
               {"party_id": "P-writer", "name": "Wendy Writer", "isni": ISNI_B, "ipi": None},
               {"party_id": "P-pub", "name": "Pub Co", "isni": None, "ipi": "00123456789"}]
    r = _run(home, "rights", "import", str(_rights(tmp_path / "r1.json", parties, [deal("D1", [ISRC])],
                                                    [consent("C-artist", "P-artist")])))
    assert r.exit_code == 0, r.output
    msg = single(tmp_path / "m.xml", artist="Artist", artist_ids={"ISNI": ISNI_A}, iswc="T-034.524.680-1",
                 extra_parties=[("PW", "W. Writer", {"ISNI": ISNI_B}, "Composer")],
                 work_controllers=[("PP", "Pub Co Ltd", {"IpiNameNumber": "00123456789"}, 60.0)])
    read_ddex(msg.read_bytes(), source="m", validate_xsd=True, xsd_dir=DDEX / "xsd")  # still valid ERN 4.3
    r = _run(home, "rights", "import-ddex", str(msg), "--json")
    assert r.exit_code == 0, r.output
    with connect(Home.from_env(home).db_path) as con:
        add_track(con, 1, ISRC, [("P-artist", "MainArtist")])
        assert sorted(con.execute("SELECT party_id, role, share FROM work_contributors WHERE iswc = ?",
                                  [ISWC]).fetchall()) == [("P-pub", "Publisher", 60.0), ("P-writer", "Composer", None)]

    d = _explain(home)
    assert set(d["reason_codes"]) == {"consent_missing", "publishing_shares_incomplete"}
    assert sorted(d["consent_denials"]) == [
        "consent_missing: Pub Co (IPI 00123456789) has no ai_generative_training consent",
        f"consent_missing: Wendy Writer (ISNI {ISNI_B}) has no ai_generative_training consent"]
    assert set(_both_evaluators_agree(home)) == {"consent_missing", "publishing_shares_incomplete"}

    # the publisher's registration completes the shares; the writer and publisher consent
    work = {"iswc": "T-034.524.680-1", "title": "I Love You", "contributors": [
        {"party_id": "P-writer", "name": "Wendy Writer", "role": "Composer", "share": 40},
        {"party_id": "P-pub", "name": "Pub Co", "role": "Publisher", "share": 60}]}
    r = _run(home, "rights", "import", str(_rights(tmp_path / "r2.json", works=[work], consents=[
        consent("C-writer", "P-writer"), consent("C-pub", "P-pub")])), "--json")
    assert r.exit_code == 0, r.output
    assert _explain(home)["allowed"] is True
    assert _both_evaluators_agree(home) == []

    # a publisher refusing denies generative training
    r = _run(home, "rights", "import", str(_rights(tmp_path / "r3.json", consents=[
        consent("C-pub-no", "P-pub", value="notAllowed")])))
    assert r.exit_code == 0, r.output
    assert _explain(home)["reason_codes"] == ["consent_not_allowed"]


def test_publishing_shares_over_100_are_rejected_per_record(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    parties = [{"party_id": p, "name": p, "isni": None, "ipi": None} for p in ("P-a", "P-b")]
    works = [{"iswc": "T-034.524.680-1", "contributors": [
                 {"party_id": "P-a", "name": "A", "role": "Composer", "share": 70},
                 {"party_id": "P-b", "name": "B", "role": "Publisher", "share": 40}]},
             {"iswc": "T-123.456.789-4", "contributors": [
                 {"party_id": "P-a", "name": "A", "role": "Composer", "share": 50},
                 {"party_id": "P-b", "name": "B", "role": "Publisher", "share": 50}]}]
    r = _run(home, "rights", "import", str(_rights(tmp_path / "w.json", parties, works=works)), "--json")
    report = json.loads(r.output)
    assert [e["reason_code"] for e in report["errors"]] == ["publishing_shares_exceed"]
    assert "110%" in report["errors"][0]["message"] and "/works/0" in report["errors"][0]["source_ref"]
    with connect(Home.from_env(home).db_path) as con:
        assert con.execute("SELECT iswc FROM works").fetchall() == [("T1234567894",)]


def test_taking_a_writer_off_a_work_is_a_conflict(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    parties = [{"party_id": p, "name": p, "isni": None, "ipi": None} for p in ("P-a", "P-b")]
    both = {"iswc": "T-123.456.789-4", "contributors": [
        {"party_id": "P-a", "name": "A", "role": "Composer"}, {"party_id": "P-b", "name": "B", "role": "Lyricist"}]}
    one = {"iswc": "T-123.456.789-4", "contributors": [{"party_id": "P-a", "name": "A", "role": "Composer"}]}
    assert _run(home, "rights", "import", str(_rights(tmp_path / "a.json", parties, works=[both]))).exit_code == 0
    r = _run(home, "rights", "import", str(_rights(tmp_path / "b.json", works=[one])), "--json")
    assert r.exit_code == 1
    assert [e["reason_code"] for e in json.loads(r.output)["errors"]] == ["rights_conflict"]
    with connect(Home.from_env(home).db_path) as con:
        assert con.execute("SELECT count(*) FROM work_contributors").fetchone() == (2,)


def _ern38_work(path: Path, message_id: str, shares: list[tuple[str, dict[str, str], str]]) -> Path:
    """The ERN 3.8 instance with its first MusicalWork given a real ISWC and a Composer, its first SoundRecording
    a real ISRC performing that work, and the work's RightShares replaced by one per (name, PartyId attributes
    and text, percent): ``RightShare/RightsController/RightSharePercentage`` for the mechanical right."""
    from lxml import etree

    doc = etree.parse(str(DDEX / "ern38" / "instance1.xml"))
    root = doc.getroot()
    root.find("MessageHeader/MessageId").text = message_id
    work = root.find("WorkList/MusicalWork")
    work.find("MusicalWorkId/ISWC").text = "T-034.524.680-1"
    writer, *others = work.findall("MusicalWorkContributor")
    for el in [*others, *work.findall("RightShare")]:
        work.remove(el)
    writer.find("PartyName/FullName").text = "Wendy Writer"
    pid = writer.find("PartyId")
    pid.attrib.update({"IsDPID": "false", "IsISNI": "true"})
    pid.text = ISNI_B
    writer.find("MusicalWorkContributorRole").text = "Composer"
    at = list(work).index(work.find("MusicalWorkDetailsByTerritory"))
    for i, (name, (attrs, text), percent) in enumerate(shares):
        rs = etree.Element("RightShare")
        etree.SubElement(rs, "RightShareReference").text = f"S{i}"
        etree.SubElement(rs, "TerritoryCode").text = "Worldwide"
        etree.SubElement(rs, "RightsType", {"TerritoryCode": "Worldwide"}).text = "MechanicalRight"
        rc = etree.SubElement(rs, "RightsController")
        etree.SubElement(etree.SubElement(rc, "PartyName"), "FullName").text = name
        etree.SubElement(rc, "PartyId", attrs).text = text
        etree.SubElement(rc, "RightsControllerRole").text = "RightsController"
        etree.SubElement(rc, "RightSharePercentage").text = percent
        etree.SubElement(rs, "RightSharePercentage").text = percent
        work.insert(at + i, rs)
    sr = root.find("ResourceList/SoundRecording")
    sr.find("SoundRecordingId/ISRC").text = ISRC
    for el in sr.iter("IndirectSoundRecordingId", "WorkId"):
        el.getparent().remove(el)
    sr.find(".//ResourceMusicalWorkReference/ResourceMusicalWorkReference").text = work.findtext("MusicalWorkReference")
    doc.write(str(path), xml_declaration=True, encoding="UTF-8")
    return path


PUB_A = ("Pub A", ({"IsISNI": "true", "IsDPID": "false"}, ISNI_A))
PUB_B = ("Pub B", ({"IsISNI": "false", "IsDPID": "false", "Namespace": "PADPIDA2019010301P"}, "PUB-B"))


def test_ern38_right_shares_are_publishing_shares(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    first = _ern38_work(tmp_path / "38-a.xml", "M38-1", [(*PUB_A, "60")])
    # the RightShares are valid 3.8 (checked under the 3.8.3 XSD with the namespace mapped): the XSD-generated
    # instance has invalid values of its own elsewhere, but none in a RightShare
    with pytest.raises(DdexRejected) as exc:
        read_ddex(first.read_bytes(), source="38-a", validate_xsd=True, xsd_dir=DDEX / "xsd")
    assert "Journalist" in exc.value.message and not re.search(r"RightShare|RightsType|RightsController", exc.value.message)
    assert _run(home, "rights", "import-ddex", str(first)).exit_code in (0, 1)  # the instance's random ids: errors
    with connect(Home.from_env(home).db_path) as con:
        assert sorted(con.execute("SELECT party_id, role, share FROM work_contributors WHERE iswc = ?",
                                  [ISWC]).fetchall()) == [(f"isni:{ISNI_B}", "Composer", None),
                                                          (f"isni:{ISNI_A}", "Publisher", 60.0)]
        add_track(con, 1, ISRC, [])
    assert "publishing_shares_incomplete" in _explain(home)["reason_codes"]

    second = _ern38_work(tmp_path / "38-b.xml", "M38-2", [(*PUB_A, "60"), (*PUB_B, "40")])
    assert _run(home, "rights", "import-ddex", str(second)).exit_code in (0, 1)
    with connect(Home.from_env(home).db_path) as con:
        assert con.execute("SELECT sum(share) FROM work_contributors WHERE iswc = ?", [ISWC]).fetchone() == (100.0,)
    assert "publishing_shares_incomplete" not in _explain(home)["reason_codes"]


def test_ern38_right_shares_over_100_are_refused_per_record(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    over = _ern38_work(tmp_path / "38-over.xml", "M38-3", [(*PUB_A, "70"), (*PUB_B, "40")])
    r = _run(home, "rights", "import-ddex", str(over), "--json")
    [error] = [e for e in json.loads(r.output)["errors"] if e["reason_code"] == "publishing_shares_exceed"]
    assert "110%" in error["message"]
    assert error["source_ref"].startswith("38-over.xml#/NewReleaseMessage/WorkList/MusicalWork[1] (line ")
    with connect(Home.from_env(home).db_path) as con:
        assert con.execute("SELECT count(*) FROM works").fetchone() == (0,)  # the work is left out whole
        # the rest of the message is imported: the recording, naming its work as ERN 4.x recordings do
        assert con.execute("SELECT iswc FROM recordings WHERE isrc = ?", [ISRC]).fetchone() == (ISWC,)


def test_ern4_publishing_shares_add_up_per_territory_not_across_territories(tmp_path: Path) -> None:
    """A publisher holding 100% in one territory and another 100% elsewhere is a complete statement, not 200%;
    within one territory the shares still add up, and over 100% there is refused per record."""
    pub_a, pub_b = ("PP", "Pub Co Ltd", {"IpiNameNumber": "00123456789"}), ("PQ", "Other Pub", {})
    split = single(tmp_path / "split.xml", message_id="WT1", iswc="T-034.524.680-1",
                   work_controllers=[(*pub_a, 100.0, "US"), (*pub_b, 100.0, "GB"), (*pub_b, 100.0, "IE")])
    read_ddex(split.read_bytes(), source="split", validate_xsd=True, xsd_dir=DDEX / "xsd")  # valid ERN 4.3
    home = tmp_path / "home"
    write_test_roles(home)
    r = _run(home, "rights", "import-ddex", str(split), "--json")
    assert r.exit_code == 0, r.output
    with connect(Home.from_env(home).db_path) as con:
        shares = con.execute("SELECT role, share FROM work_contributors WHERE iswc = 'T0345246801' "
                             "ORDER BY party_id").fetchall()
    assert sorted(shares, key=str) == sorted([("Publisher", 100.0), ("Publisher", None)], key=str)

    over = single(tmp_path / "over.xml", message_id="WT2", created="2017-04-26T15:00:29+00:00",
                  iswc="T-123.456.789-4", work_controllers=[(*pub_a, 70.0, "US"), (*pub_b, 40.0, "US"),
                                                            (*pub_b, 100.0, "GB")])
    r = _run(home, "rights", "import-ddex", str(over), "--json")
    [error] = [e for e in json.loads(r.output)["errors"] if e["reason_code"] == "publishing_shares_exceed"]
    assert "110%" in error["message"] and "in US" in error["message"]
    with connect(Home.from_env(home).db_path) as con:
        assert con.execute("SELECT count(*) FROM works WHERE iswc = 'T1234567894'").fetchone() == (0,)
