import shutil

import pytest

from schemas.shards import ShardConfig
from shards.verify import verify_manifest
from shards.writer import build_shards
from store.database import connect
from tests.shards.ledger import PURPOSE, make_release


@pytest.fixture()
def built(tmp_path):
    release = make_release(tmp_path, seconds=[9.0, 9.0, 9.0])
    out = tmp_path / "out"
    with connect(release.db_path) as con:
        manifest = build_shards(con, release.release_id, output_uri=str(out),
                                config=ShardConfig(rows_per_shard=2, crops_per_track=2), actor="ml@x")
    return out, manifest


def test_intact_set_verifies_with_merkle_roots(built) -> None:
    out, manifest = built
    report = verify_manifest(str(out / "manifest.json"))
    assert report.ok and report.merkle_root == manifest.merkle_root
    assert [c.merkle_root for c in report.shards] == [s.merkle_root for s in manifest.shards]


def test_names_missing_extra_and_altered_shards(built) -> None:
    out, manifest = built
    first, second = manifest.shards[0].name, manifest.shards[1].name
    (out / first).unlink()
    data = bytearray((out / second).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / second).write_bytes(bytes(data))
    shutil.copy(out / manifest.shards[2].name, out / "shard-00099-0123456789abcdef.parquet")
    report = verify_manifest(str(out))
    assert not report.ok
    assert report.missing == (first,)
    assert report.altered == (second,)
    assert report.extra == ("shard-00099-0123456789abcdef.parquet",)


def test_copied_directory_verifies_where_it_lands(built, tmp_path) -> None:
    out, _ = built
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    assert verify_manifest(str(moved)).ok


def test_missing_manifest_is_a_failed_report(tmp_path) -> None:
    report = verify_manifest(str(tmp_path / "nothing"))
    assert not report.ok and report.problems == ("manifest not found",)


def test_decision_audit_passes_then_names_rows_whose_decision_became_a_deny(tmp_path) -> None:
    from shards.verify import audit_decisions
    from store.sealing import verify_sealed

    release = make_release(tmp_path, seconds=[9.0, 9.0])
    first, second = (release.decision_ids[t] for t in release.track_ids)
    with connect(release.db_path) as con:
        build_shards(con, release.release_id, output_uri=str(tmp_path / "out"),
                     config=ShardConfig(crops_per_track=2), actor="ml@x")
        clean = audit_decisions(con, str(tmp_path / "out"))
        assert clean.ok and clean.rows == 4 and clean.purpose == PURPOSE
        # Decision rows rewritten behind the write path's back (the contract forbids it; both checks catch it).
        con.execute("UPDATE decisions SET allowed = FALSE WHERE decision_id = ?", [second]).fetchall()
        con.execute("DELETE FROM decisions WHERE decision_id = ?", [first]).fetchall()
        report = audit_decisions(con, str(tmp_path / "out"))
        tampered = {f.table for f in verify_sealed(con)[0]}
    assert not report.ok
    assert report.not_allowed == (f"{release.track_ids[1]}:0000", f"{release.track_ids[1]}:0001")
    assert report.unknown_decision == (f"{release.track_ids[0]}:0000", f"{release.track_ids[0]}:0001")
    assert tampered == {"decisions"}
