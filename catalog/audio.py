"""Probe an audio file without decoding it: format, codec, duration, embedded tags, content hash."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from store.digest import sha256_file

# FFmpeg demuxer names each file extension may hold; anything else is a mislabelled file.
CONTAINERS_BY_SUFFIX: dict[str, frozenset[str]] = {
    ".wav": frozenset({"wav"}), ".flac": frozenset({"flac"}), ".mp3": frozenset({"mp3"}),
    ".ogg": frozenset({"ogg"}), ".oga": frozenset({"ogg"}), ".opus": frozenset({"ogg"}),
    ".m4a": frozenset({"mov", "mp4", "m4a"}), ".aac": frozenset({"aac"}),
}
AUDIO_SUFFIXES = frozenset(CONTAINERS_BY_SUFFIX)
# Two hours of 96 kHz / 24-bit stereo WAV is about 4 GB; larger files are refused before any read.
DEFAULT_MAX_AUDIO_BYTES = 4 * 1024**3
MAX_AUDIO_BYTES_ENV = "LINERNOTES_MAX_AUDIO_BYTES"


class AudioProbeError(Exception):
    """A file that cannot be ingested as audio, with a machine-readable reason code."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sha256: str
    bytes: int
    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float
    tags: dict[str, str] = field(default_factory=dict)


def _tags(*sources: dict[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for source in sources:
        for key, value in source.items():
            merged.setdefault(key.strip().upper(), str(value).strip())
    return merged


def max_audio_bytes() -> int:
    """The size limit for one audio file: ``$LINERNOTES_MAX_AUDIO_BYTES``, else 4 GiB."""
    raw = os.environ.get(MAX_AUDIO_BYTES_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_AUDIO_BYTES


def probe(path: Path, *, max_bytes: int | None = None) -> AudioInfo:
    """Read what ingest needs from the container headers; raise AudioProbeError for anything unusable.

    Files over ``max_bytes`` (default :func:`max_audio_bytes`) are refused without being read, and
    a file whose content is another format than its extension names is refused as mislabelled.
    """
    import av

    path = Path(path)
    limit = max_bytes if max_bytes is not None else max_audio_bytes()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioProbeError("unreadable", f"{path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise AudioProbeError("empty_file", f"{path}: file is empty")
    if size > limit:
        raise AudioProbeError("file_too_large", f"{path}: {size} bytes is over the {limit}-byte limit "
                                                f"(set {MAX_AUDIO_BYTES_ENV} to raise it)")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioProbeError("not_audio", f"{path}: no audio stream ({container.format.name})")
            expected = CONTAINERS_BY_SUFFIX.get(path.suffix.lower())
            actual = set(container.format.name.split(","))
            if expected is not None and not expected & actual:
                raise AudioProbeError("mislabelled", f"{path}: named {path.suffix} but the content is "
                                                     f"{container.format.long_name or container.format.name}")
            stream = container.streams.audio[0]
            ctx = stream.codec_context
            if ctx is None or not ctx.name:
                raise AudioProbeError("unsupported_codec", f"{path}: no decoder for its audio stream")
            duration = 0.0
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / 1_000_000
            if duration <= 0:
                raise AudioProbeError("truncated", f"{path}: no playable duration")
            info = AudioInfo(
                path=path,
                sha256=sha256_file(path),
                bytes=size,
                container=container.format.name,
                codec=ctx.name,
                sample_rate=int(ctx.sample_rate or 0),
                channels=int(ctx.channels or 0),
                duration_s=round(duration, 3),
                tags=_tags(dict(stream.metadata), dict(container.metadata)),
            )
    except AudioProbeError:
        raise
    except av.error.FFmpegError as exc:
        raise AudioProbeError("not_audio", f"{path}: cannot be read as audio ({exc})") from exc
    if info.sample_rate <= 0 or info.channels <= 0:
        raise AudioProbeError("unsupported_codec", f"{path}: stream has no sample rate or channels")
    return info
