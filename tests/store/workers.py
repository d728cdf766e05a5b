"""Worker bodies run in separate processes by the concurrency tests (importable for ``spawn``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def wait_for(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))


def audit_writer(db_path: str, worker: str, count: int, barrier: Any) -> tuple[int, float, float]:
    """Open the ledger afresh for every command, as a CLI command or a Dagster step does.

    Every worker starts when all of them are ready (``barrier``) and returns how many commands it ran
    and the window in which it was writing."""
    from store.database import connect
    from store.ledger import command
    from store.quarantine import Rejection, quarantine

    barrier.wait()
    started = time.time()
    for i in range(count):
        with connect(Path(db_path)) as con, command(con, "ops", "catalog.ingest", f"{worker}:{i}",
                                                   payload={"i": i}) as w:
            quarantine(w, [Rejection(f"{worker}:{i}", "test_concurrent", "written by a concurrent worker")],
                       stage="test")
    return count, started, time.time()


def fingerprint_rows(worker: str, batch: int, per_batch: int) -> Any:
    import pyarrow as pa

    ids = [f"{worker}-b{batch}-t{j}" for j in range(per_batch)]
    return pa.table({
        "track_id": pa.array(ids, pa.string()),
        "algorithm": pa.array([2] * per_batch, pa.int32()),
        "duration_s": pa.array([30.0] * per_batch, pa.float64()),
        "seconds_used": pa.array([30.0] * per_batch, pa.float64()),
        "items": pa.array([[batch, j, 7] for j in range(per_batch)], pa.list_(pa.uint32())),
        "fingerprint": pa.array([f"fp-{t}" for t in ids], pa.string()),
        "computed_at": pa.array([datetime.now(UTC)] * per_batch, pa.timestamp("us", tz="UTC")),
        "delivery_id": pa.array([worker] * per_batch, pa.string()),
    })


def outbox_worker(outbox_uri: str, worker: str, batches: int, per_batch: int, start_at: float,
                  settings_json: str | None) -> list[str]:
    """Write ``batches`` batches of fingerprint rows, each with one intended audit entry."""
    from store.objects import ObjectStore, ObjectStoreSettings
    from store.outbox import write_batch

    store = ObjectStore(ObjectStoreSettings.model_validate_json(settings_json) if settings_json else None)
    wait_for(start_at)
    ids = []
    for b in range(batches):
        header = write_batch(
            outbox_uri, worker=worker, command="fingerprint.store", store=store,
            tables={"fingerprints": fingerprint_rows(worker, b, per_batch)}, key=f"{worker}/b{b}",
            detail={"unit": f"{worker}/b{b}"})
        ids.append(header.batch_id)
    return ids
