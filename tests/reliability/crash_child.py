"""A child process for the crash tests: runs a real pipeline step and can hold still at a named point.

``python -m tests.reliability.crash_child STEP PAUSE ARGS...`` prints ``PAUSED <point>`` and sleeps when
it reaches the point named by PAUSE (``none`` runs to the end), so the parent's SIGKILL lands exactly
there, never by timing luck.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any


def hold(point: str) -> None:
    print(f"PAUSED {point}", flush=True)
    time.sleep(3600)


def fingerprint_step(pause: str, db: str, delivery: str) -> None:
    import store.audit
    from catalog.ingest import ingest_delivery
    from fingerprinting.batch import fingerprint_many
    from fingerprinting.ledger import store_fingerprints
    from store.database import connect
    from store.paths import ledger_path

    def pausing(action: str, point: str) -> None:
        real = store.audit.append

        def append(*args: Any, **kwargs: Any) -> str:
            entry = real(*args, **kwargs)
            if kwargs.get("action") == action:
                hold(point)  # the command's transaction is open: its rows are written but not committed
            return entry

        store.audit.append = append  # type: ignore[assignment]

    if pause == "ingest_transaction":
        pausing("catalog.ingest", pause)
    if pause == "store_transaction":
        pausing("fingerprint.store", pause)
    with connect(Path(db)) as con:
        ingest_delivery(con, Path(delivery), delivery_id="d1", actor="tester")
        rows = con.execute("SELECT track_id, source_path FROM tracks ORDER BY track_id").fetchall()
        by_path = {Path(ledger_path(con, p)): t for t, p in rows}
    outcomes = []
    for i, outcome in enumerate(fingerprint_many(list(by_path), workers=2)):
        outcomes.append(outcome)
        print(f"fingerprinted {i + 1}", flush=True)
        if pause == "mid_batch" and i + 1 == 2:
            hold(pause)
    with connect(Path(db)) as con:
        store_fingerprints(con, [(by_path[o.path], o) for o in outcomes], "d1", actor="tester")
    print("DONE", flush=True)


def shards_step(pause: str, db: str, release_id: str, output: str, rows_per_shard: str) -> None:
    import shards.writer
    from schemas.shards import ShardConfig
    from shards.writer import build_shards
    from store.database import connect

    if pause == "after_first_shards":
        real_cut = shards.writer._cut
        seen: list[str] = []

        def cut(track: Any, *args: Any) -> Any:
            seen.append(track.track_id)
            if len(seen) > 3:  # a slow decode: the first shards are written, the rest wait
                hold(pause)
            return real_cut(track, *args)

        shards.writer._cut = cut
    if pause == "shard_rename":
        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            if Path(dst).name.startswith("shard-00002-"):
                hold(pause)  # shard 2 is fully in its temporary file, not yet under its name
            real_replace(src, dst)

        os.replace = replace  # type: ignore[assignment]
    if pause == "ledger_transaction":
        real_record = shards.writer._record

        def record(*args: Any, **kwargs: Any) -> None:
            real_record(*args, **kwargs)
            hold(pause)  # manifest written, the build's rows written inside its command, not yet committed

        shards.writer._record = record
    with connect(Path(db)) as con:
        build_shards(con, release_id, output_uri=output, actor="mira",
                     config=ShardConfig(rows_per_shard=int(rows_per_shard), crops_per_track=4))
    print("DONE", flush=True)


if __name__ == "__main__":
    step, pause_at, *rest = sys.argv[1:]
    {"fingerprint": fingerprint_step, "shards": shards_step}[step](pause_at, *rest)
