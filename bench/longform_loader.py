"""Long-form shards: codec size and decode speed, the loader against HF datasets and WebDataset, memory for 20 min.

Same recordings on every side, same machine, same run:

* codec: each recording encoded by the writer's own ``encode_recording`` as FLAC and as Opus
  (128 kbit/s), at the bench's rate and channels; bytes per minute of audio and decode speed
  (times real time, ``decode_windows`` over the whole file).
* loader: ``LongformDataset`` (bucketing by window count) in ``make_longform_loader`` against the same
  build exported by ``shards.exports`` and read with ``datasets.load_from_disk`` (``Audio(decode=False)``,
  a map-style DataLoader, shuffled) and with ``webdataset.WebDataset`` (shuffle buffer), both decoding
  with the same ``decode_windows`` into the same ``[windows, 1, frames]`` arrays and padding a batch to its
  longest recording; same batch size, workers and prefetch factor on all three. Recordings/s, seconds
  of audio/s, CPU seconds (parent and workers), and the share of each batch that is padding.
* memory: a 20-minute recording (44.1 kHz stereo source) encoded at the bench's rate, then decoded
  into 40 windows of 30 s by ``decode_windows``: Python/numpy peak (tracemalloc) and the array itself.

The recordings are generated (chords and noise, FLAC sources) and recorded, decided, released and
approved through the write path with the test suite's fixture helpers, so the loader's gate is real.
Run: ``python bench/longform_loader.py [--tracks N] [--workers W] [--rate 16000]``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from schemas.shards import LongformConfig
from shards.exports import export_longform
from shards.longform import build_longform, encode_recording
from shards.longform_loader import LongformDataset, decode_windows, make_longform_loader
from store.database import connect
from tests.shards.ledger import make_release

WINDOW, MAX_WINDOWS = 30.0, 40


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def pad_batch(items: list[tuple[np.ndarray, np.ndarray, int]]) -> dict[str, Any]:
    most = max(a.shape[0] for a, _, _ in items)
    audio = torch.zeros((len(items), most, *items[0][0].shape[1:]))
    frames = torch.zeros((len(items), most), dtype=torch.int64)
    for b, (a, v, _) in enumerate(items):
        audio[b, :a.shape[0]] = torch.from_numpy(a)
        frames[b, :len(v)] = torch.from_numpy(v)
    return {"audio": audio, "window_frames": frames, "sample_rate": items[0][2]}


class HFWindows(Dataset):  # type: ignore[type-arg]
    def __init__(self, path: str) -> None:
        import datasets

        self.ds = datasets.load_from_disk(path).cast_column("audio", datasets.Audio(decode=False))

    def __len__(self) -> int:
        return self.ds.num_rows

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        data = self.ds[i]["audio"]["bytes"]
        return decode_windows(data, window_seconds=WINDOW, max_windows=MAX_WINDOWS)


def wds_pipeline(tars: list[str], batch_size: int, seed: int) -> Any:
    import webdataset as wds

    def to_windows(sample: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int]:
        return decode_windows(sample["flac"], window_seconds=WINDOW, max_windows=MAX_WINDOWS)

    return (wds.WebDataset(tars, shardshuffle=False, nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker)
            .shuffle(64, rng=random.Random(seed)).map(to_windows)
            .batched(batch_size, collation_fn=pad_batch, partial=True))


def run_loader(make: Any, epochs: int) -> tuple[float, float, float, int, float]:
    """(wall s, cpu s, audio s, recordings, padding share) over ``epochs`` passes of the loader ``make()`` gives."""
    audio_s = 0.0
    items = 0
    padded = real = 0
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for epoch in range(epochs):
        for batch in make(epoch):
            frames = batch["window_frames"]
            per = batch["audio"].shape[-1]
            real += int(frames.sum())
            padded += int(frames.shape[0] * frames.shape[1] * per)
            audio_s += float(frames.sum()) / batch["sample_rate"]
            items += frames.shape[0]
    return time.perf_counter() - t0, cpu_seconds() - cpu0, audio_s, items, 1 - real / max(padded, 1)


def write_long_source(path: Path, seconds: float, rate: int = 44100) -> Path:
    """A long stereo FLAC written in chunks (chords and a little noise), without holding it in memory."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate)
        stream.layout = "stereo"
        step = rate
        for start in range(0, int(seconds * rate), step):
            t = (start + np.arange(step)) / rate
            f = 110.0 * (1 + (start // (rate * 2)) % 7)
            mono = 0.3 * np.sin(2 * np.pi * f * t) + 0.15 * np.sin(2 * np.pi * 1.5 * f * t) + 0.02 * rng.standard_normal(step)
            pcm = (np.repeat(mono[None, :], 2, axis=0).T.reshape(1, -1) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=16)
    parser.add_argument("--min-seconds", type=float, default=20.0)
    parser.add_argument("--max-seconds", type=float, default=240.0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--long-minutes", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="linernotes-bench-longform-"))
    try:
        seconds = list(np.linspace(args.min_seconds, args.max_seconds, args.tracks).round(1))
        t0 = time.perf_counter()
        release = make_release(tmp, seconds=seconds, release_id="rel_bench")
        print(f"setup: {args.tracks} generated recordings, {sum(seconds) / 60:.1f} min, 44.1 kHz stereo FLAC sources, "
              f"released through the write path in {time.perf_counter() - t0:.1f} s")

        # -- codec -----------------------------------------------------------------------------
        codec_rows = []
        for codec in ("flac", "opus"):
            config = LongformConfig(codec=codec, sample_rate=args.rate, channels=1)
            size = enc_s = dec_s = 0.0
            for path in release.audio.values():
                t = time.perf_counter()
                encoded = encode_recording(str(path), config)
                enc_s += time.perf_counter() - t
                size += len(encoded.data)
                t = time.perf_counter()
                decode_windows(encoded.data, window_seconds=WINDOW, max_windows=10_000)
                dec_s += time.perf_counter() - t
            minutes = sum(seconds) / 60
            codec_rows.append((codec, size / minutes / 1e6, sum(seconds) / dec_s, sum(seconds) / enc_s))
        pcm_mb_min = args.rate * 2 * 60 / 1e6

        # -- loaders ---------------------------------------------------------------------------
        with connect(release.db_path) as con:
            build_longform(con, release.release_id, output_uri=str(tmp / "lf"), actor="ml@x",
                           config=LongformConfig(sample_rate=args.rate, channels=1))
        export_longform(str(tmp / "lf"), tmp / "hf", format="hf-datasets", actor="ml@x", ledger_path=release.db_path)
        # One tar per worker and epoch half at least: webdataset splits work between workers by file.
        export_longform(str(tmp / "lf"), tmp / "wds", format="webdataset", actor="ml@x", ledger_path=release.db_path,
                        records_per_file=math.ceil(args.tracks / max(1, 2 * args.workers)))
        tars = sorted(str(p) for p in (tmp / "wds").glob("*.tar"))
        kw = {"num_workers": args.workers, "prefetch_factor": args.prefetch if args.workers else None}
        t = time.perf_counter()
        ours = LongformDataset(str(tmp / "lf"), batch_size=args.batch, window_seconds=WINDOW, max_windows=MAX_WINDOWS,
                               ledger_path=release.db_path)
        construct_ms = (time.perf_counter() - t) * 1000
        hf = HFWindows(str(tmp / "hf"))

        def make_ours(epoch: int) -> Any:
            ours.set_epoch(epoch)
            return make_longform_loader(ours, **kw)

        def make_hf(epoch: int) -> Any:
            gen = torch.Generator().manual_seed(epoch)
            return DataLoader(hf, batch_size=args.batch, shuffle=True, generator=gen, collate_fn=pad_batch, **kw)

        def make_wds(epoch: int) -> Any:
            return DataLoader(wds_pipeline(tars, args.batch, epoch), batch_size=None, **kw)

        results: dict[str, tuple[float, float, float, int, float]] = {}
        for name, make in (("webdataset", make_wds), ("hf", make_hf), ("ours", make_ours)) * args.repeats:
            got = run_loader(make, args.epochs)
            if name not in results or got[0] < results[name][0]:
                results[name] = got

        # -- memory for one long recording -------------------------------------------------------
        long_src = write_long_source(tmp / "long.flac", args.long_minutes * 60)
        long_enc = encode_recording(str(long_src), LongformConfig(sample_rate=args.rate, channels=1, max_seconds=7200))
        tracemalloc.start()
        t = time.perf_counter()
        windows, valid, _ = decode_windows(long_enc.data, window_seconds=WINDOW, max_windows=MAX_WINDOWS)
        long_dec = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        print(f"recordings: {args.tracks}, {sum(seconds):.0f} s of audio, stored at {args.rate} Hz mono; "
              f"windows {WINDOW:.0f} s x up to {MAX_WINDOWS}; batch {args.batch}, {args.workers} workers, prefetch "
              f"{args.prefetch}, {args.epochs} epochs, best of {args.repeats}; 1 torch thread per process")
        print()
        print(f"| codec ({args.rate} Hz mono) | MB per minute | decode x real time | encode x real time |")
        print("|---|---:|---:|---:|")
        print(f"| PCM int16 (reference) | {pcm_mb_min:.2f} | | |")
        for codec, mb, dec, enc in codec_rows:
            print(f"| {codec} | {mb:.2f} | {dec:.0f}x | {enc:.0f}x |")
        print()
        anchor = results["webdataset"]
        print("| metric | linernotes long-form | HF datasets | webdataset (anchor) | ours / anchor | HF / anchor |")
        print("|---|---:|---:|---:|---:|---:|")
        rows = {
            "recordings/s": lambda r: r[3] / r[0],
            "seconds of audio/s": lambda r: r[2] / r[0],
            "CPU seconds (all processes)": lambda r: r[1],
            "padding share of batch audio": lambda r: r[4],
        }
        for label, fn in rows.items():
            a = fn(anchor)
            o, h = fn(results["ours"]), fn(results["hf"])
            fmt = "{:.3f}" if "share" in label else "{:.1f}"
            print(f"| {label} | {fmt.format(o)} | {fmt.format(h)} | {fmt.format(a)} | "
                  f"{o / a if a else float('nan'):.2f}x | {h / a if a else float('nan'):.2f}x |")
        print()
        print(f"loader construction (gate + hash check of {len(ours.manifest.shards)} shards + metadata read): "
              f"{construct_ms:.0f} ms")
        print(f"{args.long_minutes:.0f}-minute recording at {args.rate} Hz mono: {len(long_enc.data) / 1e6:.1f} MB FLAC; "
              f"decoded into {windows.shape[0]} x {WINDOW:.0f} s windows in {long_dec:.2f} s; "
              f"array {windows.nbytes / 1e6:.1f} MB, Python/numpy peak during decode {peak / 1e6:.1f} MB; "
              f"process max RSS {rss_mb:.0f} MB; frames in last window {int(valid[-1])}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("LINERNOTES_HOME", tempfile.mkdtemp(prefix="linernotes-bench-home-"))
    main()
