"""Shard build MB/s and loader samples/s: linernotes Parquet shards against webdataset tar shards.

Both sides get the same decoded samples (4 s mono 16 kHz int16 crops of the demo tracks, with the
same attribution metadata) and the same shard size, on the same machine, in the same run:

* build: ``shards.writer.encode_shard`` + ``ObjectStore.put`` (zstd Parquet, content-hashed names)
  against ``webdataset.TarWriter`` (``.pcm`` bytes + ``.json`` metadata per sample).
* load: ``ShardDataset`` in a ``DataLoader`` against ``webdataset.WebDataset`` in a ``DataLoader``,
  both yielding ``{"sample_id", "track_id", "isrc", "audio": float32[64000]}`` with the same batch size
  and workers, both shuffling (ours: window shuffle; webdataset: shard shuffle + 256-sample buffer).
* reference: training steps/s of a small 1-D conv audio classifier on the same batches (the stand-in
  reference model until ``training`` ships one; override with ``--steps-model training``).

Decoding the source audio is excluded from both build timings (it is identical work) and reported
once. Run: ``python bench/shards_vs_webdataset.py [--tracks N] [--workers W]``; audio from
``LINERNOTES_DEMO_AUDIO`` (a directory of audio files) or /tmp/demo.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

DEMO_GLOBS = ("/tmp/demo/x/usr/share/games/wesnoth/1.16/data/core/music/*.ogg",
              "/tmp/demo/x/usr/share/games/singularity/music/**/*.ogg")


def demo_files(limit: int) -> list[str]:
    root = os.environ.get("LINERNOTES_DEMO_AUDIO")
    files: list[str] = []
    if root:
        for ext in ("ogg", "flac", "mp3", "wav"):
            files += glob.glob(f"{root}/**/*.{ext}", recursive=True)
    else:
        for pattern in DEMO_GLOBS:
            files += glob.glob(pattern, recursive=True)
    return sorted(files)[:limit]


def decode_samples(files: list[str], config) -> tuple[dict[str, list], list[np.ndarray], float]:  # type: ignore[no-untyped-def]
    from shards.audio import crop_offsets, decode_pcm

    cache = Path(tempfile.gettempdir()) / "linernotes-bench-pcm"
    cache.mkdir(exist_ok=True)

    cols: dict[str, list] = {k: [] for k in ("sample_id", "track_id", "isrc", "title", "artists", "rights_holders",
                                              "license", "deal_id", "consent_ids", "decision_id", "policy_hash",
                                              "release_id", "source_audio_sha256", "crop_index",
                                              "crop_offset_samples", "crop_offset_s", "sample_rate", "num_samples")}
    crops: list[np.ndarray] = []
    t0 = time.perf_counter()
    for i, path in enumerate(files):
        track_id = f"trk_{i:016x}"
        key = hashlib.sha256(f"{path}:{os.path.getsize(path)}:{config.sample_rate}".encode()).hexdigest()[:20]
        cached = cache / f"{key}.npy"
        if cached.exists():
            pcm = np.load(cached)
        else:
            pcm = decode_pcm(path, config.sample_rate)
            np.save(cached, pcm)
        sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        for index, off in enumerate(crop_offsets(len(pcm), config.crop_samples, config.crops_per_track,
                                                 seed=config.seed, track_id=track_id)):
            for key, value in (("sample_id", f"{track_id}:{index:04d}"), ("track_id", track_id),
                               ("isrc", f"XXBEN25{i:05d}"), ("title", Path(path).stem), ("artists", ["Demo"]),
                               ("rights_holders", [{"party_id": "pty_demo", "name": "Demo", "share": 100.0}]),
                               ("license", "GPL-2.0"), ("deal_id", "deal_demo"), ("consent_ids", ["cns_demo"]),
                               ("decision_id", f"dec_{i}"), ("policy_hash", "p" * 64), ("release_id", "rel_bench"),
                               ("source_audio_sha256", sha), ("crop_index", index), ("crop_offset_samples", off),
                               ("crop_offset_s", off / config.sample_rate), ("sample_rate", config.sample_rate),
                               ("num_samples", config.crop_samples)):
                cols[key].append(value)
            crops.append(pcm[off:off + config.crop_samples])
    return cols, crops, time.perf_counter() - t0


def build_parquet(cols, crops, config, out: Path, durable: bool = True):  # type: ignore[no-untyped-def]
    """The writer's own path: ShardSink encodes (zstd Parquet), hashes, names and stores each shard."""
    from schemas.shards import ShardManifest
    from shards.writer import MANIFEST_NAME, ShardSink
    from store.objects import ObjectStore

    sink = ShardSink(ObjectStore(), str(out), config, {"linernotes.release_id": "rel_bench"}, durable=durable)
    for start in range(0, len(crops), config.rows_per_shard):
        sink.submit({k: v[start:start + config.rows_per_shard] for k, v in cols.items()},
                    crops[start:start + config.rows_per_shard])
    entries = [entry for entry, _ in sink.close()]
    return entries, MANIFEST_NAME, ShardManifest


def build_tar(cols, crops, config, out: Path, durable: bool = True) -> None:  # type: ignore[no-untyped-def]
    import webdataset as wds

    meta_keys = [k for k in cols if k != "sample_id"]
    for index, start in enumerate(range(0, len(crops), config.rows_per_shard)):
        with wds.TarWriter(str(out / f"shard-{index:05d}.tar"), mtime=0) as sink:
            for i in range(start, min(start + config.rows_per_shard, len(crops))):
                meta = {k: cols[k][i] for k in meta_keys}
                meta["sample_id"] = cols["sample_id"][i]
                sink.write({"__key__": f"{i:08d}", "pcm": crops[i].tobytes(), "json": json.dumps(meta).encode()})
    if durable:
        for path in sorted(out.glob("*.tar")):
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)


def write_manifest_and_ledger(entries, manifest_name, manifest_cls, config, out: Path, cols, tmp: Path) -> Path:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from schemas.shards import ApprovalRef
    from shards.merkle import merkle_root
    from store.database import connect

    now = datetime.now(UTC)
    manifest = manifest_cls(
        code_version="bench", release_id="rel_bench", purpose="ai_training", territory="WORLD", on_date="2025-01-01",
        policy_hash="p" * 64, release_content_sha256="c" * 64,
        approval=ApprovalRef(actor="bench", comment="bench", recorded_at=now), config=config, sample_format={},
        shards=tuple(entries), total_rows=sum(e.rows for e in entries),
        track_count=len(set(cols["track_id"])), merkle_root=merkle_root(cols["sample_id"]), built_by="bench",
        built_at=now)
    (out / manifest_name).write_text(manifest.model_dump_json())
    ledger = tmp / "ledger.duckdb"
    with connect(ledger) as con:
        con.execute("INSERT INTO releases VALUES ('rel_bench', 'ai_training', 'WORLD', DATE '2025-01-01', ?, "
                    "'approved', 'bench', ?, 0, ?)", ["p" * 64, now, "c" * 64])
        con.execute("INSERT INTO approvals VALUES ('rel_bench', 'bench', 'approve', 'bench', ?)", [now])
    return ledger


def _wds_sample(sample: dict) -> dict:  # type: ignore[type-arg]
    meta = json.loads(sample["json"])
    pcm = np.frombuffer(sample["pcm"], dtype="<i2")
    audio = pcm.astype(np.float32)
    audio *= np.float32(1.0 / 32768.0)
    audio = torch.from_numpy(audio)
    return {"sample_id": meta["sample_id"], "track_id": meta["track_id"], "isrc": meta["isrc"], "audio": audio}


def time_loader(loader, epochs: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    count = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            count += len(batch["sample_id"])
    return time.perf_counter() - t0, count


class ConvNet(torch.nn.Module):
    """A small raw-waveform classifier: the stand-in reference model for step-rate comparison."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        channels = [1, 32, 64, 128, 128]
        for a, b in zip(channels, channels[1:]):
            layers += [torch.nn.Conv1d(a, b, 9, stride=4, padding=4), torch.nn.BatchNorm1d(b), torch.nn.ReLU()]
        self.body = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(128, 50)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.unsqueeze(1)).mean(-1))


def model_samples_per_s(batch_size: int, steps: int = 8) -> float:
    model = ConvNet()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch_size, 64000)
    y = torch.randint(0, 50, (batch_size,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    from schemas.shards import ShardConfig
    from shards.loader import ShardDataset, make_loader

    parser = argparse.ArgumentParser()
    parser.add_argument("--tracks", type=int, default=57)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crops-per-track", type=int, default=16)
    args = parser.parse_args()

    files = demo_files(args.tracks)
    if not files:
        raise SystemExit("no demo audio: set LINERNOTES_DEMO_AUDIO to a directory of audio files")
    config = ShardConfig(rows_per_shard=128, rows_per_row_group=16, crops_per_track=args.crops_per_track)
    cols, crops, decode_s = decode_samples(files, config)
    mb = sum(c.nbytes for c in crops) / 1e6
    tmp = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    try:
        build: dict[tuple[str, bool], list[float]] = {}
        entries = manifest_name = manifest_cls = None
        for r in range(args.repeats):
            for durable in (True, False):
                for kind in ("webdataset", "parquet"):
                    out = tmp / f"{kind}-{r}-{int(durable)}"
                    out.mkdir()
                    t0 = time.perf_counter()
                    if kind == "parquet":
                        entries, manifest_name, manifest_cls = build_parquet(cols, crops, config, out, durable)
                    else:
                        build_tar(cols, crops, config, out, durable)
                    build.setdefault((kind, durable), []).append(time.perf_counter() - t0)
                    if r or not durable:
                        shutil.rmtree(out)
        pq_dir, tar_dir = tmp / "parquet-0-1", tmp / "webdataset-0-1"
        entries = [e.model_copy(update={"uri": str(pq_dir / e.name)}) for e in entries or []]
        ledger = write_manifest_and_ledger(entries, manifest_name, manifest_cls, config, pq_dir, cols, tmp)
        pq_bytes = sum(p.stat().st_size for p in pq_dir.glob("*.parquet"))
        tar_bytes = sum(p.stat().st_size for p in tar_dir.glob("*.tar"))

        import webdataset as wds

        tars = sorted(str(p) for p in tar_dir.glob("*.tar"))
        load = {"parquet": [], "webdataset": []}
        verify_s = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            ds = ShardDataset(str(pq_dir), seed=r, ledger_path=ledger)
            verify_s.append(time.perf_counter() - t0)
            loader = make_loader(ds, batch_size=args.batch_size, num_workers=args.workers)
            load["parquet"].append(time_loader(loader, args.epochs))
            pipeline = (wds.WebDataset(tars, shardshuffle=len(tars), seed=r, empty_check=False)
                        .shuffle(256).map(_wds_sample))
            wloader = torch.utils.data.DataLoader(pipeline, batch_size=args.batch_size, num_workers=args.workers)
            load["webdataset"].append(time_loader(wloader, args.epochs))

        counts = {k: v[0][1] for k, v in load.items()}
        rate = {k: max(n / s for s, n in v) for k, v in load.items()}
        best = {k: mb / min(v) for k, v in build.items()}
        steps = model_samples_per_s(args.batch_size)
        lines = [
            f"samples: {len(crops)} crops of 4 s from {len(files)} tracks, {mb:.1f} MB of PCM "
            f"(decode {decode_s:.1f} s incl. cache hits, excluded from build timings); batch {args.batch_size}, "
            f"{args.workers} workers, {args.epochs} epochs, best of {args.repeats}",
            f"on disk: parquet {pq_bytes / 1e6:.1f} MB, tar {tar_bytes / 1e6:.1f} MB; "
            f"samples per epoch served: parquet {counts['parquet'] // args.epochs}, "
            f"webdataset {counts['webdataset'] // args.epochs}",
            "",
            "| metric | linernotes parquet | webdataset (anchor) | ratio |",
            "|---|---:|---:|---:|",
            f"| shard build MB/s, fsynced before done | {best['parquet', True]:.0f} | {best['webdataset', True]:.0f} | "
            f"{best['parquet', True] / best['webdataset', True]:.2f}x |",
            f"| shard build MB/s, left in page cache | {best['parquet', False]:.0f} | "
            f"{best['webdataset', False]:.0f} | {best['parquet', False] / best['webdataset', False]:.2f}x |",
            f"| loader samples/s | {rate['parquet']:.0f} | {rate['webdataset']:.0f} | "
            f"{rate['parquet'] / rate['webdataset']:.2f}x |",
            f"| loader vs reference model train samples/s ({steps:.0f}) | {rate['parquet'] / steps:.1f}x | "
            f"{rate['webdataset'] / steps:.1f}x | |",
            "",
            f"loader construction (hash verification of {len(entries or [])} shards + ledger gate): "
            f"{min(verify_s) * 1000:.0f} ms",
        ]
        print("\n".join(lines))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
