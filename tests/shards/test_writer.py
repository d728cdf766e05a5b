import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from licensing.gate import ReleaseRefused, decide
from licensing.releases import approve_release, propose_release
from schemas.shards import Acknowledgement, ShardConfig, ShardManifest
from shards.audio import crop_offsets, decode_pcm
from shards.loader import ShardDataset
from shards.writer import build_shards
from store.database import connect
from store.roles import RoleRefused
from store.sealing import verify_sealed
from tests.ledger_seed import POLICY
from tests.shards.ledger import (
    ARTIST,
    CONSENT,
    LABEL,
    ON,
    PURPOSE,
    TERRITORY,
    deny_since,
    isrc_for,
    make_release,
    set_status,
)

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
    assert first["rights_holders"] == [{"party_id": ARTIST, "name": "Ada Fixture", "share": 25.0},
                                       {"party_id": LABEL, "name": "Fixture Records", "share": 75.0}]
    assert first["consent_ids"] == [CONSENT] and first["deal_id"] == "deal_1"
    assert first["license"] == "contract:FX-1" and first["policy_hash"] == POLICY.content_hash
    assert first["decision_id"] == release.decision_ids[release.track_ids[0]]
    assert first["source_audio_sha256"] == hashlib.sha256(release.audio[release.track_ids[0]].read_bytes()).hexdigest()
    meta = table.schema.metadata
    assert meta[b"linernotes.release_id"] == release.release_id.encode()
    assert meta[b"linernotes.policy_hash"] == POLICY.content_hash.encode()
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


def test_one_sealed_command_records_builds_files_tracks_exclusions_with_relative_locations(release, tmp_path) -> None:
    manifest = _build(release, tmp_path / "out")
    with connect(release.db_path) as con:
        assert con.execute("SELECT shard_count, row_count, excluded_count FROM shard_builds").fetchall() == [(2, 5, 2)]
        assert con.execute("SELECT output_uri, manifest_uri FROM shard_builds").fetchall() == [("out", "out/manifest.json")]
        assert con.execute("SELECT uri FROM shard_files ORDER BY shard_index").fetchall() == [
            (f"out/{s.name}",) for s in manifest.shards]
        assert con.execute("SELECT sum(row_count) FROM shard_files").fetchone()[0] == 5
        per_track = dict(con.execute("SELECT track_id, sum(row_count) FROM shard_file_tracks GROUP BY 1").fetchall())
        assert per_track == {release.track_ids[0]: 2, release.track_ids[2]: 3}
        reasons = con.execute("SELECT reason_code FROM shard_exclusions ORDER BY 1").fetchall()
        assert reasons == [("audio_sha256_mismatch",), ("audio_too_short",)]
        seq, actor, action, payload = con.execute("SELECT seq, actor, action, payload FROM audit_log "
                                                  "ORDER BY seq DESC LIMIT 1").fetchone()
        assert (actor, action) == ("ml@x", "shards.build") and manifest.merkle_root in payload
        seal = json.loads(payload)["seal"]
        assert {t: v["rows"] for t, v in seal.items()} == {"shard_builds": 1, "shard_files": 2,
                                                           "shard_file_tracks": 3, "shard_exclusions": 2}
        bound = con.execute("SELECT DISTINCT audit_seq FROM shard_builds UNION SELECT DISTINCT audit_seq FROM "
                            "shard_files UNION SELECT DISTINCT audit_seq FROM shard_exclusions").fetchall()
        assert bound == [(seq,)]
        assert verify_sealed(con)[0] == []


def test_the_role_is_checked_before_anything_is_written(release, tmp_path) -> None:
    with connect(release.db_path) as con, pytest.raises(RoleRefused) as refused:
        build_shards(con, release.release_id, output_uri=str(tmp_path / "out"), config=CONFIG, actor="rita")
    assert refused.value.code == "role_missing" and not (tmp_path / "out").exists()
    with connect(release.db_path) as con:
        assert con.execute("SELECT count(*) FROM shard_builds").fetchone() == (0,)
        assert con.execute("SELECT actor, action FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone() == (
            "rita", "shards.build.refused")


def test_unapproved_release_is_refused_even_with_acknowledgement_and_the_refusal_recorded(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0], status="proposed")
    with pytest.raises(ReleaseRefused) as info:
        _build(release, tmp_path / "out", acknowledge="ship it")
    assert "release_not_approved" in info.value.decision.reason_codes
    assert not (tmp_path / "out").exists()
    with connect(release.db_path) as con:
        action, payload = con.execute("SELECT action, payload FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'shards.build'").fetchone() == (0,)
    assert action == "shards.build.refused"
    assert json.loads(payload)["reason_codes"] == ["release_not_approved", "approval_missing"]


def test_revoked_release_needs_the_builders_acknowledgement_which_is_recorded(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0])
    set_status(release.db_path, release.release_id, "revoked")
    with pytest.raises(ReleaseRefused):
        _build(release, tmp_path / "out")
    with pytest.raises(ValueError, match="only ml@x can acknowledge"):
        _build(release, tmp_path / "out", acknowledge=Acknowledgement(actor="boss", reason="reproduce run 12"))
    manifest = _build(release, tmp_path / "out", acknowledge=Acknowledgement(actor="ml@x", reason="reproduce run 12"))
    assert manifest.acknowledgements[0].overridden == ("release_revoked",)
    with connect(release.db_path) as con:
        assert con.execute("SELECT actor, context, subject FROM shard_acknowledgements").fetchall() == [
            ("ml@x", "build", "out/manifest.json")]
        payload = json.loads(con.execute("SELECT payload FROM audit_log WHERE action = 'shards.build'").fetchone()[0])
    assert payload["acknowledgement"]["reason"] == "reproduce run 12"
    assert payload["seal"]["shard_acknowledgements"]["rows"] == 1


def test_a_new_build_leaves_out_a_track_denied_since_approval_and_says_why(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0, 5.0, 5.0])
    deny_since(release.db_path, release.track_ids[1], isrc_for(1))
    manifest = _build(release, tmp_path / "out")
    assert {t for s in manifest.shards for t in s.track_ids} == {release.track_ids[0], release.track_ids[2]}
    [excluded] = manifest.excluded
    assert (excluded.track_id, excluded.reason_code) == (release.track_ids[1], "denied_since_approval")
    assert "consent_not_allowed" in excluded.message and "left out of this build" in excluded.message
    assert not manifest.acknowledgements
    with connect(release.db_path) as con:
        assert con.execute("SELECT track_id, reason_code FROM shard_exclusions").fetchall() == [
            (release.track_ids[1], "denied_since_approval")]
        assert con.execute("SELECT count(*) FROM shard_acknowledgements").fetchone() == (0,)
        gate = json.loads(con.execute("SELECT payload FROM audit_log WHERE action = 'shards.build'").fetchone()[0])
    assert gate["gate"]["denied_track_ids"] == [release.track_ids[1]]


def test_the_standing_of_rebuilt_shards_counts_only_the_tracks_they_hold(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[5.0, 5.0])
    deny_since(release.db_path, release.track_ids[0], isrc_for(0))
    manifest = _build(release, tmp_path / "out")
    held = manifest.track_ids()
    with connect(release.db_path) as con:
        assert decide(con, release.release_id).reason_codes == ("denied_since_approval",)
        assert decide(con, release.release_id, use="load", contained_track_ids=held).allowed
        assert not decide(con, release.release_id, use="load", contained_track_ids=set(release.track_ids)).allowed
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
        propose_release(con, purpose=PURPOSE, territory=TERRITORY, on_date=ON, actor="mira", policy=POLICY,
                        release_id="rel_other")
        approve_release(con, "rel_other", actor="rita", comment="the same tracks, again")
        with pytest.raises(FileExistsError):
            build_shards(con, "rel_other", output_uri=str(tmp_path / "out"), config=CONFIG, actor="ml@x")
        assert con.execute("SELECT DISTINCT release_id FROM shard_builds").fetchall() == [(release.release_id,)]


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
