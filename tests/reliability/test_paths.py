"""Paths and URIs that try to leave their directory: delivery files, opt-out registry entries, shard manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fingerprinting.ledger import register_registry
from shards.loader import ShardDataset, ShardIntegrityError
from shards.verify import verify_manifest
from shards.writer import build_shards
from store.audit import verify_chain
from store.database import connect
from tests.audio_fixtures import music_like, write_audio
from tests.reliability.conftest import ingest_and_fingerprint, quarantined, track_files
from tests.shards.ledger import make_release

GOOD = {"good-a.flac", "good-b.ogg", "good-c.mp3"}


def test_symlink_out_of_the_audio_folder_is_quarantined_not_read(delivery: Path, tmp_path: Path, con) -> None:  # type: ignore[no-untyped-def]
    outside = write_audio(tmp_path / "elsewhere" / "private.flac", music_like(6, seed=40))
    os.symlink(outside, delivery / "audio" / "innocent.flac")
    os.symlink("/etc/hostname", delivery / "audio" / "etc.ogg")
    ingest_and_fingerprint(con, delivery)
    assert sorted((f, r) for _, f, r, _ in quarantined(con)) == [("etc.ogg", "path_escape"),
                                                                 ("innocent.flac", "path_escape")]
    assert set(track_files(con)) == GOOD
    assert not con.execute("SELECT 1 FROM tracks WHERE source_path LIKE '%elsewhere%'").fetchall()


def test_an_audio_folder_that_is_itself_a_link_outside_is_refused(tmp_path: Path, good_audio, con) -> None:  # type: ignore[no-untyped-def]
    delivery = tmp_path / "delivery"
    delivery.mkdir()
    os.symlink(next(iter(good_audio.values())).parent, delivery / "audio")
    ingest_and_fingerprint(con, delivery)
    assert [(f, r) for _, f, r, _ in quarantined(con)] == [("audio", "path_escape")]
    assert track_files(con) == {}


def test_metadata_paths_leaving_the_delivery_are_quarantined(delivery: Path, con) -> None:  # type: ignore[no-untyped-def]
    (delivery / "metadata.json").write_text(json.dumps({"tracks": [
        {"file": "../../../etc/passwd", "title": "x"}, {"file": "/etc/passwd"}, {"file": "audio/../../x.flac"},
        {"file": "audio/good-a.flac", "title": "Kept"}]}), encoding="utf-8")
    ingest_and_fingerprint(con, delivery)
    assert [(f, r) for _, f, r, _ in quarantined(con)] == [
        ("metadata.json#0", "path_escape"), ("metadata.json#1", "path_escape"), ("metadata.json#2", "path_escape")]
    assert con.execute("SELECT title FROM tracks WHERE source_path LIKE '%good-a.flac'").fetchone() == ("Kept",)


def test_optout_registry_entries_cannot_point_outside_the_registry(tmp_path: Path, con) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "optout"
    write_audio(root / "claimed.flac", music_like(12, seed=41))
    secret = write_audio(tmp_path / "private" / "secret.flac", music_like(12, seed=42))
    (root / "notes.flac").write_text("not audio", encoding="utf-8")
    registry = root / "registry.json"
    registry.write_text(json.dumps({"entries": [
        {"optout_id": "OPT-1", "claimant": "Ånna Øberg", "file": "claimed.flac", "isrc": "GBAYE2600001"},
        {"optout_id": "OPT-2", "claimant": "x", "file": f"../private/{secret.name}"},
        {"optout_id": "OPT-3", "claimant": "x", "file": str(secret)},
        {"optout_id": "OPT-4", "claimant": "x", "file": "notes.flac"},
        {"optout_id": "OPT-5", "claimant": "x", "file": "claimed.flac", "isrc": "not-an-isrc"},
        {"optout_id": "OPT-6", "claimant": 7, "file": "claimed.flac"},
        "OPT-7",
    ]}), encoding="utf-8")

    report = register_registry(con, registry, actor="rita")

    assert report.registered == ("OPT-1",)
    rows = con.execute("SELECT source_ref, reason_code FROM quarantine WHERE stage = 'optout' ORDER BY ALL").fetchall()
    assert [(ref.removeprefix(f"{registry}#"), code) for ref, code in rows] == [
        ("entries/1 (OPT-2)", "path_escape"), ("entries/2 (OPT-3)", "path_escape"), ("entries/3 (OPT-4)", "unsupported_codec"),
        ("entries/4 (OPT-5)", "invalid_identifier"), ("entries/5", "malformed_record"),
        ("entries/6", "malformed_record")]
    assert con.execute("SELECT optout_id, claimant FROM optout_registry").fetchall() == [("OPT-1", "Ånna Øberg")]
    again = register_registry(con, registry, actor="rita")  # converges: same rows, not twice as many
    assert again.quarantined == 6 and con.execute(
        "SELECT count(*) FROM quarantine WHERE stage = 'optout'").fetchone()[0] == 6
    registry.write_text("{not json", encoding="utf-8")
    broken = register_registry(con, registry, actor="rita")
    assert broken.by_reason == {"malformed_registry": 1}
    assert verify_chain(con).ok


@pytest.fixture()
def built(tmp_path: Path):  # type: ignore[no-untyped-def]
    release = make_release(tmp_path, seconds=[9.0, 9.0])
    out = tmp_path / "shards"
    with connect(release.db_path) as con:
        build_shards(con, release.release_id, output_uri=str(out), actor="mira")
    return release, out


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "shard-00000-0000000000000000.parquet/../../x",
                                  "s3://other-bucket/shard-00000-0123456789abcdef.parquet"])
def test_manifest_naming_a_shard_outside_its_directory_is_refused_everywhere(built, name: str) -> None:  # type: ignore[no-untyped-def]
    release, out = built
    doc = json.loads((out / "manifest.json").read_text())
    doc["shards"][0]["name"] = name
    (out / "manifest.json").write_text(json.dumps(doc))

    report = verify_manifest(str(out))
    assert not report.ok and "does not match the schema" in report.problems[0]
    with pytest.raises(ShardIntegrityError, match=r"manifest\.json: not a valid shard manifest.*shards\.0\.name"):
        ShardDataset(str(out), ledger_path=release.db_path)

    from training.gate import check_release

    with connect(release.db_path) as con:
        decision = check_release(con, release.release_id, manifest_uri=str(out))
    assert not decision.allowed and "shard_verification_failed" in decision.reason_codes


def test_a_shard_uri_pointing_elsewhere_is_ignored_shards_are_read_beside_their_manifest(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    release, out = built
    doc = json.loads((out / "manifest.json").read_text())
    decoy_dir = tmp_path / "decoy"
    decoy_dir.mkdir()
    for entry in doc["shards"]:
        (decoy_dir / entry["name"]).write_bytes(b"not the shard")
        entry["uri"] = str(decoy_dir / entry["name"])
    (out / "manifest.json").write_text(json.dumps(doc))
    assert verify_manifest(str(out)).ok
    dataset = ShardDataset(str(out), ledger_path=release.db_path, shuffle=False)
    assert len(list(dataset)) == doc["total_rows"]
    # Moved together, a shard set verifies where it lands; a shard swapped for other bytes is refused.
    (out / doc["shards"][0]["name"]).write_bytes(b"swapped")
    with pytest.raises(ShardIntegrityError, match=doc["shards"][0]["name"]):
        ShardDataset(str(out), ledger_path=release.db_path)
