"""Chromaprint fingerprints computed in-process, bit-identical to Chromaprint's ``fpcalc``.

Audio is decoded by FFmpeg (through PyAV) and converted exactly as ``fpcalc`` converts it
(swresample to 11025 Hz mono s16, filter_size=16, phase_shift=8, linear_interp=1,
cutoff=0.8) before it reaches libchromaprint, so the raw items and the compressed string
match ``fpcalc -raw`` / ``fpcalc`` for the same length setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from fingerprinting.landmarks import compute_landmarks_and_query_peaks

SAMPLE_RATE = 11025
ALGORITHM_TEST2 = 1  # Chromaprint's default (fpcalc -algorithm 2)
ITEM_SECONDS = 1365 / SAMPLE_RATE  # hop between consecutive items
SILENCE_ITEM = 627964279
DEFAULT_MAX_SECONDS = 120.0
RESAMPLER_OPTIONS = {"filter_size": "16", "phase_shift": "8", "linear_interp": "1", "cutoff": "0.8"}
# Big output frames keep the per-frame Python work negligible; decoding and resampling
# all happen inside FFmpeg's filter graph with the GIL released.
_CHUNK_SAMPLES = SAMPLE_RATE * 4
_SILENCE_PEAK = 1  # s16 peak at or below this is digital silence (dither of one LSB included)

ReasonCode = Literal[
    "missing_file", "empty_file", "not_audio", "unsupported_codec", "truncated", "corrupt",
    "silence", "too_short",
]


class FingerprintError(Exception):
    """Audio that cannot be fingerprinted, with a machine-readable reason code."""

    def __init__(self, reason_code: ReasonCode, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code: ReasonCode = reason_code
        self.message = message


def _load_library() -> ctypes.CDLL:
    names = ["libchromaprint.so.1", "libchromaprint.1.dylib", "chromaprint.dll"]
    found = ctypes.util.find_library("chromaprint")
    if found:
        names.insert(0, found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        break
    else:
        raise ImportError("libchromaprint is not installed (Debian: apt-get install libchromaprint1)")
    u32p = ctypes.POINTER(ctypes.c_uint32)
    lib.chromaprint_get_version.restype = ctypes.c_char_p
    lib.chromaprint_new.argtypes = [ctypes.c_int]
    lib.chromaprint_new.restype = ctypes.c_void_p
    lib.chromaprint_free.argtypes = [ctypes.c_void_p]
    lib.chromaprint_start.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.chromaprint_feed.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.chromaprint_finish.argtypes = [ctypes.c_void_p]
    lib.chromaprint_get_raw_fingerprint.argtypes = [ctypes.c_void_p, ctypes.POINTER(u32p), ctypes.POINTER(ctypes.c_int)]
    lib.chromaprint_encode_fingerprint.argtypes = [
        u32p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.chromaprint_decode_fingerprint.argtypes = [
        ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(u32p), ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.chromaprint_dealloc.argtypes = [ctypes.c_void_p]
    return lib


_lib = _load_library()


def library_version() -> str:
    """The version of the loaded libchromaprint."""
    return str(_lib.chromaprint_get_version().decode())


def encode_items(items: npt.ArrayLike, algorithm: int = ALGORITHM_TEST2) -> str:
    """Chromaprint's compressed, base64 fingerprint string (what ``fpcalc`` prints)."""
    arr = np.ascontiguousarray(items, dtype=np.uint32)
    out = ctypes.c_char_p()
    size = ctypes.c_int()
    ok = _lib.chromaprint_encode_fingerprint(
        arr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)), len(arr), algorithm,
        ctypes.byref(out), ctypes.byref(size), 1)
    if ok != 1:
        raise ValueError("libchromaprint could not encode the fingerprint")
    try:
        return ctypes.string_at(out, size.value).decode("ascii")
    finally:
        _lib.chromaprint_dealloc(out)


def decode_items(encoded: str) -> tuple[npt.NDArray[np.uint32], int]:
    """Raw items and algorithm from a compressed fingerprint string."""
    data = encoded.encode("ascii")
    ptr = ctypes.POINTER(ctypes.c_uint32)()
    size = ctypes.c_int()
    algorithm = ctypes.c_int()
    ok = _lib.chromaprint_decode_fingerprint(data, len(data), ctypes.byref(ptr), ctypes.byref(size),
                                             ctypes.byref(algorithm), 1)
    if ok != 1:
        raise ValueError("not a Chromaprint fingerprint string")
    try:
        items = np.ctypeslib.as_array(ptr, shape=(size.value,)).copy() if size.value else np.zeros(0, np.uint32)
        return items, algorithm.value
    finally:
        _lib.chromaprint_dealloc(ptr)


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """One file's Chromaprint fingerprint.

    ``duration_s`` is the whole file's duration; ``seconds_used`` is how much audio the
    items cover (at most the requested ``max_seconds``).
    """

    items: npt.NDArray[np.uint32]
    duration_s: float
    seconds_used: float
    algorithm: int = ALGORITHM_TEST2
    landmarks: npt.NDArray[np.uint32] | None = None
    query_peaks: npt.NDArray[np.uint32] | None = None  # packed, see landmarks.query_landmarks

    def __post_init__(self) -> None:
        for name in ("items", "landmarks", "query_peaks"):
            value = getattr(self, name)
            if value is not None:
                arr = np.ascontiguousarray(value, dtype=np.uint32)
                arr.flags.writeable = False
                object.__setattr__(self, name, arr)

    def encoded(self) -> str:
        """The compressed string ``fpcalc`` prints for the same audio and length."""
        return encode_items(self.items, self.algorithm)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fingerprint):
            return NotImplemented
        return (self.algorithm == other.algorithm and self.duration_s == other.duration_s
                and self.seconds_used == other.seconds_used and np.array_equal(self.items, other.items)
                and ((self.landmarks is None and other.landmarks is None) or (
                    self.landmarks is not None and other.landmarks is not None
                    and np.array_equal(self.landmarks, other.landmarks))))

    __hash__ = None  # type: ignore[assignment]


class _Context:
    """A libchromaprint context fed s16 mono 11025 Hz samples."""

    def __init__(self, algorithm: int) -> None:
        self._ctx = _lib.chromaprint_new(algorithm)
        if not self._ctx or _lib.chromaprint_start(self._ctx, SAMPLE_RATE, 1) != 1:
            raise RuntimeError("libchromaprint could not start a fingerprint")

    def feed(self, samples: npt.NDArray[np.int16]) -> None:
        if len(samples) and _lib.chromaprint_feed(self._ctx, samples.ctypes.data, len(samples)) != 1:
            raise RuntimeError("libchromaprint rejected audio")

    def finish(self) -> npt.NDArray[np.uint32]:
        if _lib.chromaprint_finish(self._ctx) != 1:
            raise RuntimeError("libchromaprint could not finish the fingerprint")
        ptr = ctypes.POINTER(ctypes.c_uint32)()
        size = ctypes.c_int()
        if _lib.chromaprint_get_raw_fingerprint(self._ctx, ctypes.byref(ptr), ctypes.byref(size)) != 1:
            raise RuntimeError("libchromaprint returned no fingerprint")
        try:
            if size.value == 0:
                return np.zeros(0, dtype=np.uint32)
            return np.ctypeslib.as_array(ptr, shape=(size.value,)).copy()
        finally:
            _lib.chromaprint_dealloc(ptr)

    def __del__(self) -> None:
        if getattr(self, "_ctx", None):
            _lib.chromaprint_free(self._ctx)
            self._ctx = None


def fingerprint_samples(samples: npt.ArrayLike, algorithm: int = ALGORITHM_TEST2) -> npt.NDArray[np.uint32]:
    """Raw Chromaprint items of s16 mono 11025 Hz samples already in memory."""
    context = _Context(algorithm)
    context.feed(np.ascontiguousarray(samples, dtype=np.int16))
    return context.finish()


@dataclass(frozen=True)
class _Probe:
    duration_s: float | None
    codec: str
    stream_index: int


def _probe(path: Path) -> _Probe:
    import av

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise FingerprintError("missing_file", f"{path}: no such file") from None
    if size == 0:
        raise FingerprintError("empty_file", f"{path}: file is empty")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        raise FingerprintError("not_audio", f"{path}: FFmpeg cannot read it as media ({exc.strerror})") from None
    except av.error.FFmpegError as exc:
        raise FingerprintError("not_audio", f"{path}: {exc}") from None
    with container:
        streams = list(container.streams.audio)
        if not streams:
            raise FingerprintError("not_audio", f"{path}: no audio stream ({container.format.name})")
        stream = streams[0]
        ctx = stream.codec_context
        codec = getattr(getattr(ctx, "codec", None), "name", None) if ctx is not None else None
        if ctx is None or not codec or not stream.sample_rate:
            name = getattr(stream.codec_context, "name", None) or "unknown"
            raise FingerprintError("unsupported_codec", f"{path}: no decoder for audio codec {name!r}")
        duration: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        fmt = container.format.name
    if "ogg" in fmt.split(","):
        _check_ogg_complete(path)
    elif fmt == "wav":
        _check_wav_complete(path)
    return _Probe(duration_s=duration, codec=codec, stream_index=stream.index)


def _check_ogg_complete(path: Path) -> None:
    """An Ogg stream must end with a complete page flagged end-of-stream."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        start = max(0, size - 256 * 1024)
        fh.seek(start)
        tail = fh.read()
    at = tail.rfind(b"OggS")
    if at < 0 or len(tail) - at < 27:
        raise FingerprintError("truncated", f"{path}: Ogg stream is cut off (no complete final page)")
    header_type = tail[at + 5]
    segments = tail[at + 26]
    if len(tail) - at < 27 + segments:
        raise FingerprintError("truncated", f"{path}: Ogg stream is cut off inside its last page")
    body = sum(tail[at + 27: at + 27 + segments])
    if len(tail) - at < 27 + segments + body:
        raise FingerprintError("truncated", f"{path}: Ogg stream is cut off inside its last page")
    if not header_type & 0x04:
        raise FingerprintError("truncated", f"{path}: Ogg stream has no end-of-stream page")


def _check_wav_complete(path: Path) -> None:
    """A RIFF/WAVE file must hold as many data bytes as its ``data`` chunk declares."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if fh.read(4) != b"RIFF":
            return  # RF64 / W64 declare sizes elsewhere; FFmpeg's duration check covers them
        fh.seek(12)
        while True:
            header = fh.read(8)
            if len(header) < 8:
                return
            chunk, length = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"data":
                if length not in (0, 0xFFFFFFFF) and fh.tell() + length > size:
                    raise FingerprintError("truncated", f"{path}: WAV data chunk declares {length} bytes, "
                                                        f"{size - fh.tell()} present")
                return
            fh.seek(length + (length & 1), os.SEEK_CUR)


def _graph(path: Path):  # type: ignore[no-untyped-def]
    from av.filter import Graph

    graph = Graph()
    source = graph.add("amovie", filename=str(path))
    resample = graph.add("aresample", **RESAMPLER_OPTIONS)
    convert = graph.add("aformat", sample_fmts="s16", sample_rates=str(SAMPLE_RATE), channel_layouts="mono")
    sink = graph.add("abuffersink")
    source.link_to(resample)
    resample.link_to(convert)
    convert.link_to(sink)
    graph.configure()
    graph.set_audio_frame_size(_CHUNK_SAMPLES)
    return graph, sink


def fingerprint_file(path: str | os.PathLike[str], *, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                     algorithm: int = ALGORITHM_TEST2, landmarks: bool = False) -> Fingerprint:
    """Fingerprint the first ``max_seconds`` of a file (``None`` or 0: the whole file).

    With ``landmarks=True`` the same decoded samples also give the landmark fingerprint
    and the denser peaks it is looked up with (:mod:`fingerprinting.landmarks`), so the file
    is decoded once for all.

    Raises :class:`FingerprintError` with a reason code for audio that cannot be
    fingerprinted: missing, empty, not audio, unsupported codec, truncated, corrupt,
    silence only, or too short to yield a single item.
    """
    import av

    path = Path(path)
    probe = _probe(path)
    limit = int(round(max_seconds * SAMPLE_RATE)) if max_seconds else None
    context = _Context(algorithm)
    fed = 0
    peak = 0
    kept: list[npt.NDArray[np.int16]] = []
    try:
        graph, sink = _graph(path)
        while limit is None or fed < limit:
            try:
                frame = sink.pull()
            except (EOFError, av.error.BlockingIOError):
                break
            samples = np.frombuffer(frame.planes[0], dtype=np.int16, count=frame.samples)
            if limit is not None and fed + len(samples) > limit:
                samples = samples[: limit - fed]
            if len(samples):
                peak = max(peak, int(samples.max()), -int(samples.min()))
            context.feed(samples)
            if landmarks:
                kept.append(samples.copy())
            fed += len(samples)
        del graph
    except av.error.FFmpegError as exc:
        reason: ReasonCode = "corrupt"
        if isinstance(exc, av.error.DecoderNotFoundError | av.error.PatchWelcomeError):
            reason = "unsupported_codec"
        raise FingerprintError(reason, f"{path}: decoding failed after {fed / SAMPLE_RATE:.1f} s "
                                       f"({probe.codec}: {exc.strerror or exc})") from None
    decoded_s = fed / SAMPLE_RATE
    if fed == 0:
        raise FingerprintError("corrupt", f"{path}: no audio could be decoded ({probe.codec})")
    wanted = probe.duration_s if limit is None or probe.duration_s is None else min(probe.duration_s, limit / SAMPLE_RATE)
    if wanted is not None and decoded_s < wanted * 0.95 - 1.0:
        raise FingerprintError("truncated", f"{path}: decoded {decoded_s:.1f} s of {wanted:.1f} s "
                                            f"declared by the container ({probe.codec})")
    if peak <= _SILENCE_PEAK:
        raise FingerprintError("silence", f"{path}: {decoded_s:.1f} s of digital silence")
    items = context.finish()
    if len(items) == 0:
        raise FingerprintError("too_short", f"{path}: {decoded_s:.2f} s is too short for a fingerprint")
    duration = probe.duration_s if probe.duration_s is not None else decoded_s
    hashes, query_peaks = compute_landmarks_and_query_peaks(np.concatenate(kept)) if landmarks else (None, None)
    return Fingerprint(items=items, duration_s=float(duration), seconds_used=decoded_s, algorithm=algorithm,
                       landmarks=hashes, query_peaks=query_peaks)
