"""Workers in separate processes write batches to an outbox (local or S3); the one writer applies each once."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pyarrow as pa
import pytest

from dagster_project.outbox import OUTBOX_HANDLERS
from lineage.integrity import verify_ledger
from store.audit import verify_chain
from store.database import connect
from store.objects import ObjectStore
from store.outbox import apply_outbox, load_snapshot, publish_snapshot, write_batch
from store.roles import RoleRefused
from tests.store.workers import fingerprint_rows, outbox_worker

WRITER = "linernotes-writer"


def _apply(con, outbox: str, store: ObjectStore | None = None):  # type: ignore[no-untyped-def]
    return apply_outbox(con, outbox, handlers=OUTBOX_HANDLERS, actor=WRITER, store=store)

WORKERS, BATCHES, PER_BATCH = 4, 6, 5


def _run_workers_while_applying(db: Path, outbox: str, store: ObjectStore, settings_json: str | None) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0
    passes = 0
    with ctx.Pool(WORKERS) as pool:
        results = [pool.apply_async(outbox_worker, (outbox, f"node{n}", BATCHES, PER_BATCH, start_at, settings_json))
                   for n in range(WORKERS)]
        deadline = time.monotonic() + 600  # a worker that died with a task never reports: fail, do not hang
        while not all(r.ready() for r in results):
            if time.monotonic() > deadline:
                pytest.fail(f"{sum(not r.ready() for r in results)} of {WORKERS} outbox workers had not finished "
                            "after 600 s")
            with connect(db) as con:
                _apply(con, outbox, store)
            passes += 1
            time.sleep(0.1)
        batch_ids = [b for r in results for b in r.get(timeout=120)]
    with connect(db) as con:
        _apply(con, outbox, store)
    assert passes > 1
    return batch_ids


def _assert_everything_once(db: Path, batch_ids: list[str]) -> None:
    with connect(db, read_only=True) as con:
        tracks = [t for (t,) in con.execute("SELECT track_id FROM fingerprints").fetchall()]
        applied = [b for (b,) in con.execute("SELECT batch_id FROM outbox_batches WHERE status = 'applied'").fetchall()]
        commands = con.execute("SELECT subject, actor, json_extract_string(payload, '$.detail.unit') FROM audit_log "
                               "WHERE action = 'fingerprint.store'").fetchall()
        report = verify_ledger(con)
    assert len(tracks) == len(set(tracks)) == WORKERS * BATCHES * PER_BATCH
    assert sorted(applied) == sorted(batch_ids) and len(set(batch_ids)) == WORKERS * BATCHES
    # one audited, sealed fingerprint.store command per batch, by the writer's account
    assert sorted(s for s, _, _ in commands) == sorted(f"outbox:{b}" for b in batch_ids)
    assert {a for _, a, _ in commands} == {WRITER}
    assert sorted(u for _, _, u in commands) == sorted(f"node{n}/b{b}" for n in range(WORKERS) for b in range(BATCHES))
    assert report.ok, [f.describe() for f in report.findings]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_parallel_workers_batches_applied_exactly_once(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if backend == "s3":
        settings = request.getfixturevalue("s3_settings")
        outbox = f"s3://{request.getfixturevalue('s3_bucket')}/ledger/outbox"
        store, settings_json = ObjectStore(settings), settings.model_dump_json()
    else:
        outbox, store, settings_json = str(tmp_path / "outbox"), ObjectStore(), None
    db = tmp_path / "ledger.duckdb"
    batch_ids = _run_workers_while_applying(db, outbox, store, settings_json)
    _assert_everything_once(db, batch_ids)

    # A worker that retries after a crash writes the same batch again: it is not applied twice.
    retried = outbox_worker(outbox, "node0", 1, PER_BATCH, 0.0, settings_json)
    assert retried[0] in batch_ids
    with connect(db) as con:
        again = _apply(con, outbox, store)
    assert again.applied == [] and again.already_applied == WORKERS * BATCHES
    _assert_everything_once(db, batch_ids)


def test_invalid_batches_are_rejected_with_reasons_and_nothing_half_applied(tmp_path: Path) -> None:
    outbox, store, db = str(tmp_path / "outbox"), ObjectStore(), tmp_path / "ledger.duckdb"
    good = write_batch(outbox, worker="w", command="fingerprint.store",
                       tables={"fingerprints": fingerprint_rows("w", 0, 3)})
    tampered = write_batch(outbox, worker="w", command="fingerprint.store",
                           tables={"fingerprints": fingerprint_rows("w", 1, 3)})
    target = Path(outbox, "data", tampered.batch_id, tampered.tables[0].name)
    target.write_bytes(target.read_bytes()[:-12] + b"not the same")
    # a batch asking to approve a release, or to write the audit log, is not on the allow-list
    approval = write_batch(outbox, worker="w", command="release.approve", tables={"approvals": pa.table({
        "release_id": ["rel-1"], "actor": ["rita"], "action": ["approve"], "comment": ["ok"],
        "recorded_at": pa.array([0], pa.timestamp("us", tz="UTC"))})})
    sneaky = write_batch(outbox, worker="w", command="audit.append", tables={"audit_log": pa.table({"seq": [999]})})
    unknown_col = write_batch(outbox, worker="w", command="fingerprint.store",
                              tables={"fingerprints": fingerprint_rows("w", 2, 2).append_column(
                                  "not_a_column", pa.array([1, 2]))})
    twice = write_batch(outbox, worker="w", command="fingerprint.store", tables={
        "fingerprints": pa.concat_tables([fingerprint_rows("w", 3, 1), fingerprint_rows("w", 3, 1)])})
    Path(outbox, "batches", "not-json.json").write_text("{", encoding="utf-8")

    with connect(db) as con:
        report = _apply(con, outbox, store)
        reasons = dict(con.execute("SELECT batch_id, reason_code FROM outbox_batches WHERE status = 'rejected'").fetchall())
        tracks = con.execute("SELECT count(*) FROM fingerprints").fetchone()[0]
        approvals = con.execute("SELECT count(*) FROM approvals").fetchone()[0]
        rejected_audits = con.execute("SELECT count(*) FROM audit_log WHERE action = 'outbox.rejected'").fetchone()[0]
        chain = verify_chain(con)
    assert report.applied == [good.batch_id] and tracks == 3 and approvals == 0
    assert reasons == {tampered.batch_id: "hash_mismatch", approval.batch_id: "command_not_allowed",
                       sneaky.batch_id: "command_not_allowed", unknown_col.batch_id: "unknown_column",
                       twice.batch_id: "duplicate_track", "not-json": "invalid_header"}
    assert rejected_audits == 6 and chain.ok


def test_a_batch_is_applied_only_if_the_writer_may_run_its_command(tmp_path: Path) -> None:
    outbox, db = str(tmp_path / "outbox"), tmp_path / "ledger.duckdb"
    batch = write_batch(outbox, worker="w", command="fingerprint.store",
                        tables={"fingerprints": fingerprint_rows("w", 0, 2)})
    with connect(db) as con:
        with pytest.raises(RoleRefused) as refused:  # an auditor may not apply batches
            apply_outbox(con, outbox, handlers=OUTBOX_HANDLERS, actor="aude.audit")
        assert refused.value.code == "role_missing"
        assert con.execute("SELECT count(*) FROM fingerprints").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM outbox_batches").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'outbox.apply.refused'").fetchone()[0] == 1
        assert _apply(con, outbox).applied == [batch.batch_id]


def test_a_fingerprint_computed_again_replaces_the_earlier_row(tmp_path: Path) -> None:
    outbox, db = str(tmp_path / "outbox"), tmp_path / "ledger.duckdb"
    write_batch(outbox, worker="w", command="fingerprint.store", tables={"fingerprints": fingerprint_rows("w", 0, 2)})
    redo = fingerprint_rows("w", 0, 2).set_column(4, "items", pa.array([[9], [9]], pa.list_(pa.uint32())))
    write_batch(outbox, worker="w", command="fingerprint.store", key="recomputed", tables={"fingerprints": redo})
    with connect(db) as con:
        report = _apply(con, outbox)
        items = con.execute("SELECT items FROM fingerprints ORDER BY track_id").fetchall()
        kept = con.execute("SELECT count(*) FROM fingerprints__history").fetchone()[0]
    assert len(report.applied) == 2 and items == [([9],), ([9],)] and kept == 2


def test_snapshot_gives_readers_on_other_nodes_the_same_rows(tmp_path: Path, s3_settings, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    store, db = ObjectStore(s3_settings), tmp_path / "ledger.duckdb"
    outbox = f"s3://{s3_bucket}/outbox"
    write_batch(outbox, worker="w", command="fingerprint.store", store=store,
                tables={"fingerprints": fingerprint_rows("w", 0, 4)})
    with connect(db) as con:
        _apply(con, outbox, store)
        manifest = publish_snapshot(con, f"s3://{s3_bucket}/snapshots/1", ["fingerprints", "audit_log"], store=store)
        head = con.execute("SELECT entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()[0]
    reader = load_snapshot(f"s3://{s3_bucket}/snapshots/1", store=store)
    try:
        assert reader.execute("SELECT count(*) FROM fingerprints").fetchone()[0] == 4
        assert verify_chain(reader).ok and manifest.audit_head == head
    finally:
        reader.close()
    store.put(f"s3://{s3_bucket}/snapshots/1/fingerprints.parquet", b"changed")
    with pytest.raises(ValueError, match="manifest hash"):
        load_snapshot(f"s3://{s3_bucket}/snapshots/1", store=store)
