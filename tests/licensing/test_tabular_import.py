"""CSV/JSON rights files: the documented formats, a clear error per bad record, idempotent re-import."""

from __future__ import annotations

import json
from pathlib import Path

from licensing.importers.tabular import CSV_HEADERS, import_rights_file
from tests.licensing.helpers import EVIDENCE

DEMO = {"schema_version": 1,
        "parties": [{"party_id": "P-maxstack", "name": "Maxstack", "isni": None, "ipi": None}],
        "deals": [{"deal_id": "D-maxstack-1", "licensor": "P-maxstack", "license": "CC-BY-SA-3.0",
                   "isrcs": ["QZXXX2600001"],
                   "use_types": ["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining"],
                   "territories": {"include": ["Worldwide"], "exclude": []},
                   "valid_from": "2012-12-15", "valid_to": None, "conditions": ["attribution_required"],
                   "rights_controllers": [{"party_id": "P-maxstack", "isrc": "QZXXX2600001", "share": 100.0}]}],
        "consents": [{"consent_id": "C-maxstack-1", "party_id": "P-maxstack", "scope": "all", "scope_ref": None,
                      "ai_training": "allowed", "ai_generative_training": "allowed", "data_mining": "allowed",
                      "ai_inference": "notAllowed", "evidence_ref": "demo://consent/maxstack",
                      "evidence_sha256": EVIDENCE, "granted_at": "2026-01-15T00:00:00Z", "revoked_at": None}]}


def test_demo_shape_imports_and_reimport_changes_nothing(con, tmp_path: Path) -> None:
    path = tmp_path / "rights.json"
    path.write_text(json.dumps(DEMO))
    report = import_rights_file(con, path, actor="demo")
    assert (report.parties, report.deals, report.consents, report.errors) == (1, 1, 1, ())
    snapshot = [con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                for t in ("parties", "deals", "deal_recordings", "rights_controllers", "consents")]
    again = import_rights_file(con, path, actor="demo")
    assert again.already_imported
    assert [con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in ("parties", "deals", "deal_recordings", "rights_controllers", "consents")] == snapshot
    assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'rights.import'").fetchone()[0] == 1


def test_bad_records_are_quarantined_with_file_record_and_reason(con, tmp_path: Path) -> None:
    data = json.loads(json.dumps(DEMO))
    data["deals"].append({**data["deals"][0], "deal_id": "D-bad-isrc", "isrcs": ["NOT-AN-ISRC"], "rights_controllers": []})
    data["deals"].append({**data["deals"][0], "deal_id": "D-bad-terr",
                          "territories": {"include": ["Atlantis"], "exclude": []}})
    data["deals"].append({**data["deals"][0], "deal_id": "D-orphan", "licensor": "P-nobody", "rights_controllers": []})
    data["deals"].append({**data["deals"][0], "deal_id": "D-overfull", "rights_controllers": [
        {"party_id": "P-maxstack", "isrc": "QZXXX2600001", "share": 80.0},
        {"party_id": "P-maxstack", "isrc": "QZXXX2600001", "share": 40.0}]})
    data["consents"].append({**data["consents"][0], "consent_id": "C-no-zone", "granted_at": "2026-01-15T00:00:00"})
    data["consents"].append({**data["consents"][0], "consent_id": "C-maybe", "data_mining": "maybe"})
    path = tmp_path / "rights.json"
    path.write_text(json.dumps(data))
    report = import_rights_file(con, path, actor="ops")
    assert (report.deals, report.consents) == (1, 1)
    got = {e.source_ref.split("#")[1]: e.reason_code for e in report.errors}
    assert got == {"/deals/1 (D-bad-isrc)": "invalid_isrc", "/deals/2 (D-bad-terr)": "invalid_territory",
                   "/deals/3 (D-orphan)": "unknown_party", "/deals/4 (D-overfull)": "invalid_share",
                   "/consents/1 (C-no-zone)": "invalid_timestamp", "/consents/2 (C-maybe)": "invalid_consent_value"}
    assert "exceed 100%" in next(e.message for e in report.errors if "D-overfull" in e.source_ref)
    assert "time zone" in next(e.message for e in report.errors if "C-no-zone" in e.source_ref)
    quarantined = con.execute("SELECT source_ref, reason_code FROM quarantine WHERE stage = 'rights_import'").fetchall()
    assert sorted(quarantined) == sorted((e.source_ref, e.reason_code) for e in report.errors)
    assert all(str(path) in ref for ref, _ in quarantined)


def test_unreadable_file_is_rejected_whole(con, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schema_version": 1, "deals": [')
    report = import_rights_file(con, path, actor="ops")
    assert report.rejected and report.errors[0].reason_code == "unreadable_json"
    path.write_text(json.dumps({"schema_version": 2}))
    assert import_rights_file(con, path, actor="ops").errors[0].reason_code == "unsupported_schema_version"


def test_csv_parties_licenses_and_consents(con, tmp_path: Path) -> None:
    (tmp_path / "parties.csv").write_text(
        ",".join(CSV_HEADERS["parties"]) + "\nP-label,Label Ltd,,\nP-artist,Ada,0000000121032683,\n")
    lic = ",".join(CSV_HEADERS["licenses"]) + "\n" + "\n".join([
        "D-1,P-label,contract-7,QZXXX2600001,UseForTrainingGenerativeAI;UseForDataMining,Worldwide,US,2025-01-01,,"
        "attribution_required,P-label,70",
        "D-1,P-label,contract-7,QZXXX2600001,UseForTrainingGenerativeAI;UseForDataMining,Worldwide,US,2025-01-01,,"
        "attribution_required,P-artist,30",
        "D-1,P-label,contract-7,QZXXX2600002,UseForTrainingGenerativeAI;UseForDataMining,Worldwide,US,2025-01-01,,"
        "attribution_required,P-label,100",
        "D-2,P-label,contract-8,QZXXX2600003,UseForDataMining,DE,,2025-01-01,,,P-label,lots",
        "D-3,P-label,contract-9,QZXXX2600004,UseForDataMining,DE,,2025-01-01,,,,",
        "D-3,P-label,contract-9b,QZXXX2600005,UseForDataMining,DE,,2025-01-01,,,,",
    ]) + "\n"
    (tmp_path / "licenses.csv").write_text(lic)
    (tmp_path / "consents.csv").write_text(
        ",".join(CSV_HEADERS["consents"]) + "\n"
        f"C-1,P-artist,recording,QZXXX2600001,allowed,allowed,allowed,notAllowed,s3://consents/1.pdf,{EVIDENCE},"
        "2026-01-01T10:00:00+01:00,\n"
        f"C-2,P-artist,work,T-034.524.680-2,allowed,allowed,allowed,notAllowed,s3://consents/2.pdf,{EVIDENCE},"
        "2026-01-01T10:00:00Z,\n")
    r = import_rights_file(con, tmp_path / "parties.csv", actor="ops")
    assert (r.parties, r.errors) == (2, ())
    r = import_rights_file(con, tmp_path / "licenses.csv", actor="ops")
    assert r.deals == 1
    assert {(e.source_ref.rsplit("/", 1)[1], e.reason_code) for e in r.errors} == {
        ("licenses.csv:5 (D-2)", "invalid_share"), ("licenses.csv:6, 7 (D-3)", "inconsistent_deal_rows")}
    assert con.execute("SELECT isrc, sum(share) FROM rights_controllers GROUP BY isrc ORDER BY isrc").fetchall() == [
        ("QZXXX2600001", 100.0), ("QZXXX2600002", 100.0)]
    assert con.execute("SELECT territories_excluded FROM deals").fetchone()[0] == ["US"]
    r = import_rights_file(con, tmp_path / "consents.csv", actor="ops")
    assert r.consents == 1
    assert r.errors[0].reason_code == "invalid_iswc" and "consents.csv:3" in r.errors[0].source_ref


def test_unknown_csv_header_names_the_accepted_ones(con, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("isrc,license\nQZXXX2600001,CC-BY\n")
    report = import_rights_file(con, path, actor="ops")
    assert report.rejected and report.errors[0].reason_code == "unknown_csv_header"
    assert "licenses=deal_id,licensor" in report.errors[0].message


def test_revocation_delivered_as_updated_file_replaces_the_consent(con, tmp_path: Path) -> None:
    path = tmp_path / "rights.json"
    path.write_text(json.dumps(DEMO))
    import_rights_file(con, path, actor="ops")
    data = json.loads(json.dumps(DEMO))
    data["consents"][0]["revoked_at"] = "2026-02-01T09:00:00Z"
    path.write_text(json.dumps(data))
    assert not import_rights_file(con, path, actor="ops").already_imported
    assert con.execute("SELECT count(*), max(revoked_at) IS NOT NULL FROM consents").fetchone() == (1, True)
