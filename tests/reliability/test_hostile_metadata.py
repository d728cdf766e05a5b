"""Malformed metadata and rights records: each bad record is quarantined by file/record and reason, the rest imported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from licensing.importers.tabular import import_rights_file
from store.audit import verify_chain
from tests.licensing.helpers import EVIDENCE, consent, deal, party, write_rights
from tests.reliability.conftest import ingest_and_fingerprint, quarantined, track_files

GOOD = {"good-a.flac", "good-b.ogg", "good-c.mp3"}


def _rights_quarantine(con) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return con.execute("SELECT source_ref, reason_code, message FROM quarantine WHERE stage = 'rights_import' "
                       "ORDER BY source_ref").fetchall()


# --- delivery metadata ---------------------------------------------------------------------------------

METADATA_CASES = {
    "not_an_object": ([17], "metadata.json#0", "malformed_record"),
    "no_file_field": ([{"isrc": "GBAYE2600001"}], "metadata.json#0", "malformed_record"),
    "wrong_type_title": ([{"file": "audio/good-a.flac", "title": {"nested": True}}], "metadata.json#0",
                         "invalid_metadata"),
    "wrong_type_artists": ([{"file": "audio/good-a.flac", "artists": 5}], "metadata.json#0", "invalid_metadata"),
    "wrong_type_isrc": ([{"file": "audio/good-a.flac", "isrc": 123456789012}], "metadata.json#0", "invalid_metadata"),
    "lone_surrogate": ([{"file": "audio/good-a.flac", "title": "\ud800broken"}], "metadata.json#0", "invalid_text"),
    "invalid_isrc": ([{"file": "audio/good-a.flac", "isrc": "GB-ABC-26-0000X"}], "good-a.flac", "invalid_identifier"),
    "duplicate_record": ([{"file": "audio/good-b.ogg", "title": "One"}, {"file": "audio/good-b.ogg", "title": "Two"}],
                         "metadata.json#1", "duplicate_record"),
    "duplicate_isrc": ([{"file": "audio/good-a.flac", "isrc": "GBAYE2600001"},
                        {"file": "audio/good-b.ogg", "isrc": "GBAYE2600001"}], "good-b.ogg", "duplicate_isrc"),
    "escaping_path": ([{"file": "../../etc/passwd", "isrc": "GBAYE2600009"}], "metadata.json#0", "path_escape"),
    "absent_file": ([{"file": "audio/never-delivered.flac"}], "never-delivered.flac", "missing_file"),
}


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_bad_delivery_metadata_record(case: str, delivery: Path, con) -> None:  # type: ignore[no-untyped-def]
    records, ref, reason = METADATA_CASES[case]
    (delivery / "metadata.json").write_text(json.dumps({"tracks": records}, ensure_ascii=True), encoding="utf-8")
    ingest_and_fingerprint(con, delivery)
    rows = quarantined(con)
    assert [(f, r) for _, f, r, _ in rows] == [(ref, reason)]
    assert rows[0][3].startswith(("metadata.json#", "audio/"))  # the message says which record or file
    expected = GOOD - ({"good-b.ogg"} if case == "duplicate_isrc" else set()) - (
        {"good-a.flac"} if case == "invalid_isrc" else set())
    assert {f for f, ok in track_files(con).items() if ok} == expected
    assert verify_chain(con).ok


@pytest.mark.parametrize("name,content", [
    ("metadata.json", "[" * 200_000 + "]" * 200_000),
    ("metadata.json", '{"tracks": {"file": "audio/good-a.flac"}}'),
    ("metadata.json", b"\xff\xfe not utf-8 \x80"),
    ("metadata.csv", b"file,title\naudio/good-a.flac,\xff\xfe\n"),
])
def test_unreadable_metadata_file_is_one_quarantine_row_and_audio_still_ingests(
        name: str, content: str | bytes, delivery: Path, con) -> None:  # type: ignore[no-untyped-def]
    target = delivery / name
    target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    ingest_and_fingerprint(con, delivery)
    assert [(f, r) for _, f, r, _ in quarantined(con)] == [(name, "malformed_file")]
    assert {f for f, ok in track_files(con).items() if ok} == GOOD


def test_extra_csv_cells_and_unknown_columns_do_not_stop_ingest(delivery: Path, con) -> None:  # type: ignore[no-untyped-def]
    (delivery / "metadata.csv").write_text(
        "file,title,isrc,colour\naudio/good-a.flac,Ünïcødé ☃,GBAYE2600007,blue,extra,cells\n", encoding="utf-8")
    ingest_and_fingerprint(con, delivery)
    assert quarantined(con) == []
    assert con.execute("SELECT title, isrc FROM tracks WHERE isrc = 'GBAYE2600007'").fetchall() == [
        ("Ünïcødé ☃", "GBAYE2600007")]


# --- rights files (JSON and CSV) -------------------------------------------------------------------------

ISRCS = ["GBAYE2600001", "GBAYE2600002"]


def _good_json_records() -> tuple[list[str], list[dict], list[dict]]:
    return (["P-label", "P-ann"], [deal("D-good", ISRCS, licensor="P-label")], [consent("C-good", "P-ann")])


JSON_CASES = {
    "invalid_isrc": ("deals", deal("D-bad", ["GB-XX-1"], licensor="P-label"), "invalid_isrc"),
    "invalid_isni": ("parties", {**party("P-bad"), "isni": "0000000121032684"}, "invalid_isni"),
    "invalid_iswc": ("consents", consent("C-bad", "P-ann", scope="work", scope_ref="T-123.456.789-0"), "invalid_iswc"),
    "naive_timestamp": ("consents", consent("C-bad", "P-ann", granted="2026-01-15T00:00:00"), "invalid_timestamp"),
    "shares_over_100": ("deals", deal("D-bad", ISRCS[:1], licensor="P-label",
                                      shares=[("P-label", ISRCS[0], 80.0), ("P-ann", ISRCS[0], 40.0)]),
                        "invalid_share"),
    "not_an_object": ("deals", ["D-bad"], "invalid_record"),
    "unknown_party": ("deals", deal("D-bad", ISRCS[:1], licensor="P-nobody"), "unknown_party"),
    "duplicate_id": ("consents", consent("C-good", "P-ann", value="notAllowed"), "duplicate_record"),
    "lone_surrogate": ("parties", {**party("P-bad"), "name": "\udcff"}, "invalid_text"),
}


@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_bad_json_rights_record(case: str, tmp_path: Path, con) -> None:  # type: ignore[no-untyped-def]
    parties, deals, consents = _good_json_records()
    key, bad, reason = JSON_CASES[case]
    doc = {"schema_version": 1, "parties": [party(p) for p in parties], "deals": deals, "consents": consents}
    doc[key] = [*doc[key], bad]
    path = tmp_path / "rights.json"
    path.write_text(json.dumps(doc), encoding="utf-8")

    report = import_rights_file(con, path, actor="rita")

    assert [(e.reason_code) for e in report.errors] == [reason]
    rows = _rights_quarantine(con)
    assert [(r[1]) for r in rows] == [reason]
    assert rows[0][0].startswith(str(path))
    assert f"/{key}/{len(doc[key]) - 1}" in rows[0][0]  # names the record
    assert con.execute("SELECT deal_id FROM deals").fetchall() == [("D-good",)]
    assert con.execute("SELECT consent_id, ai_training FROM consents").fetchall() == [("C-good", "allowed")]
    assert verify_chain(con).ok


LICENSE_HEADER = ("deal_id,licensor,license,isrc,use_types,territories_include,territories_exclude,valid_from,"
                  "valid_to,conditions,rights_controller,share\n")
GOOD_ROW = "D-good,P-label,c-1,GBAYE2600001,UseForDataMining,Worldwide,,2020-01-01,,,P-label,100\n"

CSV_CASES = {
    "invalid_isrc": "D-bad,P-label,c-1,NOT-AN-ISRC,UseForDataMining,Worldwide,,,,,P-label,100\n",
    "share_not_a_number": "D-bad,P-label,c-1,GBAYE2600002,UseForDataMining,Worldwide,,,,,P-label,lots\n",
    "conflicting_rows": ("D-bad,P-label,c-1,GBAYE2600002,UseForDataMining,Worldwide,,,,,P-label,100\n"
                         "D-bad,P-label,c-1,GBAYE2600003,UseForTrainingGenerativeAI,Worldwide,,,,,P-label,100\n"),
    "extra_cells": "D-bad,P-label,c-1,GBAYE2600002,UseForDataMining,Worldwide,,,,,P-label,100,surprise\n",
    "short_row": "D-bad,P-label\n",
    "bad_territory": "D-bad,P-label,c-1,GBAYE2600002,UseForDataMining,Atlantis,,,,,P-label,100\n",
    "bad_dates": "D-bad,P-label,c-1,GBAYE2600002,UseForDataMining,Worldwide,,2026-05-01,2026-01-01,,P-label,100\n",
    "empty_deal_id": ",P-label,c-1,GBAYE2600002,UseForDataMining,Worldwide,,,,,P-label,100\n",
}
CSV_REASONS = {"invalid_isrc": "invalid_isrc", "share_not_a_number": "invalid_share",
               "conflicting_rows": "inconsistent_deal_rows", "extra_cells": "invalid_record",
               "short_row": "invalid_record", "bad_territory": "invalid_territory",
               "bad_dates": "invalid_validity_period", "empty_deal_id": "invalid_record"}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_bad_csv_license_row(case: str, tmp_path: Path, con) -> None:  # type: ignore[no-untyped-def]
    write_rights(tmp_path / "parties.json", ["P-label"], [], [])
    import_rights_file(con, tmp_path / "parties.json", actor="rita")
    path = tmp_path / "licenses.csv"
    path.write_text(LICENSE_HEADER + GOOD_ROW + CSV_CASES[case], encoding="utf-8")

    report = import_rights_file(con, path, actor="rita")

    assert [e.reason_code for e in report.errors] == [CSV_REASONS[case]]
    ((ref, reason, message),) = _rights_quarantine(con)
    assert ref.startswith(f"{path}:3") and reason == CSV_REASONS[case] and message
    assert con.execute("SELECT deal_id FROM deals").fetchall() == [("D-good",)]


@pytest.mark.parametrize("content,reason", [
    ("[" * 100_000 + "]" * 100_000, "unreadable_json"),
    ('{"schema_version": 2, "deals": []}', "unsupported_schema_version"),
    (b"\xff\xfe\x00{", "not_utf8"),
])
def test_unreadable_rights_file_is_rejected_whole_with_its_name(content: str | bytes, reason: str, tmp_path: Path,
                                                                 con) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rights.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    report = import_rights_file(con, path, actor="rita")
    assert report.rejected and [e.reason_code for e in report.errors] == [reason]
    assert _rights_quarantine(con)[0][:2] == (str(path), reason)
    assert con.execute("SELECT action FROM audit_log").fetchall() == [("rights.import.rejected",)]


def test_csv_too_wide_for_the_parser_is_rejected_not_crashed(tmp_path: Path, con) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "parties.csv"
    path.write_text("party_id,name,isni,ipi\nP-a," + "x" * 300_000 + ",,\n", encoding="utf-8")
    report = import_rights_file(con, path, actor="rita")
    assert report.rejected and report.errors[0].reason_code == "unreadable_csv"
    path2 = tmp_path / "dup-header.csv"
    path2.write_text("party_id,party_id,name,isni,ipi\nP-a,P-b,A,,\n", encoding="utf-8")
    report = import_rights_file(con, path2, actor="rita")
    assert report.rejected and report.errors[0].reason_code == "unknown_csv_header"
    assert con.execute("SELECT count(*) FROM parties").fetchone()[0] == 0


def test_conflicting_deals_for_one_recording_are_each_kept_and_the_decision_names_the_one_used(
        tmp_path: Path, con) -> None:  # type: ignore[no-untyped-def]
    """Two licensors' deals for the same ISRC with different terms: both are stored with their source, and the
    decision says which deal allowed the use; the non-covering deal does not silently replace the other."""
    from datetime import date

    from licensing.evaluate import evaluate_catalog
    from licensing.policy import load_policy
    from tests.licensing.helpers import add_track

    isrc = ISRCS[0]
    write_rights(tmp_path / "a.json", ["P-label", "P-other", "P-ann"],
                 [deal("D-eu", [isrc], licensor="P-label", include=["DE"], uses=["UseForDataMining"])],
                 [consent("C-ann", "P-ann")])
    write_rights(tmp_path / "b.json", ["P-other"],
                 [deal("D-us", [isrc], licensor="P-other", include=["US"], uses=["UseForDataMining"])], [])
    for name in ("a.json", "b.json"):
        assert import_rights_file(con, tmp_path / name, actor="rita").ok
    add_track(con, 1, isrc, [("P-ann", "MainArtist")])
    policy = load_policy()
    for territory, expected_deal, allowed in (("DE", "D-eu", True), ("US", "D-us", True), ("FR", None, False)):
        evaluate_catalog(con, policy, purpose="UseForDataMining", territory=territory, on_date=date(2026, 3, 1),
                         actor="rita")
        row = con.execute("SELECT allowed, deal_id, reason_codes FROM decisions WHERE territory = ? "
                          "ORDER BY decided_at DESC LIMIT 1", [territory]).fetchone()
        assert (row[0], row[1]) == (allowed, expected_deal), row
    assert EVIDENCE  # consent evidence hash was stored with the record
    assert sorted(r[0] for r in con.execute("SELECT deal_id FROM deal_recordings WHERE isrc = ?", [isrc]).fetchall()) \
        == ["D-eu", "D-us"]
