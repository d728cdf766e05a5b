"""Whole-catalog policy evaluation: set-based DuckDB vs the per-track Python reference.

Generates a catalog (default 1,000,000 tracks with deals, shares, contributors, consents,
opt-outs, duplicates and withdrawals) into a ledger file, then evaluates a fresh copy of it
``--repeat`` times set-based with decisions written (best run reported: the machine may be
shared), and times the per-track reference loop on a sample to estimate its cost for the whole
catalog. The load average is printed before and after.

    python bench/policy_eval.py [--tracks 1000000] [--sample 50000] [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from licensing.evaluate import evaluate_catalog, evaluate_track, load_facts  # noqa: E402
from licensing.policy import load_policy  # noqa: E402
from licensing.synthetic import generate_catalog  # noqa: E402
from store.database import connect  # noqa: E402

ON = date(2026, 3, 1)
PURPOSE = "UseForTrainingGenerativeAI"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    policy = load_policy()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        source, work = Path(tmp) / "catalog.duckdb", Path(tmp) / "work.duckdb"
        (Path(tmp) / "roles.yaml").write_text("users:\n  bench: [admin]\n", encoding="utf-8")
        with connect(source) as con:
            con.execute(f"SET threads = {args.threads}")
            t0 = time.perf_counter()
            size = generate_catalog(con, tracks=args.tracks, seed=args.seed, on_date=ON)
            gen_s = time.perf_counter() - t0
            con.execute("CHECKPOINT")
        runs = []
        for _ in range(max(1, args.repeat)):
            shutil.copyfile(source, work)
            with connect(work) as con:
                con.execute(f"SET threads = {args.threads}")
                t0 = time.perf_counter()
                summary = evaluate_catalog(con, policy, purpose=PURPOSE, territory="DE", on_date=ON, actor="bench")
                runs.append(time.perf_counter() - t0)
        sql_s = min(runs)

        with connect(work) as con:
            sample_ids = [r[0] for r in con.execute(
                f"SELECT track_id FROM tracks USING SAMPLE reservoir({int(args.sample)} ROWS) REPEATABLE (1)").fetchall()]
            t0 = time.perf_counter()
            facts = list(load_facts(con, track_ids=sample_ids))
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            decisions = [evaluate_track(f, policy, purpose=PURPOSE, territory="DE", on_date=ON) for f in facts]
            loop_s = time.perf_counter() - t0
            current = dict(con.execute("SELECT track_id, decision_id FROM current_decisions WHERE purpose = ? AND "
                                       "territory = 'DE' AND on_date = ?", [PURPOSE, ON]).fetchall())
        mismatches = sum(current[d.track_id] != d.decision_id for d in decisions)
    load_after = os.getloadavg()

    per_track = (load_s + loop_s) / max(1, len(facts))
    python_full_s = per_track * args.tracks
    rows = [
        ("set-based DuckDB (anchor), decisions written", f"{args.tracks:,}", f"{sql_s:.2f}", "1.00x"),
        ("per-track Python: load facts + loop (sample)", f"{len(facts):,}", f"{load_s + loop_s:.2f}", ""),
        ("per-track Python, extrapolated to catalog", f"{args.tracks:,}", f"{python_full_s:.2f}",
         f"{python_full_s / sql_s:.1f}x slower"),
    ]
    print(f"catalog: {size.tracks:,} tracks, {size.deals:,} deals, {size.consents:,} consents, "
          f"{size.contributors:,} contributor rows (generated in {gen_s:.1f} s); threads={args.threads}, "
          f"cpus={os.cpu_count()}")
    print(f"set-based runs (s): {', '.join(f'{r:.2f}' for r in runs)}; best {sql_s:.2f}; "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"allowed {summary.allowed:,} / denied {summary.denied:,}; by reason: {summary.by_reason}")
    print(f"sample cross-check: {len(decisions):,} reference decisions, {mismatches} differ from the set-based ones")
    print()
    print(f"| {'evaluator':46} | {'tracks':>9} | {'seconds':>8} | {'ratio':>12} |")
    print(f"|{'-' * 48}|{'-' * 11}|{'-' * 10}|{'-' * 14}|")
    for name, n, s, ratio in rows:
        print(f"| {name:46} | {n:>9} | {s:>8} | {ratio:>12} |")
    print()
    print(f"target: {args.tracks:,} tracks in < 10 s -> {'met' if sql_s < 10 else 'NOT met'} ({sql_s:.2f} s)")


if __name__ == "__main__":
    main()
