"""Trace queries on a large generated history: p50/p99 per query against the 50 ms goal.

Generates, directly in DuckDB with set-based INSERT ... SELECT (no per-row Python), a ledger of
100,000 tracks (fingerprints, contributors, deals with split shares, consents, three decisions each
over time), 10 releases of 10,000 tracks, one shard build per release cut into 10 crops per track
(1,000,000 samples in 512-row shards), and 100 training runs (10 per release) with their exposure
and attribution rows. Rows are inserted in random order so no query profits from insertion order.

Then it stores every run's and release's trace snapshot the way a completing run does, and reports
that cost separately (it is paid once per run, not per query), and times, on random keys, the
public ``lineage.trace`` functions the CLI calls: ``trace_*_json`` for ``--json`` (the goal), the
``trace_*`` dictionaries for Python callers, ``--live`` (no snapshot, everything from the ledger),
and the CLI's whole path with a fresh read-only connection per call.

The anchor is a point lookup of one track by ISRC in the same ledger: the floor of any trace.

    python bench/trace_query.py [--tracks 100000] [--runs 100] [--crops 10] [--repeat 50] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from store.ledger import Writer, command  # noqa: E402
from store.roles import RoleBook  # noqa: E402

from lineage.trace import (snapshot_model, snapshot_release, trace_isrc, trace_isrc_json,  # noqa: E402
                           trace_model, trace_model_json, trace_release, trace_release_json)
from store.database import connect  # noqa: E402

GOAL_MS = 50.0


def generate(con: duckdb.DuckDBPyConnection, *, tracks: int, releases: int, runs: int, crops: int) -> dict[str, int]:
    """Fill an empty ledger with a synthetic history; every statement is set-based."""
    per_release = tracks // releases
    rows_per_shard = 512
    sql = [
        f"CREATE TEMP TABLE n AS SELECT range AS i FROM range({tracks}) ORDER BY hash(range)",
        "INSERT INTO deliveries SELECT 'dlv-' || d, 'bench', TIMESTAMPTZ '2026-01-01' + to_days(d::INT), "
        "md5(d::VARCHAR) || md5(d::VARCHAR || 'x'), NULL, 0 FROM range(100) t(d)",
        "INSERT INTO tracks (track_id, delivery_id, isrc, title, artists, source_path, audio_sha256, duration_s, "
        "ingested_at) SELECT printf('trk_%016x', i), 'dlv-' || (i % 100), printf('ZZBEN%02d%05d', 26 + i // 100000, "
        "i % 100000), 'Track ' || i, ['Artist ' || (i % 10000)], '/audio/' || i || '.flac', "
        "md5(i::VARCHAR) || md5(i::VARCHAR || 'a'), 180.0, TIMESTAMPTZ '2026-01-01' FROM n",
        "INSERT INTO fingerprints SELECT printf('trk_%016x', i), 1, 180.0, 120.0, [i::UINTEGER], "
        "'AQAA' || md5(i::VARCHAR), TIMESTAMPTZ '2026-01-02', 'dlv-' || (i % 100), '/audio/' || i || '.flac', "
        "md5(i::VARCHAR) FROM n",
        "INSERT INTO contributors SELECT printf('trk_%016x', i), 'P-artist-' || (i % 10000), 'Artist ' || (i % 10000), "
        "'MainArtist' FROM n",
        "INSERT INTO parties SELECT 'P-artist-' || p, 'Artist ' || p, NULL, NULL FROM range(10000) t(p)",
        "INSERT INTO parties SELECT 'P-label-' || p, 'Label ' || p, NULL, NULL FROM range(100) t(p)",
        f"INSERT INTO deals SELECT 'D-' || d, 'P-label-' || (d % 100), 'contract:' || d, "
        "['UseForTrainingGenerativeAI'], ['Worldwide'], [], DATE '2025-01-01', NULL, ['attribution_required'], "
        f"'bench', TIMESTAMPTZ '2026-01-01' FROM range({tracks // 100}) t(d)",
        "INSERT INTO deal_recordings SELECT 'D-' || (i // 100), printf('ZZBEN%02d%05d', 26 + i // 100000, i % 100000) "
        "FROM n",
        "INSERT INTO rights_controllers SELECT 'D-' || (i // 100), printf('ZZBEN%02d%05d', 26 + i // 100000, "
        "i % 100000), 'P-label-' || ((i // 100) % 100), 60.0 FROM n",
        "INSERT INTO rights_controllers SELECT 'D-' || (i // 100), printf('ZZBEN%02d%05d', 26 + i // 100000, "
        "i % 100000), 'P-artist-' || (i % 10000), 40.0 FROM n",
        "INSERT INTO consents SELECT 'C-' || p, 'P-artist-' || p, 'all', NULL, 'allowed', 'allowed', 'allowed', "
        "'notAllowed', NULL, md5(p::VARCHAR) || md5(p::VARCHAR), TIMESTAMPTZ '2025-06-01', NULL, 'bench' "
        "FROM range(10000) t(p)",
        # Three evaluations over time per track: two allows and, for every 50th track, a later deny.
        "INSERT INTO decisions SELECT printf('dec_%016x_%d', i, k), printf('trk_%016x', i), "
        "printf('ZZBEN%02d%05d', 26 + i // 100000, i % 100000), 'UseForTrainingGenerativeAI', 'GB', "
        "DATE '2026-01-01' + to_days(k::INT), NOT (k = 2 AND i % 50 = 0), "
        "CASE WHEN k = 2 AND i % 50 = 0 THEN ['consent_revoked'] ELSE [] END, 'bench decision', 'p' || k, "
        "md5(i::VARCHAR || k), 'D-' || (i // 100), ['C-' || (i % 10000)], NULL, "
        "TIMESTAMPTZ '2026-01-01' + to_days(k::INT) FROM n, range(3) t(k) ORDER BY hash(i, k)",
        f"INSERT INTO releases SELECT 'rel-' || r, 'UseForTrainingGenerativeAI', 'GB', DATE '2026-01-02', 'p1', "
        f"'approved', 'ml', TIMESTAMPTZ '2026-01-02' + to_hours(r::INT), {per_release}, md5(r::VARCHAR) || "
        f"md5(r::VARCHAR) FROM range({releases}) t(r)",
        f"INSERT INTO approvals SELECT 'rel-' || r, 'rights', 'approve', 'ok', TIMESTAMPTZ '2026-01-03' "
        f"FROM range({releases}) t(r)",
        f"INSERT INTO release_tracks SELECT 'rel-' || (i // {per_release}), printf('trk_%016x', i), "
        f"printf('ZZBEN%02d%05d', 26 + i // 100000, i % 100000), printf('dec_%016x_1', i) FROM n "
        f"WHERE i < {per_release * releases}",
        # Samples: crops per track in release order, cut into fixed-size shards.
        f"CREATE TEMP TABLE samples AS SELECT i // {per_release} AS r, i, "
        f"(row_number() OVER (PARTITION BY i // {per_release} ORDER BY i, c) - 1) // {rows_per_shard} AS shard "
        f"FROM n, range({crops}) t(c) WHERE i < {per_release * releases}",
        f"INSERT INTO shard_builds SELECT 'rel-' || r || ':b', 'rel-' || r, 's3://bench/rel-' || r, "
        f"'s3://bench/rel-' || r || '/manifest.json', md5(r::VARCHAR) || md5(r::VARCHAR || 'm'), 'p1', 'bench', "
        f"'{{}}', 0, {per_release * crops}, {per_release}, 0, md5(r::VARCHAR) || md5('root'), FALSE, 'ml', "
        f"TIMESTAMPTZ '2026-01-04' FROM range({releases}) t(r)",
        "INSERT INTO shard_files SELECT 'rel-' || r || ':b', shard, 'rel-' || r, "
        "printf('s3://bench/rel-%d/shard-%05d.parquet', r, shard), md5(r || '-' || shard) || md5('s'), 1000000, "
        "count(*), md5(r || '-' || shard) || md5('r') FROM samples GROUP BY r, shard",
        "INSERT INTO shard_file_tracks SELECT 'rel-' || r || ':b', shard, printf('trk_%016x', i), "
        "printf('ZZBEN%02d%05d', 26 + i // 100000, i % 100000), count(*) FROM samples GROUP BY r, shard, i "
        "ORDER BY hash(i)",
        f"INSERT INTO training_runs (run_id, release_id, status, actor, model, config, manifest_uri, manifest_sha256, "
        "policy_hash, code_commit, torch_version, world_size, started_at, ended_at, metrics, samples_consumed, "
        "checkpoint_uri, checkpoint_sha256, record) SELECT printf('run-%03d', k), 'rel-' || (k % "
        f"{releases}), 'completed', 'ml', 'reference', '{{}}', 's3://bench/rel-' || (k % {releases}) || "
        "'/manifest.json', md5(k::VARCHAR), 'p1', 'c0ffee', '2.13.0', 2, TIMESTAMPTZ '2026-01-05' + to_hours(k::INT), "
        f"TIMESTAMPTZ '2026-01-05' + to_hours(k::INT + 1), '[]', {per_release * crops}, "
        f"'s3://bench/runs/' || k || '/model.pt', md5(k::VARCHAR || 'ckpt') || md5('c'), '{{}}' FROM range({runs}) t(k)",
        f"INSERT INTO training_exposure SELECT printf('run-%03d', k), printf('trk_%016x', i), "
        f"printf('ZZBEN%02d%05d', 26 + i // 100000, i % 100000), {crops}, 1.0 / {per_release} "
        f"FROM range({runs}) t(k) JOIN n ON i // {per_release} = k % {releases} ORDER BY hash(k, i)",
        f"INSERT INTO training_attribution SELECT run_id, 'P-label-' || l, 'Label ' || l, 100, 1000, 0.01 "
        f"FROM (SELECT DISTINCT run_id FROM training_runs), range(100) t(l)",
    ]
    with command(con, "bench", "catalog.ingest", "synthetic history",
                 roles=RoleBook(users={"bench": ("admin",)}, source="bench")) as w:
        for statement in sql:
            _run(w, statement)
    counts = {}
    for table in ("tracks", "decisions", "release_tracks", "shard_files", "shard_file_tracks", "training_runs",
                  "training_exposure"):
        counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    counts["samples"] = con.execute("SELECT sum(row_count) FROM shard_files").fetchone()[0]  # type: ignore[index]
    return counts


_INSERT = re.compile(r"^INSERT INTO (\w+)(?: \(([^)]*)\))? (SELECT .*)$", re.S)


def _run(w: Writer, statement: str) -> None:
    """A positional ``INSERT ... SELECT`` through the write path (rows sealed like any other)."""
    match = _INSERT.match(statement)
    if match is None:
        w.execute(statement)  # temp tables
        return
    table, columns, select = match.groups()
    names = [c.strip() for c in columns.split(",")] if columns else [
        r[0] for r in w.con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND column_name "
                                    "NOT IN ('row_sha256', 'audit_seq') ORDER BY column_index", [table]).fetchall()]
    w.insert_query(table, f"SELECT * FROM ({select}) AS q({', '.join(names)})")


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """p50 and p99 wall time in milliseconds over ``repeat`` calls after one warm-up."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(round(0.99 * (len(samples) - 1))))]


def build_snapshots(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, list[float], int]]:
    """Store every run's and release's snapshot: (kind, count, seconds each, bytes in all)."""
    out = []
    for kind, sql, build in (("model", "SELECT run_id FROM training_runs ORDER BY run_id", snapshot_model),
                             ("release", "SELECT release_id FROM releases ORDER BY release_id", snapshot_release)):
        seconds, size = [], 0
        for (key,) in con.execute(sql).fetchall():
            t0 = time.perf_counter()
            record = build(con, key, actor="bench")
            seconds.append(time.perf_counter() - t0)
            size += record.bytes
        out.append((kind, len(seconds), sorted(seconds), size))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--releases", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--crops", type=int, default=10, help="samples per track in a release")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--live-repeat", type=int, default=10, help="calls for the slow --live rows")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        (Path(tmp) / "roles.yaml").write_text("users:\n  bench: [admin]\n", encoding="utf-8")
        with connect(db) as con:
            con.execute(f"SET threads = {args.threads}")
            t0 = time.perf_counter()
            counts = generate(con, tracks=args.tracks, releases=args.releases, runs=args.runs, crops=args.crops)
            gen_s = time.perf_counter() - t0
            built = build_snapshots(con)
            con.execute("CHECKPOINT")
        with connect(db, read_only=True) as con:
            con.execute(f"SET threads = {args.threads}")
            isrcs = [r[0] for r in con.execute("SELECT isrc FROM release_tracks USING SAMPLE 200 ROWS").fetchall()]
            run_ids = [r[0] for r in con.execute("SELECT run_id FROM training_runs").fetchall()]
            release_ids = [r[0] for r in con.execute("SELECT release_id FROM releases").fetchall()]
            per_run = counts["training_exposure"] // args.runs
            per_release = args.tracks // args.releases

            def fresh(fn: Callable[..., Any], keys: list[str]) -> Callable[[], Any]:
                def call() -> Any:
                    with connect(db, read_only=True) as own:
                        own.execute(f"SET threads = {args.threads}")
                        return fn(own, rng.choice(keys))
                return call

            cases: list[tuple[str, Callable[[], Any], int]] = [
                ("point lookup: track by ISRC (anchor)",
                 lambda: con.execute("SELECT * FROM tracks WHERE isrc = ?", [rng.choice(isrcs)]).fetchall(),
                 args.repeat),
                ("trace isrc --json", lambda: trace_isrc_json(con, rng.choice(isrcs)), args.repeat),
                ("trace_isrc() dict", lambda: trace_isrc(con, rng.choice(isrcs)), args.repeat),
                (f"trace model --json ({per_run:,} tracks)", lambda: trace_model_json(con, rng.choice(run_ids)),
                 args.repeat),
                ("trace model --json --top 100",
                 lambda: trace_model_json(con, rng.choice(run_ids), limit=100), args.repeat),
                (f"trace_model() dict ({per_run:,} tracks)", lambda: trace_model(con, rng.choice(run_ids)),
                 args.repeat),
                ("trace model --json --live (no snapshot)",
                 lambda: trace_model_json(con, rng.choice(run_ids), use_snapshot=False), args.live_repeat),
                (f"trace release --json ({per_release:,} tracks)",
                 lambda: trace_release_json(con, rng.choice(release_ids)), args.repeat),
                (f"trace_release() dict ({per_release:,} tracks)",
                 lambda: trace_release(con, rng.choice(release_ids)), args.repeat),
                ("trace release --json --live (no snapshot)",
                 lambda: trace_release_json(con, rng.choice(release_ids), use_snapshot=False), args.live_repeat),
                ("CLI path: open ledger + trace isrc --json", fresh(trace_isrc_json, isrcs), args.live_repeat),
                ("CLI path: open ledger + trace model --json", fresh(trace_model_json, run_ids), args.live_repeat),
            ]
            results = [(name, *timed(fn, repeat), repeat) for name, fn, repeat in cases]
            load = os.getloadavg()
    anchor = results[0][1]
    print(f"ledger: {counts['tracks']:,} tracks, {counts['samples']:,} samples in {counts['shard_files']:,} shards, "
          f"{counts['training_runs']:,} runs, {counts['training_exposure']:,} exposure rows, "
          f"{counts['decisions']:,} decisions (generated in {gen_s:.1f} s); threads={args.threads}, "
          f"cpus={os.cpu_count()}, load average after the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    print()
    print("Precompute, once per run or release (not part of any query below):")
    print()
    print(f"| {'snapshot':<8} | {'count':>5} | {'p50 s':>6} | {'max s':>6} | {'total s':>7} | {'MB each':>7} |")
    print(f"|{'-' * 10}|{'-' * 7}|{'-' * 8}|{'-' * 8}|{'-' * 9}|{'-' * 9}|")
    for kind, n, seconds, size in built:
        print(f"| {kind:<8} | {n:5d} | {statistics.median(seconds):6.2f} | {seconds[-1]:6.2f} | {sum(seconds):7.1f} | "
              f"{size / max(n, 1) / 1e6:7.2f} |")
    print()
    print(f"Queries on random keys ({args.repeat} calls each, {args.live_repeat} for --live and the CLI path):")
    print()
    print(f"| {'query':<44} | {'p50 ms':>8} | {'p99 ms':>8} | {'p50 vs anchor':>13} | {'p99 vs 50 ms goal':>17} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|{'-' * 15}|{'-' * 19}|")
    for name, p50, p99, _ in results:
        verdict = "met" if p99 <= GOAL_MS else "NOT met"
        print(f"| {name:<44} | {p50:8.2f} | {p99:8.2f} | {p50 / anchor:12.1f}x | "
              f"{p99 / GOAL_MS:6.2f}x ({verdict:>7}) |")


if __name__ == "__main__":
    main()
