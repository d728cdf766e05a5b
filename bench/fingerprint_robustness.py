"""Opt-out matching under hard transforms: Chromaprint and landmarks, with calibrated thresholds.

The demo catalog (Wesnoth and Singularity music) is fingerprinted in full with both methods
and indexed. Positive queries are 5-10 s excerpts of catalog tracks put through one transform
each (telephone band, other music mixed in 6 and 10 dB below, low-bitrate Opus and MP3, a
clean excerpt, +-3% speed, white noise at 10 dB SNR). Negative queries are the same
transforms applied to music that is NOT in the catalog (freely licensed Debian music packages:
asc-music, hyperrogue-music, fetched with ``apt-get download``), plus those tracks in full.
The music mixed into positives comes from the same non-catalog packages.

Landmark lookups use the query's denser peaks (``fingerprinting.landmarks.query_landmarks``), as
the product does. A positive is recalled when the decision rule (:func:`fingerprinting.ledger.is_match`) accepts
a match to its source; any accepted match to another recording is a false match. The
calibration curve prints, for each landmark threshold, the recall per transform and the false
matches, and the highest score any negative query reached.

    python bench/fingerprint_robustness.py [--per-track 1] [--negatives-per-track 12] [--dump FILE]
    python bench/fingerprint_robustness.py --report-from FILE   # the tables again, from a dump

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
from fingerprinting.index import LANDMARK, FingerprintIndex, Match  # noqa: E402
from fingerprinting.landmarks import FANOUT, QUERY_FANOUT, bass_landmarks, query_landmarks  # noqa: E402
from fingerprinting.ledger import (  # noqa: E402
    CHROMAPRINT_SPAN_FLOOR_S,
    LANDMARK_THRESHOLD,
    MATCH_THRESHOLD,
    MIN_SPAN_S,
    SHORT_SPAN_THRESHOLD,
    is_match,
)

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


def low_share(x: np.ndarray, cutoff_hz: float = 300.0) -> float:
    """Share of the signal's energy below ``cutoff_hz`` (mixing is set by broadband RMS, so a track whose
    energy lies mostly in the bass keeps little of the band the landmarks read)."""
    block = 8192
    n = len(x) // block * block
    if n == 0:
        return 0.0
    power = (np.abs(np.fft.rfft(x[:n].reshape(-1, block) * np.hanning(block), axis=1)) ** 2).sum(axis=0)
    freqs = np.fft.rfftfreq(block, 1 / RATE)
    return float(power[freqs < cutoff_hz].sum() / max(power.sum(), 1e-12))


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
    parser.add_argument("--report-from", type=Path, default=None,
                        help="print the tables for the candidates of an earlier --dump (no fingerprinting)")
    args = parser.parse_args()
    if args.report_from is not None:
        report([json.loads(line) for line in args.report_from.open()])
        return
    rng = np.random.default_rng(args.seed)
    catalog = demo_files()
    others = noncatalog_files(args.cache)
    args.workdir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    cp_index = FingerprintIndex.open(args.workdir / f"index-{time.time_ns()}")
    lm_index = FingerprintIndex.open(cp_index.root / "landmarks", method=LANDMARK)
    excluded = []
    bands = np.zeros(2, dtype=np.int64)  # landmarks of the telephone band, of the bass band
    audio_s = 0.0
    for i, o in enumerate(fingerprint_many(catalog, max_seconds=None, workers=args.workers, landmarks=True)):
        if o.ok and o.fingerprint is not None and o.fingerprint.landmarks is not None:
            cp_index.add(str(i), o.fingerprint.items)
            lm_index.add(str(i), o.fingerprint.landmarks)
            bass = bass_landmarks(o.fingerprint.landmarks)
            bands += (int((~bass).sum()), int(bass.sum()))
            audio_s += o.fingerprint.seconds_used
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
    sources: dict[int, tuple[str, float]] = {}  # catalog track -> (file name, share of energy below 300 Hz)
    n = 0
    for ci, path in enumerate(catalog):
        if str(ci) not in cp_index:
            continue  # not fingerprintable (digital silence): nothing to recall
        x = pcm(path, args.cache)
        sources[ci] = (path.name, low_share(x))
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
    records = []  # one per query and method: its candidates (the --dump lines)
    outcomes = fingerprint_many([q[3] for q in queries], max_seconds=None, workers=args.workers, landmarks=True)
    for (kind, name, source, _), o in zip(queries, outcomes, strict=True):
        fp = o.fingerprint
        length_s = len(fp.items) * ITEM_SECONDS if fp is not None else 0.0
        for method, index in (("chromaprint", cp_index), ("landmark", lm_index)):
            if fp is None or fp.query_peaks is None:
                items, fanout = None, FANOUT
            elif method == "chromaprint":
                items, fanout = fp.items, FANOUT
            else:  # looked up as the product does: the query's denser peaks
                items, fanout = query_landmarks(fp.query_peaks), QUERY_FANOUT
            matches = [] if items is None else index.query(items, limit=5, fanout=fanout)
            records.append({"kind": kind, "transform": name, "source": source, "method": method,
                            "source_name": sources[source][0] if source is not None else None,
                            "source_low_share": sources[source][1] if source is not None else None,
                            "length_s": length_s, "usable": items is not None,
                            "matches": [dataclasses.asdict(m) for m in matches]})
    t_query = time.perf_counter() - t0
    if args.dump is not None:
        with args.dump.open("w") as dump:
            for r in records:
                dump.write(json.dumps(r) + "\n")

    positives = [q for q in queries if q[0] == "positive"]
    negatives = [q for q in queries if q[0] == "negative"]
    print(f"catalog: {len(catalog)} tracks (demo: wesnoth-1.16-music, singularity-music); "
          f"non-catalog: {len(others)} tracks from {', '.join(NONCATALOG_PACKAGES)}")
    print(f"catalog tracks without a fingerprint (no positives made from them): {', '.join(excluded) or 'none'}")
    print(f"catalog landmarks: {bands.sum():,} over {audio_s:,.0f} s of audio ({bands[0]:,} telephone band, "
          f"{bands[1]:,} bass: {bands[1] / max(1, bands[0]):.2f} more)")
    unusable = sum(not r["usable"] for r in records) // 2
    print(f"queries: {len(positives)} positive (5-10 s excerpts, {args.per_track} per track and transform), "
          f"{len(negatives)} negative ({len(negatives) - len(others)} transformed 5-10 s excerpts + "
          f"{len(others)} full tracks); {unusable} could not be fingerprinted")
    report(records)
    print(f"time: index {t_index:.1f} s, make queries {t_make:.1f} s, fingerprint + query {t_query:.1f} s "
          f"({len(queries)} queries, {args.workers} workers)")


def _candidates(r: dict) -> list[Match]:
    return [Match(**m) for m in r["matches"]]


def _span_ok(m: Match, length_s: float) -> bool:
    """Whether ``m`` passes the decision rule's span test (whatever its score)."""
    return is_match(m, length_s, threshold=0.0, landmark_threshold=0.0, short_span_threshold=0.0)


def report(records: list[dict]) -> None:
    """Print recall, false matches, score distributions and the calibration curves of one run's candidates."""
    print(f"decision rule (fingerprinting.ledger.is_match): Chromaprint score (1 - 2*BER) >= {MATCH_THRESHOLD} over "
          f"an overlap of {MIN_SPAN_S:g} s or more, >= {SHORT_SPAN_THRESHOLD} over a shorter one; or landmark score "
          f">= {LANDMARK_THRESHOLD:g} distinct agreeing hashes; each with its span rule (a Chromaprint overlap "
          f"never under {CHROMAPRINT_SPAN_FLOOR_S:g} s)")
    print("a false match is a query for which the rule accepts any recording other than its source "
          "(every accepted match is acted on, not only the best)")
    print()
    by: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in records:
        by[(r["kind"], r["transform"], r["method"])].append(r)

    def hits(r: dict, **rule: float) -> tuple[bool, bool]:
        """(source accepted, another recording accepted) under ``rule``."""
        accepted = [m.ref for m in _candidates(r) if is_match(m, r["length_s"], **rule)]
        return str(r["source"]) in accepted, any(ref != str(r["source"]) for ref in accepted)

    print("## Recall and false matches per transform")
    print()
    print("| transform | queries | Chromaprint recall | landmark recall | either (product rule) | "
          "false matches (positives) | negative queries | false matches (negatives) |")
    print("|---|---|---|---|---|---|---|---|")
    total_false = 0
    for name in (*TRANSFORMS, "full_track"):
        pos_c, pos_l = by[("positive", name, "chromaprint")], by[("positive", name, "landmark")]
        neg_c, neg_l = by[("negative", name, "chromaprint")], by[("negative", name, "landmark")]
        hc, hl = [hits(r) for r in pos_c], [hits(r) for r in pos_l]
        either = [a[0] or b[0] for a, b in zip(hc, hl, strict=True)]
        wrong = sum(a[1] or b[1] for a, b in zip(hc, hl, strict=True))
        neg_false = sum(hits(a)[1] or hits(b)[1] for a, b in zip(neg_c, neg_l, strict=True))
        total_false += wrong + neg_false
        npos = len(pos_c)
        cells = [f"{sum(h)}/{npos} = {sum(h) / npos:.3f}" if npos else "-"
                 for h in ([h[0] for h in hc], [h[0] for h in hl], either)]
        print(f"| {name} | {npos} | {' | '.join(cells)} | {wrong} | {len(neg_c)} | {neg_false} |")
    print()
    n_pos = len([r for r in records if r["kind"] == "positive"]) // 2
    n_neg = len([r for r in records if r["kind"] == "negative"]) // 2
    print(f"false matches in all: {total_false} over {n_neg} negative and {n_pos} positive queries")

    print()
    print("## Misses by catalog track (product rule)")
    print()
    print("Mixing is set by broadband RMS: a track whose energy lies mostly below 300 Hz keeps little of the "
          "300-3400 Hz band the landmarks read once other music is mixed in.")
    print()
    print("| catalog track | energy below 300 Hz | positives | missed | missed by transform |")
    print("|---|---|---|---|---|")
    per_track: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    shares: dict[str, float | None] = {}
    for name in TRANSFORMS:
        pairs = zip(by[("positive", name, "chromaprint")], by[("positive", name, "landmark")], strict=True)
        for a, b in pairs:
            track = a.get("source_name") or f"track {a['source']}"
            shares[track] = a.get("source_low_share")
            per_track[track][name].append(hits(a)[0] or hits(b)[0])
    missed = sorted(((sum(not h for v in t.values() for h in v), track) for track, t in per_track.items()),
                    key=lambda m: (-m[0], m[1]))
    for count, track in [m for m in missed if m[0]]:
        t = per_track[track]
        share = shares[track]
        by_name = ", ".join(f"{name} {sum(not h for h in t[name])}" for name in TRANSFORMS if not all(t[name]))
        print(f"| {track} | {'-' if share is None else f'{share:.2f}'} | {sum(len(v) for v in t.values())} | "
              f"{count} | {by_name} |")
    print()
    print(f"{sum(1 for m in missed if m[0])} of {len(missed)} catalog tracks account for every miss")

    def best(r: dict, own: bool) -> float:
        """Best span-passing score of the query's source (own) or of any other recording."""
        return max([m.score for m in _candidates(r) if _span_ok(m, r["length_s"]) and
                    (m.ref == str(r["source"])) == own], default=0.0)

    unrelated = {method: np.array([best(r, own=False) for r in records if r["method"] == method])
                 for method in ("chromaprint", "landmark")}
    lm_own = np.array([best(r, own=True) for r in records if r["kind"] == "positive" and r["method"] == "landmark"])
    print()
    print("## Score distributions (best candidate passing the span rule; 0 when none)")
    print()
    print("| scores | n | p50 | p99 | p99.9 | max |")
    print("|---|---|---|---|---|---|")
    for label, arr in (("landmark, unrelated recordings (every query)", unrelated["landmark"]),
                       ("Chromaprint, unrelated recordings (every query)", unrelated["chromaprint"]),
                       ("landmark, positives' own source", lm_own[lm_own > 0])):
        if len(arr):
            print(f"| {label} | {len(arr)} | {np.percentile(arr, 50):.3g} | {np.percentile(arr, 99):.3g} | "
                  f"{np.percentile(arr, 99.9):.3g} | {arr.max():.3g} |")

    print()
    print("## Chromaprint score by overlap span (candidates passing the span rule)")
    print()
    print("| overlap span | unrelated candidates | max | >= 0.7 | >= 0.8 | >= 0.85 | positives' own source | "
          "p1 | p10 | >= 0.85 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    cp = [(r, m) for r in records if r["method"] == "chromaprint" for m in _candidates(r) if _span_ok(m, r["length_s"])]
    for lo, hi in ((2, 4), (4, 6), (6, 8), (8, 10), (10, 30), (30, 1e9)):
        other = np.array([m.score for r, m in cp if m.ref != str(r["source"]) and lo <= m.span_s < hi])
        own = np.array([m.score for r, m in cp if r["kind"] == "positive" and m.ref == str(r["source"])
                        and lo <= m.span_s < hi])
        o = (f"{len(other)} | {other.max():.3f} | {(other >= 0.7).sum()} | {(other >= 0.8).sum()} | "
             f"{(other >= 0.85).sum()}") if len(other) else "0 | - | - | - | -"
        p = (f"{len(own)} | {np.percentile(own, 1):.3f} | {np.percentile(own, 10):.3f} | "
             f"{(own >= 0.85).mean():.3f}") if len(own) else "0 | - | - | -"
        print(f"| {lo}-{hi:g} s | {o} | {p} |".replace("1e+09", "inf"))
    print()
    print(f"## Calibration curve: Chromaprint threshold for overlaps under {MIN_SPAN_S:g} s "
          f"({MATCH_THRESHOLD} over longer ones)")
    print()
    print("Cells: Chromaprint recall / recall of the product rule (either method, landmark threshold "
          f"{LANDMARK_THRESHOLD:g}); false matches by Chromaprint.")
    print()
    print("| short-span threshold | " + " | ".join(TRANSFORMS) + " | false matches |")
    print("|---|" + "---|" * (len(TRANSFORMS) + 1))
    for t in (0.7, 0.75, 0.8, 0.82, 0.85, 0.9):
        cells = []
        for name in TRANSFORMS:
            pairs = list(zip(by[("positive", name, "chromaprint")], by[("positive", name, "landmark")], strict=True))
            c = [hits(a, short_span_threshold=t)[0] for a, _ in pairs]
            e = [x or hits(b)[0] for x, (_, b) in zip(c, pairs, strict=True)]
            cells.append(f"{np.mean(c):.3f} / {np.mean(e):.3f}")
        false = sum(hits(r, short_span_threshold=t)[1] for r in records if r["method"] == "chromaprint")
        mark = " (used)" if t == SHORT_SPAN_THRESHOLD else ""
        print(f"| {t}{mark} | " + " | ".join(cells) + f" | {false} |")

    print()
    print("## Calibration curve (landmark method alone)")
    print()
    print("| threshold | " + " | ".join(TRANSFORMS) + " | false matches |")
    print("|---|" + "---|" * (len(TRANSFORMS) + 1))
    for t in (10, 20, 30, 40, 50, 60, 65, 70, 80, 90, 100, 120):
        cells = []
        for name in TRANSFORMS:
            rows = by[("positive", name, "landmark")]
            cells.append(f"{np.mean([hits(r, landmark_threshold=t)[0] for r in rows]):.3f}")
        false = sum(hits(r, landmark_threshold=t)[1] for r in records if r["method"] == "landmark")
        mark = " (used)" if t == LANDMARK_THRESHOLD else ""
        print(f"| {t}{mark} | " + " | ".join(cells) + f" | {false} |")
    print()
    lm_max = float(unrelated["landmark"].max()) if len(unrelated["landmark"]) else 0.0
    print(f"highest landmark score of an unrelated recording: {lm_max:g}; threshold {LANDMARK_THRESHOLD:g} "
          f"({LANDMARK_THRESHOLD / max(1.0, lm_max):.1f}x above it)")


if __name__ == "__main__":
    main()
