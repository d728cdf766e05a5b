"""How linernotes' costs grow with the catalog: 10k, 100k and 1M tracks.

Per size, in a fresh process and a fresh ledger: a generated delivery (tracks, recordings,
deals, rights controllers, contributors, parties, consents, opt-out matches, duplicates; the
same generator as bench/policy_eval.py) is bulk-loaded through the write path (one command, every
row sealed and bound to its audit entry), then timed: policy evaluation of the whole catalog,
release creation (which re-evaluates and freezes the allowed tracks), lineage trace of single
recordings, and queries of a fingerprint index holding one synthetic fingerprint per track
(audio would take days at 1M). Peak RSS is the process's own. The growth exponent between two
sizes is log(t2/t1) / log(n2/n1); n log n corresponds to ~1.08-1.10 between these sizes.

    python bench/scale.py [--sizes 10000,100000,1000000] [--threads 2] [--out bench/results/scale.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ON = date(2026, 3, 1)
PURPOSE = "UseForTrainingGenerativeAI"
TERRITORY = "DE"
ML = "bench.ml"
FP_ITEMS = 64  # ~8 s of Chromaprint items per track
FP_QUERY_ITEMS = 48
TRACE_QUERIES = 20
INDEX_QUERIES = 200
STAGES = ("ingest", "policy", "release", "trace", "index_query")
LABELS = {"ingest": "ingest (generate + sealed bulk load)", "policy": "policy evaluation", "release": "release creation",
          "trace": "lineage trace (1 ISRC, median)", "index_query": "index query (median)"}


def _synthetic_fingerprints(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2**32, size=(n, FP_ITEMS), dtype=np.uint32)


def run_one(n: int, workdir: Path, threads: int) -> dict[str, Any]:
    from fingerprinting.index import FingerprintIndex
    from licensing.evaluate import evaluate_catalog
    from licensing.policy import load_policy
    from licensing.releases import propose_release
    from lineage.trace import trace_isrc
    from licensing.synthetic import generate_catalog
    from store.database import connect

    workdir.mkdir(parents=True, exist_ok=True)
    ledger = workdir / "linernotes.duckdb"
    (workdir / "roles.yaml").write_text(f"users:\n  {ML}: [ml_engineer]\n  bench: [admin]\n", encoding="utf-8")
    out: dict[str, Any] = {"n": n}

    t0 = time.perf_counter()
    with connect(ledger) as con:
        con.execute(f"SET threads = {threads}")
        generate_catalog(con, tracks=n, seed=2026, on_date=ON, delivery_id=f"synthetic-{n}")
        out["rows"] = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT table_name LIKE '%\\_\\_history' ESCAPE '\\'"
        ).fetchall()}
    out["ingest"] = out["generate_s"] = time.perf_counter() - t0
    if out["rows"].get("tracks") != n:
        raise RuntimeError(f"bulk load incomplete: {out['rows']}")

    policy = load_policy()
    with connect(ledger) as con:
        con.execute(f"SET threads = {threads}")
        t0 = time.perf_counter()
        summary = evaluate_catalog(con, policy, purpose=PURPOSE, territory=TERRITORY, on_date=ON, actor="bench")
        out["policy"] = time.perf_counter() - t0
        out["allowed"] = summary.allowed

        t0 = time.perf_counter()
        release = propose_release(con, purpose=PURPOSE, territory=TERRITORY, on_date=ON, actor=ML, policy=policy,
                                  release_id=f"rel-{n}")
        out["release"] = time.perf_counter() - t0
        out["release_tracks"] = release.track_count

        isrcs = [r[0] for r in con.execute(
            "SELECT t.isrc FROM release_tracks r JOIN tracks t USING (track_id) WHERE r.release_id = ? "
            "ORDER BY hash(t.isrc) LIMIT ?", [f"rel-{n}", TRACE_QUERIES]).fetchall()]
        times = []
        for isrc in isrcs:
            t0 = time.perf_counter()
            trace = trace_isrc(con, isrc)
            times.append(time.perf_counter() - t0)
            if not trace["releases"]:
                raise RuntimeError(f"trace of {isrc} lost its release")
        out["trace"] = statistics.median(times)

    rng = np.random.default_rng(n)
    index_dir = workdir / "fingerprint-index"
    t0 = time.perf_counter()
    with FingerprintIndex.open(index_dir) as index:
        for start in range(0, n, 100_000):
            block = _synthetic_fingerprints(min(100_000, n - start), rng)
            for i, items in enumerate(block):
                index.add(f"trk_{start + i:016x}", items)
            index.commit()
    out["index_build_s"] = time.perf_counter() - t0
    picks = rng.integers(0, n, INDEX_QUERIES)
    times, hits = [], 0
    with FingerprintIndex.open(index_dir) as index:
        for doc in picks:
            items = index.items(f"trk_{doc:016x}")
            start = int(rng.integers(0, FP_ITEMS - FP_QUERY_ITEMS + 1))
            query = items[start:start + FP_QUERY_ITEMS].copy()
            flips = rng.random((FP_QUERY_ITEMS, 32)) < 0.05
            query ^= (flips * (1 << np.arange(32, dtype=np.uint64))).sum(axis=1).astype(np.uint32)
            t0 = time.perf_counter()
            matches = index.query(query, limit=1)
            times.append(time.perf_counter() - t0)
            hits += bool(matches) and matches[0].ref == f"trk_{doc:016x}"
    out["index_query"] = statistics.median(times)
    out["index_hit_rate"] = hits / INDEX_QUERIES
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _exponent(t1: float, t2: float, n1: int, n2: int) -> float:
    return math.log(t2 / t1) / math.log(n2 / n1)


def _nlogn_exponent(n1: int, n2: int) -> float:
    return _exponent(n1 * math.log(n1), n2 * math.log(n2), n1, n2)


def _fmt_time(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def render(results: list[dict[str, Any]], command: str, load: str) -> str:
    sizes = [r["n"] for r in results]
    head = "| stage | " + " | ".join(f"{n:,}" for n in sizes) + " | " + " | ".join(
        f"exp {a // 1000}k→{b // 1000}k" for a, b in zip(sizes, sizes[1:])) + f" | largest vs anchor ({sizes[0]:,}) |"
    lines = [head, "|" + "---|" * (len(sizes) * 2 + 1)]
    worse: list[str] = []
    for stage in STAGES:
        cells = [_fmt_time(r[stage]) for r in results]
        exps = []
        for a, b in zip(results, results[1:]):
            e = _exponent(a[stage], b[stage], a["n"], b["n"])
            bound = _nlogn_exponent(a["n"], b["n"])
            exps.append(f"{e:.2f}" + (" (> n log n)" if e > bound + 0.1 else ""))
            if e > bound + 0.1:
                worse.append(f"{stage} {a['n']:,}→{b['n']:,}: {e:.2f}")
        ratio = f"{results[-1][stage] / results[0][stage]:.1f}x for {sizes[-1] // sizes[0]}x tracks"
        lines.append(f"| {LABELS[stage]} | " + " | ".join(cells) + " | " + " | ".join(exps) + f" | {ratio} |")
    mem = [r["peak_rss_mb"] for r in results]
    lines.append("| peak RSS | " + " | ".join(f"{m:,.0f} MiB" for m in mem) + " | " + " | ".join(
        f"{_exponent(a, b, x['n'], y['n']):.2f}" for a, b, x, y in zip(mem, mem[1:], results, results[1:]))
        + f" | {mem[-1] / mem[0]:.1f}x |")
    detail = ["", "| size | generate | allowed / released | index build | index hit rate | rows loaded |",
              "|---|---|---|---|---|---|"]
    for r in results:
        detail.append(f"| {r['n']:,} | {_fmt_time(r['generate_s'])} | {r['allowed']:,} / {r['release_tracks']:,} | "
                      f"{_fmt_time(r['index_build_s'])} | {r['index_hit_rate']:.0%} | {sum(r['rows'].values()):,} |")
    bounds = ", ".join(f"{a // 1000}k→{b // 1000}k {_nlogn_exponent(a, b):.2f}" for a, b in zip(sizes, sizes[1:]))
    verdict = ("nothing grows worse than n log n (exponent within 0.1 of the n log n exponent: " + bounds + ")"
               if not worse else "grows worse than n log n: " + "; ".join(worse) + f" (n log n: {bounds})")
    return "\n".join([f"command: {command}", f"load: {load}", "", *lines, *detail, "", verdict])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.workdir, args.threads)), flush=True)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="linernotes-scale-"))
    load_before = os.getloadavg()
    results = []
    try:
        for n in sizes:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--workdir", str(workdir / str(n)),
                                   "--threads", str(args.threads)], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                sys.exit(f"size {n} failed:\n{proc.stderr[-4000:]}")
            results.append(json.loads(line[len("RESULT "):]))
            print(f"{n:,} tracks done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            shutil.rmtree(workdir / str(n), ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    command = "PYTHONPATH=. .venv/bin/python bench/scale.py " + " ".join(sys.argv[1:])
    load = (f"{os.cpu_count()} CPUs, DuckDB threads={args.threads}; load average before "
            f"{load_before[0]:.2f}, after {load_after[0]:.2f}")
    table = render(results, command.strip(), load)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("# Scale: 10k, 100k and 1M tracks\n\n```\n" + table + "\n```\n", encoding="utf-8")


if __name__ == "__main__":
    main()
