import json
from pathlib import Path

import pytest

from catalog.ingest import ingest_delivery, local_isrc, track_id_for
from store.audit import verify_chain
from store.database import connect
from tests.audio_fixtures import music_like, write_audio


@pytest.fixture()
def delivery(tmp_path: Path) -> Path:
    root = tmp_path / "delivery"
    audio = root / "audio"
    write_audio(audio / "one.flac", music_like(3, seed=1), tags={"TITLE": "Ünïcødé Sông", "ARTIST": "Zoë; Ånders",
                                                                 "ISRC": "GB-ABC-26-00001", "LICENSE": "CC-BY-4.0"})
    write_audio(audio / "two.mp3", music_like(3, seed=2), tags={"TITLE": "Two", "ARTIST": "Kim"})
    write_audio(audio / "three.ogg", music_like(3, seed=3), tags={"TITLE": "Three"})
    write_audio(audio / "sub" / "four.opus", music_like(3, seed=4))
    (audio / "empty.wav").write_bytes(b"")
    (audio / "notes.ogg").write_text("this is not audio at all " * 50)
    (audio / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    whole = write_audio(tmp_path / "whole.flac", music_like(3, seed=5))
    (audio / "truncated.flac").write_bytes(whole.read_bytes()[:60])
    (root / "metadata.json").write_text(json.dumps({"tracks": [
        {"file": "audio/two.mp3", "isrc": "USXYZ2600002", "title": "Two (metadata wins)", "ai_generated": "true"},
        {"file": "audio/three.ogg", "isrc": "not-an-isrc"},
        {"file": "../outside.ogg", "isrc": "USXYZ2600009"},
        {"file": "audio/missing.flac", "isrc": "USXYZ2600010"},
        {"title": "no file field"},
    ]}), encoding="utf-8")
    (root / "metadata.csv").write_text("file,isrc,artists,ai_generated\naudio/sub/four.opus,USXYZ2600002,Dup Artist,yes\n"
                                       "audio/two.mp3,USXYZ2600003,Again,no\n", encoding="utf-8")
    return root


def test_ingest_keeps_good_tracks_and_quarantines_each_bad_input(delivery: Path, tmp_path: Path) -> None:
    with connect(tmp_path / "ledger.duckdb") as con:
        report = ingest_delivery(con, delivery, delivery_id="d1", actor="tester")
        tracks = {r[0]: r for r in con.execute(
            "SELECT title, isrc, artists, ai_generated, license_tag, codec, isrc_assigned FROM tracks").fetchall()}
        reasons = dict(con.execute(
            "SELECT source_ref, reason_code FROM quarantine WHERE delivery_id = 'd1'").fetchall())
        contributors = con.execute("SELECT name, role FROM contributors ORDER BY name, role").fetchall()

    # four.opus comes first in path order and takes USXYZ2600002; two.mp3 then repeats that ISRC.
    assert set(tracks) == {"Ünïcødé Sông", "four"}
    song = tracks["Ünïcødé Sông"]
    assert song[1] == "GBABC2600001" and song[2] == ["Zoë", "Ånders"] and song[4] == "CC-BY-4.0"
    assert song[5] == "flac" and song[6] is False
    four = tracks["four"]
    assert four[1] == "USXYZ2600002" and four[2] == ["Dup Artist"] and four[3] is True and four[5] == "opus"
    assert ("Zoë", "MainArtist") in contributors
    assert reasons == {
        "audio/empty.wav": "empty_file",
        "audio/notes.ogg": "not_audio",
        "audio/cover.jpg": "not_audio",
        "audio/truncated.flac": reasons["audio/truncated.flac"],
        "audio/three.ogg": "invalid_identifier",
        "audio/two.mp3": "duplicate_isrc",
        "metadata.json#2": "path_escape",
        "metadata.json#4": "malformed_record",
        "metadata.csv#3": "duplicate_record",
        "audio/missing.flac": "missing_file",
    }
    assert reasons["audio/truncated.flac"] in {"truncated", "not_audio"}
    assert report.ingested == 2 and report.quarantined == len(reasons)
    assert all("audio/" in e or "metadata" in e for e in report.errors)


def test_reingest_converges_and_is_audited(delivery: Path, tmp_path: Path) -> None:
    db = tmp_path / "ledger.duckdb"
    with connect(db) as con:
        first = ingest_delivery(con, delivery, delivery_id="d1", actor="tester")
        second = ingest_delivery(con, delivery, delivery_id="d1", actor="tester")
        counts = con.execute("SELECT (SELECT count(*) FROM tracks), (SELECT count(*) FROM quarantine), "
                             "(SELECT count(*) FROM audit_log WHERE action = 'catalog.ingest')").fetchone()
        chain = verify_chain(con)
    assert (first.ingested, first.quarantined) == (second.ingested, second.quarantined)
    assert counts == (first.ingested, first.quarantined, 2)
    assert chain.ok and chain.entries == 2


def test_missing_isrc_gets_a_stable_well_formed_local_code(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_audio(root / "audio" / "x.wav", music_like(2, seed=9), tags={"TITLE": "X", "ARTIST": "Y"})
    with connect(tmp_path / "l.duckdb") as con:
        ingest_delivery(con, root, delivery_id="d", actor="t")
        isrc, assigned, sha, track_id = con.execute(
            "SELECT isrc, isrc_assigned, audio_sha256, track_id FROM tracks").fetchone()
    assert assigned is True and isrc == local_isrc(sha) and len(isrc) == 12
    assert track_id == track_id_for(isrc)


def test_a_track_gone_from_a_redelivery_is_withdrawn_not_deleted(delivery: Path, tmp_path: Path) -> None:
    db = tmp_path / "ledger.duckdb"
    one = track_id_for("GBABC2600001")
    with connect(db) as con:
        before = ingest_delivery(con, delivery, delivery_id="d1", actor="tester")
        kept = (delivery / "audio" / "one.flac").read_bytes()
        (delivery / "audio" / "one.flac").write_bytes(kept[:50])  # now unreadable
        report = ingest_delivery(con, delivery, delivery_id="d1", actor="tester")
        assert (report.ingested, report.quarantined) == (before.ingested - 1, before.quarantined + 1)
        assert con.execute("SELECT count(*) FROM tracks WHERE track_id = ?", [one]).fetchone() == (1,)
        open_rows = con.execute("SELECT track_id, delivery_id, reason FROM track_withdrawals "
                                "WHERE restored_at IS NULL").fetchall()
        assert [r[:2] for r in open_rows] == [(one, "d1")] and "one.flac" in open_rows[0][2]
        payload = con.execute("SELECT payload FROM audit_log WHERE action = 'catalog.ingest' ORDER BY seq DESC LIMIT 1")
        assert one in json.loads(payload.fetchone()[0])["withdrawn"]
        ingest_delivery(con, delivery, delivery_id="d1", actor="tester")  # still gone: no second entry
        assert con.execute("SELECT count(*) FROM track_withdrawals").fetchone() == (1,)
        (delivery / "audio" / "one.flac").write_bytes(kept)  # delivered again: restored
        ingest_delivery(con, delivery, delivery_id="d1", actor="tester")
        assert con.execute("SELECT count(*) FROM track_withdrawals WHERE restored_at IS NULL").fetchone() == (0,)
        assert verify_chain(con).ok
