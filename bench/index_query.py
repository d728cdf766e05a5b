"""Query latency, build time and memory of the fingerprint index at catalog scale, with realistic distractors.

Indexes the real demo catalog (whole-file fingerprints) plus distractors up to ``--size``.
Distractors are derived from real audio that is not in the catalog (the freely licensed Debian
music packages of bench/_audio.py): those tracks are fingerprinted at 11 playback speeds
(0.90-1.10), and each distractor splices 3-6 chunks of 15-60 s of these fingerprints, with
per-bit flips at a rate chosen so that the distractors' keys cluster like the real catalog's
(the clustering of each set is printed: real music's keys are far from uniform, which is what
makes posting lists long). Queries are fingerprints of real 10 s and 30 s audio excerpts of
catalog tracks (fingerprinted from the excerpt's own samples, not cut from the track's items)
and whole catalog tracks; each must find its source first.

    python bench/index_query.py [--size 100000] [--queries 400] [--workdir DIR] [--batch 10000]

``--batch`` is how many fingerprints each commit adds (one segment each). With a batch of
100,000 a 1,000,000-fingerprint index is ten segments that are never merged, so the build
holds one batch in memory at a time; smaller batches are merged as they accumulate, and a merge
near 1M holds most of the index in memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _audio import PCM_RATE, demo_files, noncatalog_files, pcm  # noqa: E402

from fingerprinting.batch import fingerprint_many  # noqa: E402
from fingerprinting.chromaprint import SILENCE_ITEM, fingerprint_samples  # noqa: E402
from fingerprinting.index import DEFAULT_KEY_BITS, FingerprintIndex  # noqa: E402

BATCH = 10_000
POOL_SPEEDS = tuple(round(0.90 + 0.02 * k, 2) for k in range(11))
CACHE = Path.home() / ".cache" / "linernotes" / "bench"


def _items_at_speed(x: np.ndarray, speed: float) -> np.ndarray:
    """Chromaprint items of 22050 Hz float audio played at ``speed``."""
    y = signal.resample_poly(x, round(1000 / speed), 2000)  # 22050 -> 11025 Hz, stretched by 1/speed
    return fingerprint_samples(np.clip(y * 32767, -32768, 32767).astype(np.int16))


def key_clustering(fingerprints: list[np.ndarray]) -> float:
    """How many more pairs of indexed items share a key than uniformly random 28-bit keys would.

    Keys as the index takes them (top 28 bits, silence and immediate repeats skipped); the
    number of same-key pairs divided by its expectation for as many uniform random keys. A
    query's posting lists grow with it.
    """
    parts = []
    for f in fingerprints:
        k = f[f != SILENCE_ITEM] >> np.uint32(32 - DEFAULT_KEY_BITS)
        parts.append(k[np.r_[True, k[1:] != k[:-1]]] if len(k) else k)
    keys = np.concatenate(parts)
    _, counts = np.unique(keys, return_counts=True)
    pairs = float((counts.astype(np.float64) * (counts - 1) / 2).sum())
    expected = len(keys) * (len(keys) - 1) / 2 / 2**DEFAULT_KEY_BITS
    return pairs / expected


def make_pool() -> list[np.ndarray]:
    """Fingerprints of real non-catalog music at several playback speeds."""
    pool = []
    for path in noncatalog_files(CACHE):
        try:
            x = pcm(path, CACHE)
        except Exception:  # noqa: BLE001 - a file FFmpeg cannot read is left out of the pool
            continue
        pool += [_items_at_speed(x, s) for s in POOL_SPEEDS]
    return [p for p in pool if len(p) > 600]


def distractor(pool: list[np.ndarray], rng: np.random.Generator, flip: float) -> np.ndarray:
    """3-6 chunks of 15-60 s from the pool, spliced, with each bit flipped at rate ``flip``."""
    parts = []
    for _ in range(int(rng.integers(3, 7))):
        src = pool[int(rng.integers(len(pool)))]
        length = min(len(src) - 1, int(rng.uniform(15, 60) * 8))
        start = int(rng.integers(0, len(src) - length))
        parts.append(src[start:start + length])
    items = np.concatenate(parts)
    if flip > 0:
        bits = rng.random((len(items), 32)) < flip
        items = items ^ (bits * (1 << np.arange(32, dtype=np.uint64))).sum(axis=1).astype(np.uint32)
    return items


def calibrate_flip(pool: list[np.ndarray], real_items: list[np.ndarray], rng: np.random.Generator) -> float:
    """The bit-flip rate at which distractors cluster like the real catalog (same number of items)."""
    target = key_clustering(real_items)
    total = sum(len(x) for x in real_items)
    best, best_gap = 0.0, float("inf")
    print(f"key clustering vs uniform random keys (same number of items, {total}): real catalog {target:.1f}x")
    for flip in (0.0, 0.01, 0.02, 0.03, 0.05, 0.08):
        sample, n = [], 0
        while n < total:
            sample.append(distractor(pool, rng, flip))
            n += len(sample[-1])
        c = key_clustering(sample)
        print(f"  distractors with bit-flip rate {flip:.2f}: {c:.1f}x")
        if abs(np.log(c / target)) < best_gap:
            best, best_gap = flip, abs(np.log(c / target))
    xor = [np.roll(x, int(rng.integers(len(x)))) ^ np.uint32(rng.integers(1, 2**32, dtype=np.uint64) | 0x01010101)
           for x in real_items if len(x)]
    print(f"  (the earlier synthetic distractors, real items XOR a random mask: {key_clustering(xor):.1f}x)")
    print(f"chosen bit-flip rate: {best:.2f}")
    return best


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
    parser.add_argument("--batch", type=int, default=BATCH, help="fingerprints added per commit (segment)")
    parser.add_argument("--query-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rng = np.random.default_rng(7)

    real = list(fingerprint_many(demo_files(), max_seconds=None))
    real_items = [o.fingerprint.items if o.fingerprint is not None else np.zeros(0, np.uint32) for o in real]
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
    pool = make_pool()
    print(f"distractor pool: {len(pool)} fingerprints of non-catalog music at {len(POOL_SPEEDS)} speeds, "
          f"{sum(len(p) for p in pool) / 8 / 3600:.1f} h ({time.perf_counter() - t0:.0f} s to make)")
    flip = calibrate_flip(pool, real_items, rng)

    t0 = time.perf_counter()
    index = FingerprintIndex.open(args.workdir)
    for i, items in enumerate(real_items):
        if len(items):
            index.add(f"real:{i}", items)
    total_items = sum(len(x) for x in real_items)
    for n in range(len(real_items), args.size):
        items = distractor(pool, rng, flip)
        index.add(f"distractor:{n}", items)
        total_items += len(items)
        if (n + 1) % args.batch == 0:
            index.commit()
    index.commit()
    build_s = time.perf_counter() - t0
    disk_mb = sum(p.stat().st_size for p in args.workdir.rglob("*") if p.is_file()) / 2**20
    print(f"index: {args.size} fingerprints ({len(real_items)} real, whole files; {args.size - len(real_items)} "
          f"distractors from real audio), {total_items / 1e6:.1f} M items, {disk_mb:.0f} MiB on disk")
    print(f"build {build_s:.1f} s, distractor generation included (commits every {args.batch}; peak RSS of the build "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


def _queries(args: argparse.Namespace, real_items: list[np.ndarray], rng: np.random.Generator) -> None:
    audio = [pcm(p, CACHE) for p in demo_files()]
    usable = [i for i, x in enumerate(audio) if len(x) > 31 * PCM_RATE and len(real_items[i])]
    kinds = ("10 s audio excerpt", "30 s audio excerpt", "whole track")
    queries = []
    for q in range(args.queries):
        kind = kinds[q % 3]
        i = usable[int(rng.integers(len(usable)))]
        if kind == "whole track":
            queries.append((kind, i, real_items[i]))
            continue
        seconds = 10 if kind.startswith("10") else 30
        start = int(rng.integers(0, len(audio[i]) - seconds * PCM_RATE))
        queries.append((kind, i, _items_at_speed(audio[i][start:start + seconds * PCM_RATE], 1.0)))
    del audio
    gc.collect()
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    index = FingerprintIndex.open(args.workdir)
    open_s = time.perf_counter() - t0
    latencies: dict[str, list[float]] = {k: [] for k in kinds}
    correct = {k: 0 for k in latencies}
    for kind, i, items in queries:
        t = time.perf_counter()
        matches = index.query(items, limit=5)
        latencies[kind].append((time.perf_counter() - t) * 1000)
        correct[kind] += bool(matches) and matches[0].ref == f"real:{i}"

    disk_mb = sum(p.stat().st_size for p in args.workdir.rglob("*") if p.is_file()) / 2**20
    segments = len(json.loads((args.workdir / "manifest.json").read_text())["segments"])
    print(f"queried index: {len(index)} fingerprints in {segments} segments, {disk_mb:.0f} MiB on disk; "
          f"reopen {open_s * 1000:.0f} ms")
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
          f"the index; process peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB with the query audio decoded); goals p50 < 10 ms, "
          "p99 < 50 ms, RSS < 2 GB")


if __name__ == "__main__":
    main()
