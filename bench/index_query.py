"""Query latency, build time and memory of the fingerprint index at catalog scale.

Indexes the real demo catalog (whole-file fingerprints) plus synthetic distractors up to
``--size`` fingerprints. A distractor is a real fingerprint rotated in time and XORed with
a random 32-bit mask: it keeps the run structure and item statistics of real music but
is not the same audio. Queries are 30 s excerpts (with 5% of bits flipped) and whole
tracks of the real catalog; each must find its source first.

    python bench/index_query.py [--size 100000] [--queries 400] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _audio import demo_files  # noqa: E402

from fingerprinting.batch import fingerprint_many  # noqa: E402
from fingerprinting.index import FingerprintIndex  # noqa: E402

BATCH = 10_000


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "linernotes-fp-index-bench")
    parser.add_argument("--reuse", action="store_true", help="query the index left by an earlier run")
    parser.add_argument("--query-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rng = np.random.default_rng(7)

    real = [o for o in fingerprint_many(demo_files(), max_seconds=None) if o.ok]
    real_items = [o.fingerprint.items for o in real]  # type: ignore[union-attr]
    if args.query_only:
        _queries(args, real_items, rng)
        return
    if args.reuse and (args.workdir / "manifest.json").exists():
        print(f"reusing the index in {args.workdir}")
    else:
        _build(args, real_items, rng)
    # Queries run in a fresh process, as a lookup service would: build-time memory is not counted.
    subprocess.run([sys.executable, __file__, "--query-only", "--size", str(args.size), "--queries",
                    str(args.queries), "--workdir", str(args.workdir)], check=True)
    print("command:", " ".join(sys.argv))


def _build(args: argparse.Namespace, real_items: list[np.ndarray], rng: np.random.Generator) -> None:
    shutil.rmtree(args.workdir, ignore_errors=True)

    t0 = time.perf_counter()
    index = FingerprintIndex.open(args.workdir)
    for i, items in enumerate(real_items):
        index.add(f"real:{i}", items)
    total_items = sum(len(x) for x in real_items)
    for n in range(len(real_items), args.size):
        src = real_items[rng.integers(len(real_items))]
        mask = np.uint32(rng.integers(1, 2**32, dtype=np.uint64) | 0x01010101)
        items = np.roll(src, int(rng.integers(len(src)))) ^ mask
        index.add(f"synthetic:{n}", items)
        total_items += len(items)
        if (n + 1) % BATCH == 0:
            index.commit()
    index.commit()
    build_s = time.perf_counter() - t0
    disk_mb = sum(p.stat().st_size for p in args.workdir.rglob("*") if p.is_file()) / 2**20
    print(f"index: {args.size} fingerprints ({len(real_items)} real, whole files; {args.size - len(real_items)} "
          f"synthetic), {total_items / 1e6:.1f} M items, {disk_mb:.0f} MiB on disk")
    print(f"build {build_s:.1f} s (commits every {BATCH}; peak RSS of the build "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


def _queries(args: argparse.Namespace, real_items: list[np.ndarray], rng: np.random.Generator) -> None:
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    index = FingerprintIndex.open(args.workdir)
    open_s = time.perf_counter() - t0
    latencies: dict[str, list[float]] = {"30 s excerpt, 5% bits flipped": [], "whole track": []}
    correct = {k: 0 for k in latencies}
    for q in range(args.queries):
        i = int(rng.integers(len(real_items)))
        src = real_items[i]
        if q % 2 == 0:
            start = int(rng.integers(0, max(1, len(src) - 242)))
            items = src[start:start + 242].copy()
            flips = rng.random((len(items), 32)) < 0.05
            items ^= (flips * (1 << np.arange(32, dtype=np.uint64))).sum(axis=1).astype(np.uint32)
            kind = "30 s excerpt, 5% bits flipped"
        else:
            items = src
            kind = "whole track"
        t = time.perf_counter()
        matches = index.query(items, limit=5)
        latencies[kind].append((time.perf_counter() - t) * 1000)
        correct[kind] += bool(matches) and matches[0].ref == f"real:{i}"

    print(f"reopen {open_s * 1000:.0f} ms")
    print()
    print("| query | n | p50 ms | p99 ms | max ms | top-1 correct |")
    print("|---|---|---|---|---|---|")
    for kind, lat in latencies.items():
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
        print(f"| {kind} | {len(lat)} | {statistics.median(lat):.2f} | {p99:.2f} | {lat[-1]:.2f} | "
              f"{correct[kind]}/{len(lat)} |")
    print()
    print(f"query process resident memory: {_rss_mb():.0f} MiB after queries ({rss_before:.0f} MiB before opening "
          f"the index, peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB); goals p50 < 10 ms, "
          "p99 < 50 ms, RSS < 2 GB")


if __name__ == "__main__":
    main()
