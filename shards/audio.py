"""Source audio to training crops: verify the file, decode to mono 16 kHz int16, cut crops.

Crop offsets come from SHA-256 of (seed, track ID, crop index), never from a process-global RNG, so
the same release, config and seed cut the same crops on any machine. A track of length L with room
for k = min(crops_per_track, L // crop) crops is divided into k equal strata and one crop is placed
inside each, so crops never overlap and spread over the whole track. Short tracks give fewer crops
and a track shorter than one crop gives none; nothing is ever padded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np

from store.digest import sha256_file



class AudioError(Exception):
    """A source file that cannot become samples; ``reason_code`` goes to the exclusions table."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


def verified_pcm(path: str | Path, expected_sha256: str, sample_rate: int) -> np.ndarray:
    """Decode the file to mono int16 PCM at ``sample_rate`` after checking its SHA-256."""
    source = Path(path)
    if not source.is_file():
        raise AudioError("audio_missing", f"source audio not found: {source}")
    actual = sha256_file(source)
    if actual != expected_sha256:
        raise AudioError("audio_sha256_mismatch", f"sha256 of {source} is {actual}, ledger says {expected_sha256}")
    try:
        return decode_pcm(source, sample_rate)
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise AudioError("audio_decode_error", f"{type(exc).__name__}: {exc}") from exc


def decode_pcm(path: str | Path, sample_rate: int) -> np.ndarray:
    """Stream-decode the first audio stream to mono int16 little-endian at ``sample_rate``."""
    parts: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioError("audio_no_stream", f"{path} has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    if not parts:
        return np.zeros(0, dtype="<i2")
    return np.ascontiguousarray(np.concatenate(parts), dtype="<i2")


def crop_offsets(total_samples: int, crop_samples: int, crops_per_track: int, *, seed: int, track_id: str) -> list[int]:
    """Start offsets (in samples) of the crops for one track; empty when the track is too short."""
    room = total_samples // crop_samples
    count = min(crops_per_track, room)
    if count <= 0:
        return []
    stratum = total_samples // count
    slack = stratum - crop_samples
    offsets = []
    for index in range(count):
        digest = hashlib.sha256(f"{seed}:{track_id}:{index}".encode()).digest()
        jitter = int.from_bytes(digest[:8], "little") % (slack + 1)
        offsets.append(index * stratum + jitter)
    return offsets
