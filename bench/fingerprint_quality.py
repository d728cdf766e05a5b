"""Matching quality on the real demo catalog: transformed copies and excerpts against the index.

Every catalog track is fingerprinted in full and indexed; each transformed copy is
fingerprinted in full and queried. A copy is recalled when its source is the top match at
or above the decision threshold; any match at or above the threshold to a different
recording is a false match. The originals are also matched against each other.

    python bench/fingerprint_quality.py [--tracks N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _audio import TRANSFORMS, decode, demo_files  # noqa: E402

from fingerprinting.batch import fingerprint_many  # noqa: E402
from fingerprinting.index import FingerprintIndex  # noqa: E402
from fingerprinting.chromaprint import ITEM_SECONDS  # noqa: E402
from fingerprinting.ledger import MATCH_THRESHOLD, MIN_SPAN_S, is_match  # noqa: E402


def _make(args: tuple[Path, Path, int]) -> list[tuple[str, Path]]:
    source, outdir, seed = args
    made = []
    todo = {n: t for n, t in TRANSFORMS.items() if not list(outdir.glob(f"{seed:03d}-{n}.*"))}
    if todo:
        audio, rate = decode(source)
        for name, (fn, _) in todo.items():
            fn(audio, rate, outdir / f"{seed:03d}-{name}", seed)
    for name in TRANSFORMS:
        made.append((name, next(outdir.glob(f"{seed:03d}-{name}.*"))))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=0, help="use only the first N tracks (0: all)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "linernotes-fp-quality")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    files = demo_files()
    if args.tracks:
        files = files[: args.tracks]
    args.workdir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    originals = list(fingerprint_many(files, max_seconds=None, workers=args.workers))
    usable = [(i, o) for i, o in enumerate(originals) if o.ok]
    skipped = [(o.path.name, o.reason_code) for o in originals if not o.ok]
    shutil.rmtree(args.workdir / "index", ignore_errors=True)
    index = FingerprintIndex.open(args.workdir / "index")
    for i, o in usable:
        index.add(f"{i:03d}", o.fingerprint.items)  # type: ignore[union-attr]
    index.commit()
    t_index = time.perf_counter() - t0

    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        made = list(pool.map(_make, [(files[i], args.workdir, i) for i, _ in usable]))
    t_make = time.perf_counter() - t0

    stats = {name: {"n": 0, "hit": 0, "false": 0, "scores": []} for name in TRANSFORMS}
    false_examples: list[str] = []
    t0 = time.perf_counter()
    copies = [(i, name, path) for (i, _), group in zip(usable, made, strict=True) for name, path in group]
    outcomes = fingerprint_many([p for _, _, p in copies], max_seconds=None, workers=args.workers)
    for (i, name, path), outcome in zip(copies, outcomes, strict=True):
        s = stats[name]
        s["n"] += 1
        if not outcome.ok:
            continue
        q_items = outcome.fingerprint.items  # type: ignore[union-attr]
        matches = [m for m in index.query(q_items, limit=5) if is_match(m, len(q_items) * ITEM_SECONDS)]
        if matches and matches[0].ref == f"{i:03d}":
            s["hit"] += 1
            s["scores"].append(matches[0].score)
        wrong = [m for m in matches if m.ref != f"{i:03d}"]
        s["false"] += len(wrong)
        false_examples += [f"{path.name} -> {files[int(m.ref)].name} score {m.score:.3f}" for m in wrong]
    cross_false = []
    cross_max = 0.0
    for i, o in usable:
        for m in index.query(o.fingerprint.items, limit=5, exclude=f"{i:03d}"):  # type: ignore[union-attr]
            cross_max = max(cross_max, m.score)
            if is_match(m, len(o.fingerprint.items) * ITEM_SECONDS):  # type: ignore[union-attr]
                cross_false.append(f"{o.path.name} -> {files[int(m.ref)].name} score {m.score:.3f}")
    t_query = time.perf_counter() - t0

    print(f"catalog: {len(files)} tracks, {len(usable)} fingerprinted, skipped {skipped}")
    print(f"threshold: score >= {MATCH_THRESHOLD} (score = 1 - 2*BER) and span >= {MIN_SPAN_S} s "
          "(or 80% of the shorter recording, at least 2 s); "
          "fingerprints use the whole file")
    print()
    print("| transform | copies | recalled | recall | false matches | min score | median score |")
    print("|---|---|---|---|---|---|---|")
    full_n = full_hit = 0
    for name, s in stats.items():
        scores = sorted(s["scores"])
        med = scores[len(scores) // 2] if scores else float("nan")
        print(f"| {name} | {s['n']} | {s['hit']} | {s['hit'] / max(1, s['n']):.3f} | {s['false']} | "
              f"{(scores[0] if scores else float('nan')):.3f} | {med:.3f} |")
        if not TRANSFORMS[name][1]:
            full_n += s["n"]
            full_hit += s["hit"]
    ex = stats["excerpt_30s"]
    print()
    print(f"recall on full-length transforms: {full_hit}/{full_n} = {full_hit / max(1, full_n):.3f} (goal >= 0.99)")
    print(f"recall on 30 s excerpts: {ex['hit']}/{ex['n']} = {ex['hit'] / max(1, ex['n']):.3f} (goal >= 0.95)")
    total_false = sum(s["false"] for s in stats.values()) + len(cross_false)
    print(f"false matches between distinct recordings: {total_false} (goal 0); "
          f"highest score between distinct originals: {cross_max:.3f}")
    for line in false_examples + cross_false:
        print(f"  false: {line}")
    print(f"time: index {t_index:.1f} s, make copies {t_make:.1f} s, fingerprint+query copies {t_query:.1f} s")


if __name__ == "__main__":
    main()
