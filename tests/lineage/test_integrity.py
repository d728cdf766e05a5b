"""`linernotes audit verify`: the chain, the audited hashes, and every file the ledger vouches for."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from dagster_project.cli import app
from lineage.integrity import verify_ledger
from store.database import connect
from tests.lineage.pipeline import RUN_ID, Pipeline


@contextlib.contextmanager
def tampered(path: Path, change: bytes = b"\x00") -> Iterator[None]:
    """Alter a file for the duration of the block, then put the original bytes back."""
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]) if change == b"\x00" else original + change)
    try:
        yield
    finally:
        path.write_bytes(original)


def _verify(db: Path):  # type: ignore[no-untyped-def]
    with connect(db, read_only=True) as con:
        return verify_ledger(con)


def _cli(home: Path, *args: str) -> tuple[int, str]:
    """Exit code and output with rich's line wrapping removed."""
    result = CliRunner().invoke(app, ["audit", "verify", "--home", str(home), *args])
    return result.exit_code, "".join(result.output.split())


def _shard_refs(db: Path) -> list[str]:
    """The shards as the ledger records them: relative to its data directory."""
    with connect(db, read_only=True) as con:
        return [r[0] for r in con.execute("SELECT uri FROM shard_files ORDER BY shard_index").fetchall()]


def _checkpoint_ref(db: Path, run_id: str) -> str:
    with connect(db, read_only=True) as con:
        return con.execute("SELECT checkpoint_uri FROM training_runs WHERE run_id = ?", [run_id]).fetchone()[0]


def test_intact_pipeline_verifies_every_referenced_file(pipeline: Pipeline) -> None:
    report = _verify(pipeline.db_path)
    assert report.ok, [f.describe() for f in report.findings]
    assert report.audit_entries >= 15
    assert {k: v for k, v in report.checked.items() if k != "sealed_rows"} == {
        "manifests": 1, "shards": 2, "checkpoints": 1, "audio": 0, "snapshots": 2}
    assert report.checked["sealed_rows"] > 50
    code, output = _cli(pipeline.home, "--audio")
    assert code == 0, output
    assert "intact" in output and "6audio" in output


def test_tampered_audit_row_is_named(pipeline: Pipeline, ledger_copy: Path) -> None:
    con = duckdb.connect(str(ledger_copy))
    seq = con.execute("SELECT seq FROM audit_log WHERE action = 'release.approve'").fetchone()[0]
    con.execute("UPDATE audit_log SET payload = ? WHERE seq = ?", [json.dumps({"comment": "rubber stamp"}), seq])
    con.close()
    report = _verify(ledger_copy)
    assert not report.ok
    assert (report.first.kind, report.first.subject) == ("audit_entry", f"audit_log seq {seq}")
    assert "payload" in report.first.problem
    code, output = _cli(ledger_copy.parent)
    assert code == 1 and f"audit_logseq{seq}" in output


def test_tampered_shard_file_is_named(pipeline: Pipeline) -> None:
    second = _shard_refs(pipeline.db_path)[1]
    assert not Path(second).is_absolute()
    with tampered(pipeline.home / second):
        report = _verify(pipeline.db_path)
        code, output = _cli(pipeline.home)
    assert [(f.kind, f.subject, f.location) for f in report.findings] == [
        ("shard", second, str(pipeline.home / second))]
    assert report.first.expected != report.first.actual
    assert code == 1 and f"firstmismatch:shard{second}" in output
    assert _verify(pipeline.db_path).ok


def test_tampered_manifest_is_named_even_when_its_ledger_row_is_rewritten(ledger_copy: Path) -> None:
    home = ledger_copy.parent
    with connect(ledger_copy, read_only=True) as con:
        build_id, ref = con.execute("SELECT build_id, manifest_uri FROM shard_builds").fetchone()
    manifest = home / ref
    manifest.write_bytes(manifest.read_bytes() + b"\n")
    report = _verify(ledger_copy)
    # Named once for each record that vouches for it: the shard build, and the run that read it.
    assert [(f.kind, f.subject) for f in report.findings] == [("manifest", ref)] * 2
    assert ["shard build" in report.findings[0].problem, "training run" in report.findings[1].problem] == [True] * 2
    # Someone rewrites the ledger row to the new hash as well: its seal and the audited hash both disagree.
    new_sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
    con = duckdb.connect(str(ledger_copy))
    con.execute("UPDATE shard_builds SET manifest_sha256 = ?", [new_sha])
    con.close()
    report = _verify(ledger_copy)
    kinds = {f.kind: f for f in report.findings}
    assert report.first.kind == "sealed_row" and report.first.subject.startswith(f"shard_builds build_id={build_id}")
    assert kinds["ledger_row"].subject == f"shard_builds {build_id}" and kinds["ledger_row"].actual == new_sha
    # The rewritten build row agrees with the file now; the run's audited record of it still does not.
    assert [f.problem for f in report.findings if f.kind == "manifest"] == [
        f"content changed (training run {RUN_ID})"]


def test_tampered_checkpoint_is_named(pipeline: Pipeline) -> None:
    ref = _checkpoint_ref(pipeline.db_path, pipeline.run_id)
    assert ref == f"runs/{pipeline.run_id}/model.pt"
    with tampered(pipeline.run_dir / "model.pt", change=b"extra"):
        report = _verify(pipeline.db_path)
    assert [(f.kind, f.subject) for f in report.findings] == [("checkpoint", ref)]
    assert pipeline.run_id in report.first.problem


def test_missing_shard_is_named_not_raised(pipeline: Pipeline) -> None:
    ref = _shard_refs(pipeline.db_path)[0]
    first = pipeline.home / ref
    data = first.read_bytes()
    first.unlink()
    try:
        report = _verify(pipeline.db_path)
    finally:
        first.write_bytes(data)
    assert (report.first.kind, report.first.subject, report.first.location) == ("shard", ref, str(first))
    assert report.first.problem.startswith("missing")


def test_a_copied_data_directory_is_checked_against_its_own_files(pipeline: Pipeline, tmp_path: Path) -> None:
    """The ledger records locations relative to its data directory: a copy verifies (or fails) on its own files."""
    copy = tmp_path / "copy"
    shutil.copytree(pipeline.home, copy)
    db = copy / pipeline.db_path.name
    assert _verify(db).ok
    shard, checkpoint = _shard_refs(db)[1], _checkpoint_ref(db, pipeline.run_id)
    data = bytearray((copy / shard).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / shard).write_bytes(bytes(data))
    (copy / checkpoint).unlink()

    report = _verify(db)
    found = [(f.kind, f.subject, f.location, f.problem.split(" (")[0]) for f in report.findings]
    assert found == [("shard", shard, str(copy / shard), "content changed"),
                     ("checkpoint", checkpoint, str(copy / checkpoint), "missing")]
    code, output = _cli(copy)
    assert code == 1 and f"firstmismatch:shard{shard}" in output
    # The original data directory, whose files the copy's ledger names the same way, is untouched and intact.
    assert _verify(pipeline.db_path).ok and (pipeline.home / shard).read_bytes() != bytes(data)


def test_shards_on_s3_are_rehashed_there(pipeline: Pipeline, ledger_copy: Path, s3_settings, s3_bucket) -> None:
    import boto3

    from schemas.shards import ShardConfig
    from shards.writer import build_shards
    from store.objects import ObjectStore

    store = ObjectStore(s3_settings)
    with connect(ledger_copy) as con:
        build_shards(con, pipeline.release_id, output_uri=f"s3://{s3_bucket}/shards", actor="mira.ml",
                     config=ShardConfig(crops_per_track=2, rows_per_shard=4), store=store)
        assert verify_ledger(con, store=store).ok
    s3 = boto3.client("s3", endpoint_url=s3_settings.endpoint_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="shards/")["Contents"]
               if o["Key"].endswith(".parquet"))
    s3.put_object(Bucket=s3_bucket, Key=key, Body=b"not parquet")
    with connect(ledger_copy, read_only=True) as con:
        report = verify_ledger(con, store=store)
    assert [(f.kind, f.subject) for f in report.findings] == [("shard", f"s3://{s3_bucket}/{key}")]
    with connect(ledger_copy, read_only=True) as con:  # an object-store location is recorded as its URI
        assert con.execute("SELECT count(*) FROM shard_files WHERE uri LIKE 's3://%'").fetchone()[0] >= 1
