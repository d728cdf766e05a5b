"""Real audio for the fingerprinting tests, synthesised and encoded with FFmpeg."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

RATE = 44100


def music(seed: int, seconds: float, rate: int = RATE) -> np.ndarray:
    """A stereo piece of random chords with note envelopes and a little noise: (2, n) float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n, dtype=np.float64)
    t_note = int(0.25 * rate)
    env = np.exp(-np.linspace(0, 4, t_note))
    t = np.arange(t_note) / rate
    for start in range(0, n, t_note):
        length = min(t_note, n - start)
        for midi in rng.integers(40, 84, size=3):
            freq = 440.0 * 2 ** ((midi - 69) / 12)
            out[start:start + length] += (np.sin(2 * np.pi * freq * t[:length]) * env[:length]) / 3
    out += rng.standard_normal(n) * 0.01
    stereo = np.stack([out, np.roll(out, 5) * 0.9]) * 0.5
    return stereo.astype(np.float32)


def encode(path: Path, audio: np.ndarray, rate: int = RATE, codec: str | None = None) -> Path:
    """Write (channels, n) float audio to ``path``; the codec follows the suffix."""
    codec = codec or {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libvorbis",
                      ".opus": "libopus", ".m4a": "aac"}[path.suffix]
    if codec == "libvorbis" and codec not in av.codecs_available:
        codec = "vorbis"
    if codec == "libopus":
        rate = 48000
    layout = "stereo" if audio.shape[0] == 2 else "mono"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        fmt = stream.codec_context.format.name
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        step = 4096
        for i in range(0, audio.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, i:i + step]), format="fltp", layout=layout)
            frame.sample_rate = RATE
            frame.pts = None
            for f in resampler.resample(frame):
                out.mux(stream.encode(f))
        for f in resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def song(audio_dir: Path) -> Path:
    """A 40-second FLAC piece."""
    return encode(audio_dir / "song.flac", music(1, 40.0))


TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "chromaprint"
if not TESTDATA.exists():
    TESTDATA = Path("/work/shared/testdata/chromaprint")
