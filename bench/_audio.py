"""Shared helpers for the fingerprint benchmarks: the demo corpus and audio transforms."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

NONCATALOG_PACKAGES = ("asc-music", "hyperrogue-music")  # freely licensed music outside the demo catalog
PCM_RATE = 22050
DEFAULT_DIRS = ("/tmp/demo/x/usr/share/games/wesnoth/1.16/data/core/music",
                "/tmp/demo/x/usr/share/games/singularity/music")


def demo_files() -> list[Path]:
    """The real demo catalog: $LINERNOTES_DEMO_AUDIO (dirs separated by ':') or the unpacked demo."""
    dirs = os.environ.get("LINERNOTES_DEMO_AUDIO", ":".join(DEFAULT_DIRS)).split(":")
    files = sorted(p for d in dirs if d and Path(d).is_dir() for p in Path(d).rglob("*.ogg"))
    if not files:
        raise SystemExit("no demo audio found: set LINERNOTES_DEMO_AUDIO to a directory of .ogg files")
    return files


def noncatalog_files(cache: Path) -> list[Path]:
    """Music from Debian packages outside the demo catalog (downloaded and unpacked once)."""
    root = cache / "noncatalog"
    root.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for package in NONCATALOG_PACKAGES:
        dest = root / "x" / package
        if not (dest / ".complete").exists():
            if not list(root.glob(f"{package}_*.deb")):
                subprocess.run(["apt-get", "download", package], cwd=root, check=True, capture_output=True)
            dest.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg", "-x", str(sorted(root.glob(f"{package}_*.deb"))[-1]), str(dest)], check=True)
            (dest / ".complete").touch()
        files += sorted(p for p in dest.rglob("*") if p.suffix in (".ogg", ".mp3", ".flac") and "music" in p.parts)
    return files


def pcm(path: Path, cache: Path) -> np.ndarray:
    """Mono 22050 Hz float32 of ``path``, decoded once and cached."""
    key = hashlib.sha256(f"{path.resolve()}|{path.stat().st_size}|{path.stat().st_mtime_ns}".encode()).hexdigest()[:24]
    store = cache / "pcm" / f"{key}.npy"
    if store.exists():
        return np.load(store)
    with av.open(str(path), metadata_errors="ignore") as c:  # some files carry tags FFmpeg cannot parse
        resampler = av.AudioResampler(format="flt", layout="mono", rate=PCM_RATE)
        out = np.concatenate([f.to_ndarray().reshape(-1) for frame in c.decode(audio=0)
                              for f in resampler.resample(frame)]).astype(np.float32)
    store.parent.mkdir(parents=True, exist_ok=True)
    np.save(store, out)
    return out


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Whole file as float32 (channels, samples) and its sample rate."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        rate = stream.sample_rate
        resampler = av.AudioResampler(format="fltp", layout="stereo" if stream.channels > 1 else "mono", rate=rate)
        chunks = []
        for frame in c.decode(stream):
            for f in resampler.resample(frame):
                chunks.append(f.to_ndarray())
    return np.concatenate(chunks, axis=1).astype(np.float32), rate


def write(path: Path, audio: np.ndarray, rate: int, codec: str = "flac", bit_rate: int | None = None) -> Path:  # noqa: E501
    """Encode (channels, samples) float audio to ``path`` with ``codec``."""
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    layout = "stereo" if audio.shape[0] == 2 else "mono"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if bit_rate:
            stream.bit_rate = bit_rate
        if codec == "libmp3lame":
            stream.codec_context.options = {"compression_level": "7"}  # LAME -q 7: fast, same bitrate
        fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        step = 1152 * 8
        for start in range(0, audio.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:start + step]), format="fltp", layout=layout)
            frame.sample_rate = rate
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for f in resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _resample(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    layout = "stereo" if audio.shape[0] == 2 else "mono"
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=new_rate)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout=layout)
    frame.sample_rate = rate
    parts = [f.to_ndarray() for f in resampler.resample(frame)] + [f.to_ndarray() for f in resampler.resample(None)]
    return np.concatenate(parts, axis=1)


def _noise(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1e-4
    noise = np.random.default_rng(seed).standard_normal(audio.shape).astype(np.float32)
    return audio + noise * (rms / 10 ** (snr_db / 20))


Transform = Callable[[np.ndarray, int, Path, int], Path]

TRANSFORMS: dict[str, tuple[Transform, bool]] = {
    # name: (make the copy, is it an excerpt)
    "mp3_64k": (lambda a, r, p, s: write(p.with_suffix(".mp3"), a, r, "libmp3lame", 64_000), False),
    "mp3_128k": (lambda a, r, p, s: write(p.with_suffix(".mp3"), a, r, "libmp3lame", 128_000), False),
    "resample_22k": (lambda a, r, p, s: write(p.with_suffix(".flac"), _resample(a, r, 22050), 22050), False),
    "gain_+6dB": (lambda a, r, p, s: write(p.with_suffix(".flac"), a * 10 ** (6 / 20), r), False),
    "gain_-6dB": (lambda a, r, p, s: write(p.with_suffix(".flac"), a * 10 ** (-6 / 20), r), False),
    "mono": (lambda a, r, p, s: write(p.with_suffix(".flac"), a.mean(axis=0, keepdims=True), r), False),
    "trim_10pct": (lambda a, r, p, s: write(p.with_suffix(".flac"), a[:, a.shape[1] // 10:], r), False),
    "noise_20dB": (lambda a, r, p, s: write(p.with_suffix(".flac"), _noise(a, 20.0, s), r), False),
    "excerpt_30s": (lambda a, r, p, s: write(p.with_suffix(".flac"),
                                             a[:, max(0, a.shape[1] // 2 - 15 * r): a.shape[1] // 2 + 15 * r], r), True),
}
