"""Landmark fingerprints: hashed pairs of spectral peaks (Wang 2003; the scheme of audfprint and Panako).

Chromaprint summarises the whole spectrum of every frame, so anything that changes the
spectrum as a whole (band-limiting to telephone quality, other music mixed in, strong
noise) changes most of its bits. A landmark fingerprint keeps only the strongest local
peaks of a spectrogram and hashes pairs of them (anchor frequency, frequency difference,
time difference). A peak that survives a transform is enough: a copy matches when
enough hashes agree on a single time offset, and the hashes of unrelated audio almost
never do.

Peaks are taken from the same 11025 Hz mono samples Chromaprint is fed, in two bands read
separately: the telephone band (300–3400 Hz, 512-point FFT) so that a band-limited copy keeps
them, and the bass (21–300 Hz, the bins of a 2048-point FFT on the same 23 ms frames, so notes a
few Hz apart are told apart). Mixing other music in is judged by broadband level, and in a track whose
energy lies mostly in the bass the telephone band keeps little of it once other music is
mixed in; its bass peaks survive. A pair never crosses bands: bass peaks are numbered from
``F_LOW + BASS_BASE`` in the same 8-bit bin field, so a bass hash can never equal a telephone-band
one. A copy played slightly faster or slower (±4%) is found by rescaling the query's peaks
over a grid of speeds before hashing.

A landmark array holds two ``uint32`` per landmark: ``[hash, frame, hash, frame, ...]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage, signal

SAMPLE_RATE = 11025
N_FFT = 512
HOP = 256
FRAME_SECONDS = HOP / SAMPLE_RATE  # ~23 ms
BIN_HZ = SAMPLE_RATE / N_FFT  # ~21.5 Hz
F_LOW = 14  # bin of ~300 Hz
F_HIGH = 158  # bin of ~3400 Hz
PEAK_FREQ_RADIUS = 8  # a peak is the loudest point of +-8 bins ...
PEAK_TIME_RADIUS = 6  # ... and +-6 frames
PEAK_MIN_DB = 6.0  # and stands this far above its neighbourhood's mean level
PEAKS_PER_SECOND = 24  # the strongest ones, per second of audio
FANOUT = 8
DT_MAX = 63  # frames (~1.5 s): 6 bits
DF_MAX = 63  # bins: 7 bits signed
HASH_BITS = 21  # 8 bits anchor bin, 7 bits frequency difference, 6 bits time difference
# The bass band: bins of a 2048-point FFT (~5.4 Hz), numbered from F_LOW + BASS_BASE in the shared bin field.
# Computed on the samples decimated 8 times (1378 Hz) with a 256-point FFT and a 32-sample hop: the same
# bins and frames at an eighth of the cost.
BASS_N_FFT = 2048
BASS_DECIMATION = 8
BASS_BIN_LOW = 4  # ~21.5 Hz
BASS_BIN_HIGH = 56  # ~301 Hz
BASS_BASE = 150  # above F_HIGH - F_LOW (144): anchors 150-202 are bass
BASS_PEAKS_PER_SECOND = 12
BASS_FREQ_RADIUS = 3
QUERY_BASS_PEAKS_PER_SECOND = 36
QUERY_BASS_FREQ_RADIUS = 2
SPEEDS = tuple(round(1.0 + 0.01 * k, 2) for k in range(-4, 5))
# A query is read with denser peaks (smaller neighbourhoods, three times as many per second) and a
# wider fan-out than the indexed references, as audfprint does: a reference's pair is found when its
# two peaks survive anywhere in the query, even where music mixed in takes the strongest peaks.
QUERY_PEAKS_PER_SECOND = 72
QUERY_FANOUT = 24
QUERY_FREQ_RADIUS = 4
QUERY_TIME_RADIUS = 3

U32 = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class Peaks:
    """Spectral peaks: frame numbers and bin numbers, sorted by frame, then bin.

    A telephone-band peak's number is its 512-point FFT bin (``F_LOW``-``F_HIGH``); a bass peak's is
    ``F_LOW + BASS_BASE`` plus its 2048-point FFT bin above ``BASS_BIN_LOW``.
    """

    frames: npt.NDArray[np.int64]
    bins: npt.NDArray[np.int64]


def _spectrogram_db(samples: npt.NDArray[np.int16], n_fft: int = N_FFT, low: int = F_LOW, high: int = F_HIGH,
                    hop: int = HOP) -> npt.NDArray[np.float32]:
    """Log magnitude (dB) of FFT bins ``low``-``high`` (the telephone band by default), one row per frame."""
    x = np.asarray(samples, dtype=np.float32) / 32768.0
    if len(x) < n_fft:
        return np.zeros((0, high - low + 1), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    window = np.hanning(n_fft).astype(np.float32)
    spec = np.empty((len(frames), high - low + 1), dtype=np.float32)
    step = (1 << 21) // n_fft  # frames per block: bounded temporary memory for long files
    for start in range(0, len(frames), step):
        block = np.fft.rfft(frames[start:start + step] * window, axis=1)[:, low:high + 1]
        spec[start:start + step] = 10.0 * np.log10(np.abs(block) ** 2 + 1e-10)
    return spec


def _bass_spectrogram_db(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """The bass band, one row per frame: a 2048-point FFT's bins 4-56, from the samples decimated 8 times."""
    q = BASS_DECIMATION
    low_rate = signal.resample_poly(np.asarray(samples, dtype=np.float32), 1, q)
    # An eighth of the samples per window: +18 dB puts the levels on the 2048-point scale.
    return _spectrogram_db(low_rate, BASS_N_FFT // q, BASS_BIN_LOW, BASS_BIN_HIGH, HOP // q) + np.float32(20 * np.log10(q))


def find_peaks(samples: npt.NDArray[np.int16], *, peaks_per_second: float = PEAKS_PER_SECOND,
               freq_radius: int = PEAK_FREQ_RADIUS, time_radius: int = PEAK_TIME_RADIUS) -> Peaks:
    """The strongest local maxima of the telephone-band spectrogram of s16 mono 11025 Hz samples."""
    return _peaks(_spectrogram_db(samples), peaks_per_second, freq_radius, time_radius)


def _both_bands(spec: npt.NDArray[np.float32], bass: npt.NDArray[np.float32], *, query: bool) -> Peaks:
    """The peaks of both bands (the reference's or, with ``query``, the denser ones a query is read with)."""
    if query:
        main = _peaks(spec, QUERY_PEAKS_PER_SECOND, QUERY_FREQ_RADIUS, QUERY_TIME_RADIUS)
        low = _peaks(bass, QUERY_BASS_PEAKS_PER_SECOND, QUERY_BASS_FREQ_RADIUS, QUERY_TIME_RADIUS,
                     first_bin=F_LOW + BASS_BASE, level_freq_radius=BASS_FREQ_RADIUS)
    else:
        main = _peaks(spec, PEAKS_PER_SECOND, PEAK_FREQ_RADIUS, PEAK_TIME_RADIUS)
        low = _peaks(bass, BASS_PEAKS_PER_SECOND, BASS_FREQ_RADIUS, PEAK_TIME_RADIUS,
                     first_bin=F_LOW + BASS_BASE, level_freq_radius=BASS_FREQ_RADIUS)
    frames = np.concatenate([main.frames, low.frames])
    bins = np.concatenate([main.bins, low.bins])
    order = np.lexsort((bins, frames))
    return Peaks(frames[order], bins[order])


def _peaks(spec: npt.NDArray[np.float32], peaks_per_second: float, freq_radius: int, time_radius: int, *,
           first_bin: int = F_LOW, level_freq_radius: int = PEAK_FREQ_RADIUS) -> Peaks:
    if len(spec) == 0:
        return Peaks(np.zeros(0, np.int64), np.zeros(0, np.int64))
    size = (2 * time_radius + 1, 2 * freq_radius + 1)
    local_max = ndimage.maximum_filter(spec, size=size, mode="nearest")
    level = ndimage.uniform_filter(spec, size=(2 * PEAK_TIME_RADIUS + 1, 4 * level_freq_radius + 1), mode="nearest")
    salience = spec - level
    is_peak = (spec >= local_max) & (salience >= PEAK_MIN_DB) & (spec > -90.0)
    frames, bins = np.nonzero(is_peak)
    strength = salience[frames, bins]
    # Keep the strongest peaks of each second, so loud passages do not crowd out quiet ones.
    per_block = max(1, round(peaks_per_second * FRAME_SECONDS * 64))
    block = frames // 64
    order = np.lexsort((-strength, block))
    frames, bins, block = frames[order], bins[order], block[order]
    first = np.searchsorted(block, block, side="left")
    rank = np.arange(len(block)) - first
    keep = rank < per_block
    frames, bins = frames[keep], bins[keep]
    order = np.lexsort((bins, frames))
    return Peaks(frames[order].astype(np.int64), bins[order].astype(np.int64) + first_bin)


def _pairs(frames: npt.NDArray[np.int64], bins: npt.NDArray[np.int64], fanout: int = FANOUT
           ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(hash, anchor frame) of each anchor paired with up to ``fanout`` later peaks in its target zone."""
    n = len(frames)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    hashes, anchors = [], []
    # Look ahead a fixed number of peaks: those within DT_MAX frames and DF_MAX bins are paired.
    found = np.zeros(n, dtype=np.int64)
    for step in range(1, 4 * fanout):
        a = np.arange(n - step)
        b = a + step
        dt = frames[b] - frames[a]
        df = bins[b] - bins[a]
        ok = (dt >= 1) & (dt <= DT_MAX) & (np.abs(df) <= DF_MAX) & (found[a] < fanout)
        if not ok.any():
            if (dt > DT_MAX).all():
                break
            continue
        a, dt, df = a[ok], dt[ok], df[ok]
        found[a] += 1
        f1 = bins[a] - F_LOW
        hashes.append((f1 << 13) | ((df + 64) << 6) | dt)
        anchors.append(frames[a])
    if not hashes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    h, t = np.concatenate(hashes), np.concatenate(anchors)
    valid = (h >= 0) & (h < (1 << HASH_BITS))
    return h[valid], t[valid]


def landmarks_from_peaks(peaks: Peaks, speed: float = 1.0, fanout: int = FANOUT) -> U32:
    """Landmark array ``[hash, frame, ...]`` of ``peaks``, read as if played at 1/``speed``.

    ``speed`` > 1 maps a copy played faster back onto the original's time and frequency grid.
    Each band is paired on its own.
    """
    bass = peaks.bins >= F_LOW + BASS_BASE
    hashes, anchors = [], []
    # (peaks of the band, its bin numbers minus its FFT bins, its lowest and highest FFT bin)
    for keep, shift, low, high in ((~bass, 0, F_LOW, F_HIGH),
                                   (bass, F_LOW + BASS_BASE - BASS_BIN_LOW, BASS_BIN_LOW, BASS_BIN_HIGH)):
        frames, bins = peaks.frames[keep], peaks.bins[keep] - shift  # FFT bins of the band
        if speed != 1.0:
            frames = np.round(frames * speed).astype(np.int64)
            bins = np.round(bins / speed).astype(np.int64)
            inside = (bins >= low) & (bins <= high)
            frames, bins = frames[inside], bins[inside]
        h, t = _pairs(frames, bins + shift, fanout)
        hashes.append(h)
        anchors.append(t)
    h, t = np.concatenate(hashes), np.concatenate(anchors)
    order = np.lexsort((h, t))
    h, t = h[order], t[order]
    out = np.empty(2 * len(h), dtype=np.uint32)
    out[0::2] = h
    out[1::2] = t
    return out


def compute_landmarks(samples: npt.NDArray[np.int16]) -> U32:
    """The landmark array of s16 mono 11025 Hz samples (both bands)."""
    return landmarks_from_peaks(_both_bands(_spectrogram_db(samples), _bass_spectrogram_db(samples), query=False))


def compute_landmarks_and_query_peaks(samples: npt.NDArray[np.int16]) -> tuple[U32, U32]:
    """The landmark array (what is indexed) and the packed query peaks (what is looked up) of the samples."""
    spec, bass = _spectrogram_db(samples), _bass_spectrogram_db(samples)
    reference = landmarks_from_peaks(_both_bands(spec, bass, query=False))
    return reference, pack_peaks(_both_bands(spec, bass, query=True))


def pack_peaks(peaks: Peaks) -> U32:
    """Peaks as one ``uint32`` each: frame << 8 | (bin - F_LOW)."""
    return ((peaks.frames << 8) | (peaks.bins - F_LOW)).astype(np.uint32)


def unpack_peaks(packed: npt.ArrayLike) -> Peaks:
    """The peaks :func:`pack_peaks` packed."""
    arr = np.asarray(packed, dtype=np.int64)
    return Peaks(arr >> 8, (arr & 0xFF) + F_LOW)


def query_landmarks(packed_peaks: npt.ArrayLike) -> U32:
    """The landmark array a query looks up, from its packed query peaks (fan-out ``QUERY_FANOUT``)."""
    return landmarks_from_peaks(unpack_peaks(packed_peaks), fanout=QUERY_FANOUT)


def peaks_from_landmarks(landmarks: npt.ArrayLike) -> Peaks:
    """The peaks a landmark array was made of (each landmark names its anchor and its target)."""
    arr = np.asarray(landmarks, dtype=np.int64)
    h, t = arr[0::2], arr[1::2]
    f1 = (h >> 13) + F_LOW
    df = ((h >> 6) & 0x7F) - 64
    dt = h & 0x3F
    frames = np.concatenate([t, t + dt])
    bins = np.concatenate([f1, f1 + df])
    unique = np.unique(frames * 1024 + bins)
    return Peaks(unique // 1024, unique % 1024)


def speed_variants(landmarks: npt.ArrayLike, speeds: tuple[float, ...] = SPEEDS,
                   fanout: int = FANOUT) -> list[tuple[float, U32]]:
    """A query's landmarks re-read at each speed of ``speeds`` (1.0 is the landmarks themselves)."""
    arr = np.asarray(landmarks, dtype=np.uint32)
    peaks = peaks_from_landmarks(arr) if any(s != 1.0 for s in speeds) else None
    return [(s, arr if s == 1.0 or peaks is None else landmarks_from_peaks(peaks, s, fanout)) for s in speeds]


def bass_landmarks(landmarks: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """One flag per landmark of a landmark array: whether it pairs two bass-band peaks."""
    return (np.asarray(landmarks, dtype=np.int64)[0::2] >> 13) >= BASS_BASE


def landmark_seconds(landmarks: npt.ArrayLike) -> float:
    """How far into the audio the last landmark lies."""
    arr = np.asarray(landmarks, dtype=np.int64)
    return float((arr[1::2].max() + 1) * FRAME_SECONDS) if len(arr) else 0.0
