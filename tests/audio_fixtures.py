"""Real, short audio made for tests: tones and chords encoded with FFmpeg through PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

CODECS = {".ogg": ("ogg", "vorbis"), ".flac": ("flac", "flac"), ".mp3": ("mp3", "libmp3lame"),
          ".wav": ("wav", "pcm_s16le"), ".opus": ("ogg", "libopus")}


def music_like(seconds: float, rate: int = 44100, seed: int = 0) -> np.ndarray:
    """A sequence of random chords with decaying envelopes: enough structure for Chromaprint."""
    rng = np.random.default_rng(seed)
    total = int(seconds * rate)
    out = np.zeros(total, dtype=np.float64)
    beat = int(0.25 * rate)
    t = np.arange(beat) / rate
    for start in range(0, total, beat):
        notes = 220.0 * 2 ** (rng.integers(0, 24, size=3) / 12)
        chunk = sum(np.sin(2 * np.pi * f * t) for f in notes) * np.exp(-3 * t)
        end = min(start + beat, total)
        out[start:end] += chunk[: end - start]
    out /= np.max(np.abs(out)) + 1e-9
    return (0.6 * out).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, rate: int = 44100, *, tags: dict[str, str] | None = None,
                channels: int = 2) -> Path:
    """Encode mono float samples in [-1, 1] to the container/codec the suffix names."""
    fmt, codec = CODECS[path.suffix.lower()]
    if codec == "libopus":
        rate = 48000
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
            layout = stream.layout = "stereo"
            channels = 2
        for key, value in (tags or {}).items():
            out.metadata[key] = value
        pcm = np.clip(samples, -1, 1)
        pcm16 = (pcm * 32767).astype(np.int16)
        data = np.repeat(pcm16[None, :], channels, axis=0).T.reshape(1, -1) if channels == 2 else pcm16[None, :]
        step = 1024 * channels
        for start in range(0, data.shape[1], step):
            chunk = np.ascontiguousarray(data[:, start:start + step])
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = start // channels
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
