import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from schemas.shards import Acknowledgement, ShardConfig, ShardManifest
from shards.audio import crop_offsets, decode_pcm
from shards.gate import ReleaseRefused, check_release
from shards.loader import ShardDataset
from shards.writer import build_shards
from store.database import connect
from tests.shards.ledger import deny_since, isrc_for, make_release, set_status

CONFIG = ShardConfig(rows_per_shard=4, rows_per_row_group=2, crops_per_track=3, seed=7)


@pytest.fixture()
def release(tmp_path):
    # 10 s -> 2 crops, 2 s -> too short, 13 s -> 3 crops, 9 s with a wrong ledger hash.
    return make_release(tmp_path, seconds=[10.0, 2.0, 13.0, 9.0], bad_sha={3})


def _build(release, out: Path, **kw) -> ShardManifest:
    with connect(release.db_path) as con:
        return build_shards(con, release.release_id, output_uri=str(out), config=kw.pop("config", CONFIG),
                            actor="ml@x", **kw)


def test_builds_attributed_rows_and_excludes_bad_audio_with_reasons(release, tmp_path) -> None:
    manifest = _build(release, tmp_path / "out")
    assert manifest.total_rows == 5 and manifest.track_count == 2
    assert {(e.track_id, e.reason_code) for e in manifest.excluded} == {
        (release.track_ids[1], "audio_too_short"), (release.track_ids[3], "audio_sha256_mismatch")}
    assert [e.rows for e in manifest.shards] == [4, 1]
    rows = duckdb.sql(f"SELECT * FROM '{tmp_path / 'out'}/*.parquet' ORDER BY sample_id").fetchall()
    assert len(rows) == 5
    table = pq.read_table(tmp_path / "out" / manifest.shards[0].name)
    first = table.slice(0, 1).to_pylist()[0]
    assert first["sample_id"] == f"{release.track_ids[0]}:0000"
    assert first["isrc"] == isrc_for(0) and first["release_id"] == release.release_id
    assert first["rights_holders"] == [{"party_id": "pty_artist", "name": "Ada Fixture", "share": 25.0},
                                       {"party_id": "pty_label", "name": "Fixture Records", "share": 75.0}]
    assert first["consent_ids"] == ["cns_1"] and first["deal_id"] == "deal_1"
    assert first["license"] == "contract:FX-1" and first["policy_hash"] == "pol_hash_1"
    assert first["decision_id"] == f"dec_{release.release_id}_0"
    assert first["source_audio_sha256"] == hashlib.sha256(release.audio[release.track_ids[0]].read_bytes()).hexdigest()
    meta = table.schema.metadata
    assert meta[b"linernotes.release_id"] == release.release_id.encode()
    assert meta[b"linernotes.policy_hash"] == b"pol_hash_1"
    assert meta[b"linernotes.code_version"].startswith(b"linernotes ")
    assert pq.ParquetFile(tmp_path / "out" / manifest.shards[0].name).metadata.row_group(0).column(0).compression == "ZSTD"


def test_audio_is_the_decoded_source_at_the_recorded_offset_never_padded(release, tmp_path) -> None:
    manifest = _build(release, tmp_path / "out")
    track = release.track_ids[2]
    pcm = decode_pcm(release.audio[track], 16000)
    offsets = crop_offsets(len(pcm), 64000, 3, seed=7, track_id=track)
    assert len(offsets) == 3 and all(b - a >= 64000 for a, b in zip(offsets, offsets[1:]))
    rows = duckdb.sql(f"SELECT crop_index, crop_offset_samples, audio FROM '{tmp_path / 'out'}/*.parquet' "
                      f"WHERE track_id = '{track}' ORDER BY crop_index").fetchall()
    assert [r[1] for r in rows] == offsets
    for _, offset, audio in rows:
        crop = np.frombuffer(audio, dtype="<i2")
        assert len(crop) == 64000
        assert np.array_equal(crop, pcm[offset:offset + 64000])
    assert manifest.sample_format["encoding"] == "pcm_s16le"


def test_same_release_config_and_seed_give_byte_identical_shards(release, tmp_path) -> None:
    a = _build(release, tmp_path / "a")
    b = _build(release, tmp_path / "b")
    assert [(s.name, s.sha256) for s in a.shards] == [(s.name, s.sha256) for s in b.shards]
    for s in a.shards:
        assert (tmp_path / "a" / s.name).read_bytes() == (tmp_path / "b" / s.name).read_bytes()
    c = _build(release, tmp_path / "c", config=CONFIG.model_copy(update={"seed": 8}))
    assert [s.sha256 for s in c.shards] != [s.sha256 for s in a.shards]


def test_rebuild_replaces_manifest_and_removes_shards_it_no_longer_lists(release, tmp_path) -> None:
    out = tmp_path / "out"
    _build(release, out)
    second = _build(release, out, config=CONFIG.model_copy(update={"seed": 99}))
    on_disk = sorted(p.name for p in out.glob("shard-*.parquet"))
    assert on_disk == sorted(s.name for s in second.shards)
    assert not list(out.glob(".*tmp"))


def test_ledger_records_builds_files_tracks_exclusions_and_audit(release, tmp_path) -> None:
    manifest = _build(release, tmp_path / "out")
    with connect(release.db_path) as con:
        assert con.execute("SELECT shard_count, row_count, excluded_count FROM shard_builds").fetchall() == [(2, 5, 2)]
        assert con.execute("SELECT sum(row_count) FROM shard_files").fetchone()[0] == 5
        per_track = dict(con.execute("SELECT track_id, sum(row_count) FROM shard_file_tracks GROUP BY 1").fetchall())
        assert per_track == {release.track_ids[0]: 2, release.track_ids[2]: 3}
        reasons = con.execute("SELECT reason_code FROM shard_exclusions ORDER BY 1").fetchall()
        assert reasons == [("audio_sha256_mismatch",), ("audio_too_short",)]
        action, payload = con.execute("SELECT action, payload FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        assert action == "shards.build" and manifest.merkle_root in payload


def test_unapproved_release_is_refused_even_with_acknowledgement(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0], status="proposed")
    with pytest.raises(ReleaseRefused) as info:
        _build(release, tmp_path / "out", acknowledge=Acknowledgement(actor="boss", reason="ship it"))
    assert "release_not_approved" in info.value.gate.reasons
    assert not (tmp_path / "out").exists()


def test_revoked_release_needs_an_acknowledgement_which_is_recorded(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0])
    set_status(release.db_path, release.release_id, "revoked")
    with pytest.raises(ReleaseRefused):
        _build(release, tmp_path / "out")
    manifest = _build(release, tmp_path / "out", acknowledge=Acknowledgement(actor="auditor@x", reason="reproduce run 12"))
    assert manifest.acknowledgements[0].overridden == ("release_revoked",)
    with connect(release.db_path) as con:
        assert con.execute("SELECT actor, context FROM shard_acknowledgements").fetchall() == [("auditor@x", "build")]
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'shards.acknowledge_build'").fetchone()[0] == 1


def test_a_new_build_leaves_out_a_track_denied_since_approval_and_says_why(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0, 5.0, 5.0])
    deny_since(release.db_path, release.track_ids[1], isrc_for(1))
    manifest = _build(release, tmp_path / "out")
    assert release.track_ids[1] not in {t for s in manifest.shards for t in s.track_ids}
    assert {t for s in manifest.shards for t in s.track_ids} == {release.track_ids[0], release.track_ids[2]}
    [excluded] = manifest.excluded
    assert (excluded.track_id, excluded.reason_code) == (release.track_ids[1], "denied_since_approval")
    assert "left out of this build" in excluded.message and not manifest.acknowledgements
    with connect(release.db_path) as con:
        assert con.execute("SELECT track_id, reason_code FROM shard_exclusions").fetchall() == [
            (release.track_ids[1], "denied_since_approval")]
        assert con.execute("SELECT count(*) FROM shard_acknowledgements").fetchone() == (0,)


def test_the_standing_of_rebuilt_shards_counts_only_the_tracks_they_hold(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0, 5.0])
    deny_since(release.db_path, release.track_ids[0], isrc_for(0))
    manifest = _build(release, tmp_path / "out")
    held = {t for s in manifest.shards for t in s.track_ids}
    with connect(release.db_path) as con:
        assert check_release(con, release.release_id).reasons == ("denied_since_approval",)
        assert check_release(con, release.release_id, contained_track_ids=held).ok
        assert not check_release(con, release.release_id, contained_track_ids=set(release.track_ids)).ok
    # The loader judges the shards by what they hold: no acknowledgement needed, nothing denied served.
    served = {s["track_id"] for s in ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path)}
    assert served == {release.track_ids[1]}


def test_training_still_refuses_shards_holding_a_track_denied_after_they_were_built(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0, 5.0])
    _build(release, tmp_path / "out")
    deny_since(release.db_path, release.track_ids[0], isrc_for(0))
    with pytest.raises(ReleaseRefused, match="denied_since_approval"):
        ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path)
    served = {s["track_id"] for s in ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path,
                                                    acknowledge=Acknowledgement(actor="ml@x", reason="the rest"))}
    assert served == {release.track_ids[1]}


def test_output_holding_another_release_is_refused(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0])
    _build(release, tmp_path / "out")
    with connect(release.db_path) as con:
        con.execute("INSERT INTO releases SELECT 'rel_other', purpose, territory, on_date, policy_hash, status, "
                    "proposed_by, proposed_at, track_count, content_sha256 FROM releases")
        con.execute("INSERT INTO release_tracks SELECT 'rel_other', track_id, isrc, decision_id FROM release_tracks")
        con.execute("INSERT INTO approvals SELECT 'rel_other', actor, action, comment, recorded_at FROM approvals")
        with pytest.raises(FileExistsError):
            build_shards(con, "rel_other", output_uri=str(tmp_path / "out"), config=CONFIG, actor="ml@x")


def test_duckdb_user_can_count_samples_per_isrc(release, tmp_path) -> None:
    _build(release, tmp_path / "out")
    counts = duckdb.sql(f"SELECT isrc, count(*) FROM '{tmp_path / 'out'}/*.parquet' GROUP BY isrc ORDER BY isrc").fetchall()
    assert counts == [(isrc_for(0), 2), (isrc_for(2), 3)]
    holders = duckdb.sql(
        f"SELECT h.name, sum(h.share) FROM (SELECT unnest(rights_holders) AS h FROM '{tmp_path / 'out'}/*.parquet') "
        "GROUP BY 1 ORDER BY 1").fetchall()
    assert holders == [("Ada Fixture", 125.0), ("Fixture Records", 375.0)]


def test_attribution_columns_are_zstd_and_audio_codec_follows_config(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[9.0])

    def codecs(config: ShardConfig, out: str) -> dict[str, str]:
        manifest = _build(release, tmp_path / out, config=config)
        meta = pq.ParquetFile(tmp_path / out / manifest.shards[0].name).metadata.row_group(0)
        return {meta.column(i).path_in_schema.split(".")[0]: meta.column(i).compression for i in range(meta.num_columns)}

    default = codecs(CONFIG, "a")
    assert default["audio"] == "UNCOMPRESSED"
    assert {c for name, c in default.items() if name != "audio"} == {"ZSTD"}
    assert codecs(CONFIG.model_copy(update={"audio_compression": "zstd"}), "b")["audio"] == "ZSTD"
