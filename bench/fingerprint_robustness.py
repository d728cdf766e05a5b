"""Opt-out matching under hard transforms: Chromaprint and landmarks, with calibrated thresholds.

The demo catalog (Wesnoth and Singularity music) is fingerprinted in full with both methods
and indexed. Positive queries are 5-10 s excerpts of catalog tracks put through one transform
each (telephone band, other music mixed in 6 and 10 dB below, low-bitrate Opus and MP3, a
clean excerpt, +-3% speed, white noise at 10 dB SNR). Negative queries are the same
transforms applied to music that is NOT in the catalog (freely licensed Debian music packages:
asc-music, hyperrogue-music, fetched with ``apt-get download``), plus those tracks in full.
The music mixed into positives comes from the same non-catalog packages.

A positive is recalled when the decision rule (:func:`fingerprinting.ledger.is_match`) accepts
a match to its source; any accepted match to another recording is a false match. The
calibration curve prints, for each landmark threshold, the recall per transform and the false
matches, and the highest score any negative query reached.

    python bench/fingerprint_robustness.py [--per-track 1] [--negatives-per-track 12]

Decoded source audio is cached (``--cache``) as 22050 Hz mono float32.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _audio import NONCATALOG_PACKAGES, PCM_RATE, demo_files, noncatalog_files, pcm, write  # noqa: E402

from fingerprinting.batch import fingerprint_many  # noqa: E402
from fingerprinting.chromaprint import ITEM_SECONDS  # noqa: E402
from fingerprinting.index import LANDMARK, FingerprintIndex  # noqa: E402
from fingerprinting.ledger import LANDMARK_THRESHOLD, MATCH_THRESHOLD, is_match  # noqa: E402

RATE = PCM_RATE
TRANSFORMS = ("telephone", "mix_-6dB", "mix_-10dB", "opus_16k", "mp3_32k", "excerpt", "speed_+3%", "speed_-3%",
              "noise_10dB")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1e-6


def make_query(name: str, x: np.ndarray, other: np.ndarray, path: Path, seed: int) -> Path:
    """Write the transformed excerpt ``x`` (22050 Hz mono) to a file and return its path."""
    a = x[None, :]
    if name == "telephone":
        sos = signal.butter(8, [300, 3400], btype="bandpass", fs=RATE, output="sos")
        band = signal.sosfilt(sos, x)
        return write(path.with_suffix(".wav"), signal.resample_poly(band, 160, 441)[None, :].astype(np.float32),
                     8000, "pcm_s16le")
    if name.startswith("mix_"):
        db = float(name[4:-2])
        o = np.resize(other, len(x))
        y = x + o * (_rms(x) / _rms(o)) * 10 ** (db / 20)
        return write(path.with_suffix(".flac"), (y / max(1.0, float(np.abs(y).max())))[None, :], RATE)
    if name == "opus_16k":
        return write(path.with_suffix(".opus"), signal.resample_poly(x, 320, 147)[None, :].astype(np.float32), 48000,
                     "libopus", 16_000)
    if name == "mp3_32k":
        return write(path.with_suffix(".mp3"), a, RATE, "libmp3lame", 32_000)
    if name == "excerpt":
        return write(path.with_suffix(".flac"), a, RATE)
    if name.startswith("speed_"):
        pct = float(name[6:-1])
        # Played faster: fewer samples at the same rate (pitch and tempo both change, like a turntable).
        up, down = (100, int(100 + pct)) if pct > 0 else (int(100 - pct), 100)
        return write(path.with_suffix(".flac"), signal.resample_poly(x, up, down)[None, :].astype(np.float32), RATE)
    if name == "noise_10dB":
        noise = np.random.default_rng(seed).standard_normal(len(x)).astype(np.float32)
        y = x + noise * (_rms(x) / 10 ** (10 / 20))
        return write(path.with_suffix(".flac"), (y / max(1.0, float(np.abs(y).max())))[None, :], RATE)
    raise ValueError(name)


def excerpt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.uniform(5.0, 10.0) * RATE)
    if len(x) <= length:
        return x
    for _ in range(20):  # avoid near-silent stretches (intros, fades): an excerpt must hold music
        start = int(rng.integers(0, len(x) - length))
        seg = x[start:start + length]
        if _rms(seg) > 0.25 * _rms(x):
            return seg
    return seg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-track", type=int, default=1, help="positive queries per catalog track and transform")
    parser.add_argument("--negatives-per-track", type=int, default=12,
                        help="negative queries per non-catalog track and transform")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "linernotes" / "bench")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "linernotes-fp-robustness")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--dump", type=Path, default=None,
                        help="write every query's candidates (JSON lines) here, to study other decision rules")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    catalog = demo_files()
    others = noncatalog_files(args.cache)
    args.workdir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    cp_index = FingerprintIndex.open(args.workdir / f"index-{time.time_ns()}")
    lm_index = FingerprintIndex.open(cp_index.root / "landmarks", method=LANDMARK)
    excluded = []
    for i, o in enumerate(fingerprint_many(catalog, max_seconds=None, workers=args.workers, landmarks=True)):
        if o.ok and o.fingerprint is not None and o.fingerprint.landmarks is not None:
            cp_index.add(str(i), o.fingerprint.items)
            lm_index.add(str(i), o.fingerprint.landmarks)
        else:
            excluded.append(f"{o.path.name} ({o.reason_code})")
    cp_index.commit()
    lm_index.commit()
    t_index = time.perf_counter() - t0

    t0 = time.perf_counter()
    readable = []
    for p in others:
        try:
            readable.append((p, pcm(p, args.cache)))
        except av.error.FFmpegError as exc:
            print(f"skipped non-catalog file {p.name}: {exc}")
    others = [p for p, _ in readable]
    other_pcm = [x for _, x in readable]
    qdir = args.workdir / "queries"
    qdir.mkdir(exist_ok=True)
    for old in qdir.iterdir():
        old.unlink()
    queries: list[tuple[str, str, int | None, Path]] = []  # (kind, transform, source or None, file)
    n = 0
    for ci, path in enumerate(catalog):
        if str(ci) not in cp_index:
            continue  # not fingerprintable (digital silence): nothing to recall
        x = pcm(path, args.cache)
        for name in TRANSFORMS:
            for _ in range(args.per_track):
                seg = excerpt(x, rng)
                mix = other_pcm[int(rng.integers(len(other_pcm)))]
                mix = excerpt(mix, rng)
                queries.append(("positive", name, ci, make_query(name, seg, mix, qdir / f"q{n:05d}", n)))
                n += 1
    for oi, x in enumerate(other_pcm):
        for name in TRANSFORMS:
            for _ in range(args.negatives_per_track):
                seg = excerpt(x, rng)
                mix = excerpt(other_pcm[(oi + 1 + int(rng.integers(len(other_pcm) - 1))) % len(other_pcm)], rng)
                queries.append(("negative", name, None, make_query(name, seg, mix, qdir / f"q{n:05d}", n)))
                n += 1
    for p in others:
        queries.append(("negative", "full_track", None, p))
    t_make = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = []  # (kind, transform, source, method, top ref, score, accepted)
    outcomes = fingerprint_many([q[3] for q in queries], max_seconds=None, workers=args.workers, landmarks=True)
    unusable = 0
    dump = args.dump.open("w") if args.dump else None
    for (kind, name, source, _), o in zip(queries, outcomes, strict=True):
        fp = o.fingerprint
        if fp is None or fp.landmarks is None:
            unusable += 1
            results.append((kind, name, source, "chromaprint", None, 0.0, False, 0.0))
            results.append((kind, name, source, "landmark", None, 0.0, False, 0.0))
            continue
        length_s = len(fp.items) * ITEM_SECONDS
        for method, index, items in (("chromaprint", cp_index, fp.items), ("landmark", lm_index, fp.landmarks)):
            matches = index.query(items, limit=5)
            if dump is not None:
                dump.write(json.dumps({"kind": kind, "transform": name, "source": source, "method": method,
                                       "length_s": length_s, "matches": [dataclasses.asdict(m) for m in matches]})
                           + "\n")
            # The strongest candidate the rule accepts, else the strongest one (for the curves).
            accepted = [m for m in matches if is_match(m, length_s)]
            top = accepted[0] if accepted else (matches[0] if matches else None)
            span_ok = top is not None and is_match(top, length_s, threshold=0.0, landmark_threshold=0.0)
            results.append((kind, name, source, method, None if top is None else int(top.ref),
                            0.0 if top is None else top.score, bool(accepted), top.score if span_ok else 0.0))
    t_query = time.perf_counter() - t0
    if dump is not None:
        dump.close()

    positives = [q for q in queries if q[0] == "positive"]
    negatives = [q for q in queries if q[0] == "negative"]
    print(f"catalog: {len(catalog)} tracks (demo: wesnoth-1.16-music, singularity-music); "
          f"non-catalog: {len(others)} tracks from {', '.join(NONCATALOG_PACKAGES)}")
    print(f"catalog tracks without a fingerprint (no positives made from them): {', '.join(excluded) or 'none'}")
    print(f"queries: {len(positives)} positive (5-10 s excerpts, {args.per_track} per track and transform), "
          f"{len(negatives)} negative ({len(negatives) - len(others)} transformed 5-10 s excerpts + "
          f"{len(others)} full tracks); {unusable} could not be fingerprinted")
    print(f"decision rule: Chromaprint score >= {MATCH_THRESHOLD} (1 - 2*BER) or landmark score >= "
          f"{LANDMARK_THRESHOLD:g} distinct agreeing hashes, each with its span rule (fingerprinting.ledger.is_match)")
    print()

    by = defaultdict(list)
    for r in results:
        by[(r[0], r[1], r[3])].append(r)
    print("## Recall and false matches per transform")
    print()
    print("| transform | queries | Chromaprint recall | landmark recall | either (product rule) | "
          "false matches (positives) | negative queries | false matches (negatives) |")
    print("|---|---|---|---|---|---|---|---|")
    total_false = 0
    for name in (*TRANSFORMS, "full_track"):
        pos_c, pos_l = by[("positive", name, "chromaprint")], by[("positive", name, "landmark")]
        neg_c, neg_l = by[("negative", name, "chromaprint")], by[("negative", name, "landmark")]
        hit_c = [r[6] and r[4] == r[2] for r in pos_c]
        hit_l = [r[6] and r[4] == r[2] for r in pos_l]
        either = [a or b for a, b in zip(hit_c, hit_l, strict=True)]
        wrong = sum(r[6] and r[4] != r[2] for r in pos_c + pos_l)
        neg_false = sum(r[6] for r in neg_c + neg_l)
        total_false += wrong + neg_false
        npos = len(pos_c)
        cells = [f"{sum(h)}/{npos} = {sum(h) / npos:.3f}" if npos else "-" for h in (hit_c, hit_l, either)]
        print(f"| {name} | {npos} | {' | '.join(cells)} | {wrong} | {len(neg_c)} | {neg_false} |")
    print()
    print(f"false matches in all: {total_false} over {len(negatives)} negative and {len(positives)} positive queries")

    lm_neg = np.array([r[7] for r in results if r[0] == "negative" and r[3] == "landmark"])
    cp_neg = np.array([r[7] for r in results if r[0] == "negative" and r[3] == "chromaprint"])
    lm_pos_right = np.array([r[7] for r in results if r[0] == "positive" and r[3] == "landmark" and r[4] == r[2]])
    print()
    print("## Score distributions (best candidate passing the span rule; 0 when none)")
    print()
    print("| scores | n | p50 | p99 | p99.9 | max |")
    print("|---|---|---|---|---|---|")
    for label, arr in (("landmark, negative queries", lm_neg), ("Chromaprint, negative queries", cp_neg),
                       ("landmark, positives' own source", lm_pos_right)):
        if len(arr):
            print(f"| {label} | {len(arr)} | {np.percentile(arr, 50):.3g} | {np.percentile(arr, 99):.3g} | "
                  f"{np.percentile(arr, 99.9):.3g} | {arr.max():.3g} |")
    print()
    print("## Calibration curve (landmark method alone)")
    print()
    print("| threshold | " + " | ".join(TRANSFORMS) + " | false matches |")
    print("|---|" + "---|" * (len(TRANSFORMS) + 1))
    for t in (5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80):
        cells = []
        for name in TRANSFORMS:
            rows = by[("positive", name, "landmark")]
            cells.append(f"{sum(r[4] == r[2] and r[7] >= t for r in rows) / max(1, len(rows)):.3f}")
        false = sum(r[7] >= t for r in results if r[3] == "landmark" and r[0] == "negative")
        false += sum(r[7] >= t and r[4] != r[2] for r in results if r[3] == "landmark" and r[0] == "positive")
        mark = " (used)" if t == LANDMARK_THRESHOLD else ""
        print(f"| {t}{mark} | " + " | ".join(cells) + f" | {false} |")
    print()
    print(f"highest landmark score of any negative query: {lm_neg.max() if len(lm_neg) else 0:g}; "
          f"threshold {LANDMARK_THRESHOLD:g} ({LANDMARK_THRESHOLD / max(1.0, float(lm_neg.max())):.1f}x above it)")
    print(f"time: index {t_index:.1f} s, make queries {t_make:.1f} s, fingerprint + query {t_query:.1f} s "
          f"({len(queries)} queries, {args.workers} workers)")


if __name__ == "__main__":
    main()
