"""One setting (LINERNOTES_OBJECTS=s3://...) puts deliveries, shards and checkpoints on S3 (moto_server)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.definitions import defs
from dagster_project.demo import ML_ENGINEER, RIGHTS_APPROVER
from licensing.releases import approve_release
from shards.verify import verify_manifest
from store.audit import verify_chain
from store.database import connect
from store.objects import ObjectStore
from tests.scale.delivery import make_delivery
from tests.scale.pipeline import prepare_home


def test_pipeline_reads_deliveries_from_s3_and_writes_shards_and_checkpoints_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_settings, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    home = prepare_home(tmp_path / "home", monkeypatch)
    objects = f"s3://{s3_bucket}/label"
    for name, value in {"LINERNOTES_OBJECTS": objects, "LINERNOTES_S3_ENDPOINT_URL": s3_settings.endpoint_url,
                        "LINERNOTES_S3_REGION": "us-east-1", "LINERNOTES_S3_ACCESS_KEY_ID": "testing",
                        "LINERNOTES_S3_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    store = ObjectStore()
    staging = tmp_path / "upload"
    isrcs = make_delivery(staging, prefix="SS", tracks=3, seed=5)
    store.upload_tree(staging, f"{objects}/deliveries/d-s3")
    assert not (home.deliveries / "d-s3").exists()

    def run(job: str, partition: str | None = None, config: dict | None = None) -> None:  # type: ignore[type-arg]
        with dg.DagsterInstance.get() as instance:
            for name, key in (("deliveries", "d-s3"), ("releases", "rel-s3"), ("training_runs", "run-s3")):
                instance.add_dynamic_partitions(name, [key])
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition,
                                                                  run_config=config, raise_on_error=False)
        assert result.success, [e.message for e in result.all_events if e.is_failure]

    run("ingest_delivery", "d-s3")
    run("match_and_decide", config={"ops": {"rights_decisions": {"config": {"on_date": "2026-06-01"}}}})
    run("propose_release", "rel-s3", {"ops": {"training_release": {"config": {
        "proposed_by": ML_ENGINEER, "on_date": "2026-06-01"}}}})
    with connect(home.db_path) as con:
        approve_release(con, "rel-s3", actor=RIGHTS_APPROVER, comment="checked", on_date=None)
    run("build_shards", "rel-s3", {"ops": {"release_shards": {"config": {"built_by": ML_ENGINEER,
                                                                            "crops_per_track": 2}}}})
    run("train_model", "run-s3", {"ops": {"training_run": {"config": {
        "release": "rel-s3", "started_by": ML_ENGINEER, "epochs": 1, "nproc": 1, "batch_size": 2}}}})

    with connect(home.db_path, read_only=True) as con:
        sources = [p for (p,) in con.execute("SELECT source_path FROM tracks").fetchall()]
        manifest_uri = con.execute("SELECT manifest_uri FROM shard_builds WHERE release_id = 'rel-s3'").fetchone()[0]
        checkpoint_uri, checkpoint_sha = con.execute(
            "SELECT checkpoint_uri, checkpoint_sha256 FROM training_runs WHERE run_id = 'run-s3'").fetchone()
        released = {i for (i,) in con.execute("SELECT t.isrc FROM release_tracks r JOIN tracks t USING (track_id) "
                                              "WHERE r.release_id = 'rel-s3'").fetchall()}
        chain = verify_chain(con)
    # Deliveries were staged from S3 into the home's cache; shards and checkpoint live on S3 only.
    assert len(sources) == 3 and all(Path(home.root / p).is_relative_to(home.deliveries / "d-s3") for p in sources)
    assert not any(Path(p).is_absolute() for p in sources)  # relative to the data directory
    assert released == set(isrcs[:2])
    assert manifest_uri.startswith(f"{objects}/shards/rel-s3/")
    report = verify_manifest(manifest_uri)
    assert report.ok and report.shards
    assert not any(home.objects.rglob("*.parquet"))
    assert checkpoint_uri == f"{objects}/runs/run-s3/model.pt"
    assert hashlib.sha256(store.get(checkpoint_uri)).hexdigest() == checkpoint_sha
    published = store.walk(f"{objects}/runs/run-s3")
    assert f"{objects}/runs/run-s3/checkpoints/last.pt" in published
    assert any(u.startswith(f"{objects}/runs/run-s3/exposure/") for u in published)
    assert chain.ok
