"""Several processes opening the ledger and running commands at once lose nothing, and every row stays sealed."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from lineage.integrity import verify_ledger
from store.audit import verify_chain
from store.database import connect
from tests.store.workers import audit_writer


def test_concurrent_processes_each_entry_recorded_once_and_chain_verifies(tmp_path: Path) -> None:
    db = tmp_path / "ledger.duckdb"
    with connect(db) as con:
        con.execute("SELECT 1")
    workers, per_worker = 4, 15
    start_at = time.time() + 3.0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = [pool.apply_async(audit_writer, (str(db), f"w{n}", per_worker, start_at)) for n in range(workers)]
        # A reader takes turns with the writers while they run.
        readings = []
        while not all(r.ready() for r in results):
            with connect(db, read_only=True) as con:
                readings.append(con.execute("SELECT count(*) FROM audit_log").fetchone()[0])
            time.sleep(0.05)
        assert [r.get(timeout=120) for r in results] == [per_worker] * workers

    with connect(db, read_only=True) as con:
        subjects = [s for (s,) in con.execute(
            "SELECT subject FROM audit_log WHERE action = 'catalog.ingest' ORDER BY seq").fetchall()]
        chain = verify_chain(con)
        report = verify_ledger(con)
        rows = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    expected = {f"w{n}:{i}" for n in range(workers) for i in range(per_worker)}
    assert len(subjects) == len(expected) and set(subjects) == expected and rows == len(expected)
    assert chain.ok and chain.entries == len(expected)
    assert report.ok, [f.describe() for f in report.findings]  # every row sealed, every head signed
    # Entries from different processes interleave: they really ran at the same time.
    owners = [s.split(":")[0] for s in subjects]
    assert sum(a != b for a, b in zip(owners, owners[1:])) >= workers
    assert readings == sorted(readings)
