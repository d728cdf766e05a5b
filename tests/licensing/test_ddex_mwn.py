"""DDEX MWN (Musical Works Notification) claim notifications through ``rights import-ddex``: works with their
writers and publishers' shares land on the same works contracts as ERN's, parties match recorded people by
ISNI / IPI, the recordings named get their work, and generative training then needs the writers' and
publishers' consent and full publishing shares. Per-record errors, ``--strict`` and re-delivery as for ERN."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from licensing.importers.ddex import DdexRejected, read_ddex
from store.database import connect
from store.home import Home
from tests.licensing.helpers import add_track, consent, deal
from tests.roles import write_test_roles

runner = CliRunner()
MWN = Path(__file__).resolve().parents[1] / "data" / "ddex" / "mwn13" / "works.xml"
MWN11 = MWN.parents[1] / "mwn11" / "works.xml"
REC1, REC2 = "SEXYZ2600001", "SEXYZ2600002"
W1, W2 = "T0345246801", "T1234567894"
FJORD, NORTH, ASTRID = "dpid:PADPIDA2019010301P", "ipi:00073495410", "ipi:00052210040"
GEN = ("--purpose", "UseForTrainingGenerativeAI", "--territory", "DE", "--on", "2026-03-01")


def _run(home: Path, *args: str):  # type: ignore[no-untyped-def]
    who = [] if args[1] == "explain" else ["--actor", "rita"]
    return runner.invoke(app, [*args, "--home", str(home), *who], catch_exceptions=False)


def _rights(path: Path, **lists: list[dict]) -> Path:
    body = {"schema_version": 1, "parties": [], "deals": [], "consents": [], "works": []} | lists
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def _explain(home: Path, isrc: str) -> dict:
    r = _run(home, "rights", "explain", isrc, *GEN, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)[0]


def _label_and_mattias(home: Path, tmp_path: Path) -> None:
    """A label's deal over both recordings, their artist's consent, and Mattias Lind already recorded (by his
    ISNI) from a rights file."""
    parties = [{"party_id": "P-label", "name": "Label", "isni": None, "ipi": None},
               {"party_id": "P-artist", "name": "Artist", "isni": None, "ipi": None},
               {"party_id": "P-mattias", "name": "M. Lind", "isni": "000000012146438X", "ipi": None}]
    r = _run(home, "rights", "import", str(_rights(tmp_path / "label.json", parties=parties,
                                                    deals=[deal("D1", [REC1, REC2])],
                                                    consents=[consent("C-artist", "P-artist")])))
    assert r.exit_code == 0, r.output
    with connect(Home.from_env(home).db_path) as con:
        add_track(con, 1, REC1, [("P-artist", "MainArtist")])
        add_track(con, 2, REC2, [("P-artist", "MainArtist")])


def test_mwn_works_need_writer_and_publisher_consent_and_full_shares(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    _label_and_mattias(home, tmp_path)
    assert _explain(home, REC1)["allowed"] is True  # before: the label's deal and the artist's consent

    r = _run(home, "rights", "import-ddex", str(MWN), "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["errors"] == [] and report["recordings"] == 2
    with connect(Home.from_env(home).db_path) as con:
        people = sorted(con.execute("SELECT iswc, party_id, role, share FROM work_contributors").fetchall())
        assert people == [(W1, "P-mattias", "Composer", None), (W1, FJORD, "Publisher", 60.0),
                          (W1, ASTRID, "Lyricist", None), (W1, NORTH, "Publisher", 40.0),
                          (W2, "P-mattias", "Composer", None), (W2, "P-mattias", "Lyricist", None),
                          (W2, FJORD, "Publisher", 50.0)]
        assert sorted(con.execute("SELECT isrc, iswc FROM recordings").fetchall()) == [(REC1, W1), (REC2, W2)]
        # one party per person: Mattias is matched by his ISNI (and gains the IPI the message gives), not recorded twice
        assert con.execute("SELECT count(*) FROM parties WHERE isni = '000000012146438X'").fetchone() == (1,)
        assert con.execute("SELECT kind FROM ddex_messages").fetchall() == [("works",)]

    d1 = _explain(home, REC1)
    assert d1["reason_codes"] == ["consent_missing"]
    assert sorted(d1["consent_denials"]) == [
        "consent_missing: Astrid Holm (IPI 00052210040) has no ai_generative_training consent",
        "consent_missing: Fjord Songs Publishing (DPID PADPIDA2019010301P) has no ai_generative_training consent",
        "consent_missing: M. Lind (ISNI 000000012146438X, IPI 00014107338) has no ai_generative_training consent",
        "consent_missing: Northern Lights Music (IPI 00073495410) has no ai_generative_training consent"]

    r = _run(home, "rights", "import", str(_rights(tmp_path / "consents.json", consents=[
        consent(f"C-{i}", p) for i, p in enumerate(("P-mattias", FJORD, NORTH, ASTRID))])))
    assert r.exit_code == 0, r.output
    assert _explain(home, REC1)["allowed"] is True
    # W2's publishers account for 50% of it: the rest of the work is unaccounted for
    assert _explain(home, REC2)["reason_codes"] == ["publishing_shares_incomplete"]

    # the same message again (even with other bytes) is a no-op
    again = tmp_path / "again.xml"
    again.write_text(MWN.read_text(encoding="utf-8") + "\n<!-- resent -->\n", encoding="utf-8")
    with connect(Home.from_env(home).db_path) as con:
        before = con.execute("SELECT count(*) FROM rights_events").fetchone()
    r = _run(home, "rights", "import-ddex", str(again), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["already_imported"] is True
    with connect(Home.from_env(home).db_path) as con:
        assert con.execute("SELECT count(*) FROM rights_events").fetchone() == before


def _variant(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    text = MWN.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_mwn_record_errors_name_the_entry_and_the_rest_is_imported(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    bad = _variant(tmp_path, "bad.xml", ("<RightSharePercentage>40</RightSharePercentage>",
                                         "<RightSharePercentage>50</RightSharePercentage>"),
                   ("<WriterPartyReference>PAstrid</WriterPartyReference>",
                    "<WriterPartyReference>PNobody</WriterPartyReference>"))
    r = _run(home, "rights", "import-ddex", str(bad), "--strict", "--json")
    assert r.exit_code != 0
    with connect(Home.from_env(home).db_path) as con:  # --strict: nothing of it written
        assert con.execute("SELECT count(*) FROM works").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM recordings").fetchone() == (0,)

    r = _run(home, "rights", "import-ddex", str(bad), "--json")
    errors = {e["reason_code"]: e for e in json.loads(r.output)["errors"]}
    assert set(errors) == {"publishing_shares_exceed", "unknown_party"}
    exceed = errors["publishing_shares_exceed"]
    assert "110%" in exceed["message"] and W1 in exceed["message"]
    assert exceed["source_ref"].startswith("bad.xml#/MusicalWorkClaimNotificationMessage/WorkList/MusicalWork[1] (line ")
    assert "Writer[2]" in errors["unknown_party"]["source_ref"]
    with connect(Home.from_env(home).db_path) as con:
        # the work over 100% is left out, and so is its recording's link; the other work lands whole
        assert con.execute("SELECT iswc FROM works").fetchall() == [(W2,)]
        assert con.execute("SELECT isrc, iswc FROM recordings").fetchall() == [(REC2, W2)]
        assert {r[0] for r in con.execute("SELECT reason_code FROM quarantine").fetchall()} >= {
            "publishing_shares_exceed", "unknown_party"}


def test_mwn_does_not_relink_a_recording_to_another_work(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    assert _run(home, "rights", "import-ddex", str(MWN)).exit_code == 0
    other = _variant(tmp_path, "other.xml", ("<MessageId>MWN-0001</MessageId>", "<MessageId>MWN-0002</MessageId>"),
                     ("<ResourceMusicalWorkReference>W1</ResourceMusicalWorkReference>",
                      "<ResourceMusicalWorkReference>W2</ResourceMusicalWorkReference>"))
    r = _run(home, "rights", "import-ddex", str(other), "--json")
    assert [e["reason_code"] for e in json.loads(r.output)["errors"]] == ["recording_work_conflict"]
    with connect(Home.from_env(home).db_path) as con:
        assert con.execute("SELECT iswc FROM recordings WHERE isrc = ?", [REC1]).fetchone() == (W1,)


def test_an_older_mwn_about_the_same_work_is_stale(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    newer = _variant(tmp_path, "newer.xml", ("<MessageId>MWN-0001</MessageId>", "<MessageId>MWN-0002</MessageId>"),
                     ("2026-03-01T10:00:00Z", "2026-04-01T10:00:00Z"))
    assert _run(home, "rights", "import-ddex", str(newer)).exit_code == 0
    r = _run(home, "rights", "import-ddex", str(MWN), "--json")
    assert r.exit_code == 1
    [error] = json.loads(r.output)["errors"]
    assert error["reason_code"] == "ddex_stale_message" and "MWN-0002" in error["message"]
    assert "already applied for work T" in error["message"]


def test_unknown_mwn_messages_are_rejected_whole(tmp_path: Path) -> None:
    recall = MWN.read_text(encoding="utf-8").replace("MusicalWorkClaimNotificationMessage",
                                                     "MusicalWorkClaimNotificationRecallMessage")
    with pytest.raises(DdexRejected) as exc:
        read_ddex(recall.encode(), source="recall")
    assert exc.value.reason_code == "ddex_unsupported_message"


def test_mwn_11_and_13_give_the_same_works() -> None:
    """MWN 1.1 lists several share types in one RightShare: each is its own statement, never added together."""
    v11 = MWN11.read_bytes().replace(b"<RightShareType>LicensingShare</RightShareType>",
                                     b"<RightShareType>LicensingShare</RightShareType>"
                                     b"<RightShareType>OriginalPublisherShare</RightShareType>", 1)
    a, b = read_ddex(v11, source="11"), read_ddex(MWN.read_bytes(), source="13")
    assert (a.version, b.version) == ("MWN 1.1", "MWN 1.3")
    assert a.errors == b.errors == []
    assert a.works == b.works and a.work_links.keys() == b.work_links.keys()


XSD_DIR = Path(os.environ.get("LINERNOTES_DDEX_XSD_DIR", "/nonexistent"))


@pytest.mark.skipif(not ((XSD_DIR / "mwnv13").is_dir() and (XSD_DIR / "mwnv11").is_dir()),
                    reason="the MWN XSDs are not redistributable; set LINERNOTES_DDEX_XSD_DIR to a folder holding "
                           "mwnv11/ and mwnv13/works-share-notification-choreography.xsd with their allowed-value "
                           "sets, and xmldsig-core-schema.xsd, to run this check")
@pytest.mark.parametrize(("path", "version"), [(MWN, "MWN 1.3"), (MWN11, "MWN 1.1")])
def test_the_mwn_messages_validate_against_the_official_xsds(path: Path, version: str) -> None:
    assert read_ddex(path.read_bytes(), source=path.name, validate_xsd=True, xsd_dir=XSD_DIR).version == version
    broken = path.read_bytes().replace(b"<IsOrganization>false</IsOrganization>", b"", 1)
    with pytest.raises(DdexRejected) as exc:
        read_ddex(broken, source="broken.xml", validate_xsd=True, xsd_dir=XSD_DIR)
    assert exc.value.reason_code == "xsd_invalid"


def test_mwn_shares_add_up_per_territory(tmp_path: Path) -> None:
    """A claim for 100% in the US beside a worldwide claim for 60% is not 160%: shares add up within one
    territory; over 100% within one territory is still refused, naming it."""
    home = tmp_path / "home"
    write_test_roles(home)
    tail = ("</TerritoryCode>\n      <RightsType>MechanicalRight</RightsType>\n      <UseType>PermanentDownload"
            "</UseType>\n      <RightsController><RightsControllerPartyReference>PNorth"
            "</RightsControllerPartyReference></RightsController>\n      <RightSharePercentage>")
    us = (f"<TerritoryCode>Worldwide{tail}40", f"<TerritoryCode>US{tail}100")  # PNorth: 100% in the US
    split = _variant(tmp_path, "split.xml", us)
    r = _run(home, "rights", "import-ddex", str(split), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["errors"] == [], r.output
    with connect(Home.from_env(home).db_path) as con:
        assert {w for (w,) in con.execute("SELECT iswc FROM works").fetchall()} == {W1, W2}

    over = _variant(tmp_path, "over.xml", ("<MessageId>MWN-0001</MessageId>", "<MessageId>MWN-0003</MessageId>"),
                    ("<TerritoryCode>Worldwide</TerritoryCode>", "<TerritoryCode>US</TerritoryCode>"), us)
    other_home = tmp_path / "home2"
    write_test_roles(other_home)
    r = _run(other_home, "rights", "import-ddex", str(over), "--json")
    exceed = [e for e in json.loads(r.output)["errors"] if e["reason_code"] == "publishing_shares_exceed"]
    assert len(exceed) == 1 and "160%" in exceed[0]["message"] and "in US" in exceed[0]["message"]
