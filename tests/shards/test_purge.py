import json
import shutil

import boto3
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from licensing.gate import ReleaseRefused
from lineage.integrity import verify_ledger
from schemas.shards import ShardConfig
from shards.loader import ShardDataset
from shards.merkle import merkle_root
from shards.purge import PurgeProof, purge_release, verify_purge_proof
from shards.verify import latest_build, verify_manifest
from shards.writer import build_shards, load_manifest
from store.database import connect
from store.objects import ObjectStore
from store.roles import RoleRefused
from store.sealing import verify_sealed
from tests.roles import write_test_roles
from tests.shards.ledger import deny_since, isrc_for, make_release, set_status

CONFIG = ShardConfig(rows_per_shard=3, rows_per_row_group=2, crops_per_track=3, seed=7)


def _crops_of(directory, manifest, track_id: str) -> list[bytes]:
    out = []
    for entry in manifest.shards:
        table = pq.read_table(directory / entry.name, columns=["track_id", "audio"]).to_pylist()
        out += [row["audio"] for row in table if row["track_id"] == track_id]
    return out


def test_purge_erases_the_revoked_recording_and_proves_it_absent_from_the_new_root(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[13.0, 13.0, 9.0])
    out = tmp_path / "out"
    with connect(release.db_path) as con:
        old = build_shards(con, release.release_id, output_uri=str(out), config=CONFIG, actor="ml@x")
    gone = release.track_ids[1]
    crops = _crops_of(out, old, gone)
    assert len(crops) == 3
    old_copy = tmp_path / "someones-copy"
    shutil.copytree(out, old_copy)
    holding = {e.name for e in old.shards if gone in e.track_ids}
    untouched = {e.name for e in old.shards if gone not in e.track_ids}
    assert holding and untouched

    deny_since(release.db_path, gone, isrc_for(1))
    with connect(release.db_path) as con, pytest.raises(RoleRefused):
        purge_release(con, release.release_id, actor="aude.audit")
    assert sorted(p.name for p in out.glob("shard-*")) == sorted(e.name for e in old.shards)

    with connect(release.db_path) as con:
        [result] = purge_release(con, release.release_id, actor="rita.rights")
    assert result.status == "purged" and result.track_ids == (gone,) and result.samples_removed == 3

    # The bytes are gone: no file under the output holds any of the recording's crops, old shards are erased.
    for path in out.iterdir():
        data = path.read_bytes()
        assert not any(crop in data for crop in crops), path.name
    names = {p.name for p in out.glob("shard-*")}
    assert not names & holding and untouched <= names
    new = load_manifest(str(out))
    assert gone not in new.track_ids() and new.total_rows == old.total_rows - 3
    assert new.merkle_root == merkle_root([f"{t}:{i:04d}" for t in (release.track_ids[0], release.track_ids[2])
                                           for i in range(3 if t == release.track_ids[0] else 2)])
    assert new.purges[0].previous_merkle_root == old.merkle_root
    assert [e.reason_code for e in new.excluded] == ["purged_on_revocation"]
    assert verify_manifest(str(out)).ok

    proof = PurgeProof.model_validate_json((out / new.purges[0].proof_name).read_bytes())
    assert verify_purge_proof(proof) and {s.sample_id for s in proof.removed} == {f"{gone}:{i:04d}" for i in range(3)}
    assert (proof.old_merkle_root, proof.new_merkle_root) == (old.merkle_root, new.merkle_root)
    # The proof binds to these roots: swapped or against the old root it does not hold.
    assert not verify_purge_proof(proof.model_copy(update={"new_merkle_root": old.merkle_root}))

    with connect(release.db_path) as con:
        row = con.execute("SELECT old_merkle_root, new_merkle_root, track_ids, purged_by, deleted_uris "
                          "FROM shard_purges").fetchone()
        assert row[:4] == (old.merkle_root, new.merkle_root, [gone], "rita.rights")
        assert sorted(row[4]) == sorted(f"out/{n}" for n in holding)
        actor, payload = con.execute("SELECT actor, payload FROM audit_log WHERE action = 'shards.purge'").fetchone()
        assert actor == "rita.rights" and new.merkle_root in payload
        assert json.loads(payload)["seal"]["shard_purges"]["rows"] == 1
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'shards.purge.refused'").fetchone() == (1,)
        assert verify_sealed(con)[0] == []
        # The erased files are accounted for: the ledger's integrity check names nothing.
        report = verify_ledger(con)
        assert report.ok, report.findings
        # The purged build is the release's latest: training and the assets pick it up.
        assert latest_build(con, release.release_id).manifest_sha256 == proof.new_manifest_sha256

    # A copy of the old build is refused by the loader, acknowledgement or not; the new build loads.
    with pytest.raises(ReleaseRefused) as refused:
        ShardDataset(str(old_copy), ledger_path=release.db_path)
    assert "build_purged" in refused.value.decision.reason_codes
    with pytest.raises(ReleaseRefused):
        ShardDataset(str(old_copy), ledger_path=release.db_path, acknowledge={"actor": "ml@x", "reason": "need it"})
    served = {s["track_id"] for s in ShardDataset(str(out), ledger_path=release.db_path)}
    assert served == {release.track_ids[0], release.track_ids[2]}

    # Nothing left to purge: a second run changes nothing.
    with connect(release.db_path) as con:
        [again] = purge_release(con, release.release_id, actor="rita.rights")
    assert again.status == "clean" and load_manifest(str(out)).merkle_root == new.merkle_root


def test_a_revoked_release_is_purged_whole_on_a_versioned_s3_bucket(tmp_path, s3_settings, s3_bucket) -> None:
    release = make_release(tmp_path, seconds=[9.0, 9.0])
    store = ObjectStore(s3_settings)
    client = boto3.client("s3", endpoint_url=s3_settings.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    prefix = f"s3://{s3_bucket}/rel"
    with connect(release.db_path) as con:
        old = build_shards(con, release.release_id, output_uri=prefix, config=CONFIG, actor="ml@x", store=store)
    set_status(release.db_path, release.release_id, "revoked")
    with connect(release.db_path) as con:
        [result] = purge_release(con, release.release_id, actor="ml@x", store=store)
    assert result.status == "purged" and set(result.track_ids) == set(release.track_ids)
    versions = client.list_object_versions(Bucket=s3_bucket)
    held = [v["Key"] for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])]
    # No stored version of any old shard survives; one manifest version (the empty build) and the proof.
    assert sorted(held) == ["rel/manifest.json", f"rel/{result.proof_uri.rsplit('/', 1)[1]}"]
    new = load_manifest(prefix, store)
    assert new.shards == () and new.total_rows == 0 and len(old.shards) == 2
    assert verify_purge_proof(result.proof)


def test_purge_through_the_cli_writes_the_proof(tmp_path) -> None:
    home = tmp_path / "home"
    release = make_release(home, seconds=[9.0, 9.0], db_name="linernotes.duckdb")
    write_test_roles(home)
    runner = CliRunner()
    out = str(tmp_path / "shards")
    built = runner.invoke(app, ["shards", "build", release.release_id, "--output", out, "--home", str(home),
                                "--actor", "ml@x"])
    assert built.exit_code == 0, built.output
    deny_since(release.db_path, release.track_ids[0], isrc_for(0))
    refused = runner.invoke(app, ["shards", "purge", "--release", release.release_id, "--home", str(home),
                                  "--actor", "aude.audit"])
    assert refused.exit_code == 3 and "role_missing" in refused.output
    result = runner.invoke(app, ["shards", "purge", "--release", release.release_id, "--home", str(home),
                                 "--actor", "rita", "--json", "--proof-out", str(tmp_path / "proof.json")])
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.output)
    assert summary["status"] == "purged" and summary["track_ids"] == [release.track_ids[0]]
    [proof] = json.loads((tmp_path / "proof.json").read_text())
    assert verify_purge_proof(PurgeProof.model_validate(proof))
