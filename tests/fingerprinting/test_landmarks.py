"""Landmark fingerprints on real audio: copies that Chromaprint loses are still found."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest
from scipy import signal

from fingerprinting.batch import fingerprint_many
from fingerprinting.chromaprint import fingerprint_file
from fingerprinting.index import LANDMARK, FingerprintIndex
from fingerprinting.landmarks import (
    FRAME_SECONDS,
    HASH_BITS,
    QUERY_FANOUT,
    bass_landmarks,
    find_peaks,
    landmarks_from_peaks,
    pack_peaks,
    peaks_from_landmarks,
    query_landmarks,
    speed_variants,
    unpack_peaks,
)
from fingerprinting.ledger import (
    LANDMARK_THRESHOLD,
    is_match,
    landmark_index_dir,
    match_catalog,
    optout_matches,
    register_optout,
    store_fingerprints,
)
from store.audit import verify_chain
from store.database import connect
from store.ledger import command
from store.sealing import verify_sealed
from tests.fingerprinting.conftest import RATE, TESTDATA, encode, music


def _decode(path: Path) -> np.ndarray:
    """Mono float32 at 44.1 kHz."""
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks = [f.to_ndarray().reshape(-1) for frame in c.decode(audio=0) for f in resampler.resample(frame)]
    return np.concatenate(chunks).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def telephone(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz, like a phone line (written at 8 kHz by :func:`encode`)."""
    sos = signal.butter(8, [300, 3400], btype="bandpass", fs=RATE, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def mixed(x: np.ndarray, other: np.ndarray, db: float) -> np.ndarray:
    other = np.resize(other, len(x))
    return (x + other * (_rms(x) / _rms(other)) * 10 ** (db / 20)).astype(np.float32) * 0.5


def bass_line(seed: int, seconds: float) -> np.ndarray:
    """Notes under 160 Hz only (MIDI 28-51, with their octave), nothing in the telephone band: (1, n) float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    out = np.zeros(n)
    t_note = int(0.3 * RATE)
    t = np.arange(t_note) / RATE
    env = np.exp(-np.linspace(0, 3, t_note))
    for start in range(0, n, t_note):
        length = min(t_note, n - start)
        freq = 440.0 * 2 ** ((int(rng.integers(28, 52)) - 69) / 12)
        out[start:start + length] += (np.sin(2 * np.pi * freq * t[:length]) + 0.3 * np.sin(4 * np.pi * freq * t[:length])
                                      ) * env[:length]
    return (0.4 * out + rng.standard_normal(n) * 0.001)[None, :].astype(np.float32)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("landmarks")
    real = d / "real.mp3"
    shutil.copy(TESTDATA / "test.mp3", real)
    x = _decode(real)
    piece = music(41, 30.0)
    other = music(43, 12.0)[0]
    bass = bass_line(47, 30.0)
    return {
        "bass": encode(d / "bass.flac", bass),
        # 10 s of the bass line with other music 6 dB below it (broadband), which fills the telephone band
        "bass_mixed": encode(d / "bass_mixed.flac", mixed(bass[0, 10 * RATE:20 * RATE], other, -6.0)[None, :]),
        "real": real,
        "A": encode(d / "a.flac", piece),
        "B": encode(d / "b.flac", music(42, 30.0)),
        "real_phone": encode(d / "real_phone.wav", telephone(x)[None, :], rate=8000),
        "real_mixed": encode(d / "real_mixed.mp3", mixed(x, other, -6.0)[None, :]),
        "real_fast": encode(d / "real_fast.flac", signal.resample_poly(x, 100, 103).astype(np.float32)[None, :]),
        "A_phone_excerpt": encode(d / "a_phone.wav", telephone(piece[0, 8 * RATE:16 * RATE])[None, :], rate=8000),
        "unrelated": encode(d / "unrelated.flac", music(44, 20.0)),
    }


@pytest.fixture(scope="module")
def landmark_index(recordings: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> FingerprintIndex:
    index = FingerprintIndex.open(tmp_path_factory.mktemp("lm-index"), method=LANDMARK)
    for ref in ("real", "A", "B", "bass"):
        fp = fingerprint_file(recordings[ref], max_seconds=None, landmarks=True)
        assert fp.landmarks is not None
        index.add(ref, fp.landmarks)
    index.commit()
    return FingerprintIndex.open(index.root, method=LANDMARK)


def _best(index: FingerprintIndex, path: Path):  # type: ignore[no-untyped-def]
    fp = fingerprint_file(path, max_seconds=None, landmarks=True)
    assert fp.query_peaks is not None  # looked up as the product does: with the denser query peaks
    matches = index.query(query_landmarks(fp.query_peaks), limit=3, fanout=QUERY_FANOUT)
    return (matches[0] if matches else None), fp.seconds_used


@pytest.mark.parametrize(("query", "ref", "speed"), [
    ("real_phone", "real", 1.0),       # band-limited to 300-3400 Hz, 8 kHz
    ("real_mixed", "real", 1.0),       # other music mixed in 6 dB below
    ("real_fast", "real", 1.03),       # played 3% faster (pitch and tempo)
    ("A_phone_excerpt", "A", 1.0),     # an 8 s excerpt from the middle, band-limited
    ("bass_mixed", "bass", 1.0),       # a bass line under louder mid-range music: found by the bass band
])
def test_transformed_copies_match_their_recording(landmark_index: FingerprintIndex, recordings: dict[str, Path],
                                                  query: str, ref: str, speed: float) -> None:
    m, seconds = _best(landmark_index, recordings[query])
    assert m is not None and m.ref == ref and m.method == "landmark"
    assert m.score >= LANDMARK_THRESHOLD and is_match(m, seconds)
    assert m.speed == pytest.approx(speed, abs=0.011)
    assert m.bit_error_rate is None and m.span_s >= 0.5 * seconds
    if query == "A_phone_excerpt":
        assert m.offset_s == pytest.approx(8.0, abs=0.1)  # where the excerpt lies in A


def test_a_bass_line_under_other_music_is_found_by_its_bass_peaks(landmark_index: FingerprintIndex,
                                                                  recordings: dict[str, Path]) -> None:
    fp = fingerprint_file(recordings["bass_mixed"], max_seconds=None, landmarks=True)
    assert fp.query_peaks is not None
    lm = query_landmarks(fp.query_peaks)
    bass = bass_landmarks(lm)
    assert bass.any() and (~bass).any()  # the mixed-in music fills the telephone band
    found = [m for m in landmark_index.query(lm, limit=3, fanout=QUERY_FANOUT) if is_match(m, fp.seconds_used)]
    assert [m.ref for m in found] == ["bass"]
    assert found[0].offset_s == pytest.approx(10.0, abs=0.1)
    telephone_band = np.stack([lm[0::2][~bass], lm[1::2][~bass]], axis=1).reshape(-1)
    assert not any(m.ref == "bass" and is_match(m, fp.seconds_used)
                   for m in landmark_index.query(telephone_band, limit=3, fanout=QUERY_FANOUT))


@pytest.mark.parametrize("query", ["real_mixed", "real_fast", "A_phone_excerpt"])
def test_chromaprint_misses_copies_that_landmarks_find(recordings: dict[str, Path], query: str) -> None:
    index = FingerprintIndex.open(recordings["real"].parent / "cp-index")
    for ref in ("real", "A", "B"):
        index.add(ref, fingerprint_file(recordings[ref], max_seconds=None).items)
    fp = fingerprint_file(recordings[query], max_seconds=None)
    assert not any(is_match(m, fp.seconds_used) for m in index.query(fp.items))


def test_unrelated_audio_does_not_match(landmark_index: FingerprintIndex, recordings: dict[str, Path]) -> None:
    m, seconds = _best(landmark_index, recordings["unrelated"])
    assert m is None or (m.score < LANDMARK_THRESHOLD and not is_match(m, seconds))


def test_landmarks_name_their_peaks_and_speed_variants_rescale_them(recordings: dict[str, Path]) -> None:
    fp = fingerprint_file(recordings["A"], max_seconds=None, landmarks=True)
    lm = fp.landmarks
    assert lm is not None and len(lm) % 2 == 0
    hashes, frames = lm[0::2], lm[1::2]
    assert hashes.max() < 1 << HASH_BITS and np.all(np.diff(frames.astype(np.int64)) >= 0)
    assert 30 <= len(hashes) / fp.seconds_used <= 400  # a bounded density of hashes per second
    assert frames.max() * FRAME_SECONDS == pytest.approx(fp.seconds_used, abs=2.0)
    again = landmarks_from_peaks(peaks_from_landmarks(lm))
    assert set(zip(hashes.tolist(), frames.tolist(), strict=True)) <= set(
        zip(again[0::2].tolist(), again[1::2].tolist(), strict=True))
    variants = dict(speed_variants(lm))
    assert variants[1.0] is lm and set(variants) == {0.96, 0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03, 1.04}
    slow = peaks_from_landmarks(variants[1.04])
    assert slow.frames.max() == pytest.approx(frames.max() * 1.04, abs=3)
    assert len(find_peaks(np.zeros(11025, dtype=np.int16)).frames) == 0  # silence has no peaks


def test_a_mixed_copy_of_an_opt_out_is_denied_with_landmark_evidence(
        tmp_path: Path, recordings: dict[str, Path]) -> None:
    db = tmp_path / "ledger.duckdb"
    ids = {"P1": recordings["real_mixed"], "P2": recordings["B"], "P3": recordings["unrelated"]}
    with connect(db) as con:
        now = datetime.now(UTC)
        with command(con, "ops", "catalog.ingest", "delivery:D1") as w:
            w.insert("tracks", [{"track_id": t, "delivery_id": "D1", "isrc": f"GBAYE250001{i}", "title": t,
                                 "source_path": str(p), "audio_sha256": "x", "ingested_at": now}
                                for i, (t, p) in enumerate(ids.items())])
        outcomes = fingerprint_many(list(ids.values()), max_seconds=None, workers=1, landmarks=True)
        store_fingerprints(con, zip(ids, outcomes, strict=True), "D1", actor="test")
        assert con.execute("SELECT count(*) FROM landmark_fingerprints l JOIN landmark_query_peaks q USING (ref) "
                           "WHERE ref LIKE 'track:%' AND len(q.query_peaks) = q.peak_count "
                           "AND q.peak_count > l.landmark_count / 8").fetchone() == (3,)
        register_optout(con, optout_id="OPT-9", claimant="Rights Holder Ltd", audio_path=recordings["real"],
                        actor="rights@label")
        summary = match_catalog(con, tmp_path / "index", actor="test")
        assert summary.tracks_denied_by_optout == 1 and summary.matches_by_method == {"landmark": 1}
        [hit] = optout_matches(con, "P1")
        assert (hit.matched_ref, hit.method, hit.bit_error_rate) == ("OPT-9", "landmark", None)
        assert hit.score >= hit.threshold == LANDMARK_THRESHOLD
        assert hit.offset_s == pytest.approx(0.0, abs=0.1) and hit.span_s >= 5.0
        assert optout_matches(con, "P2") == [] and optout_matches(con, "P3") == []
        assert sorted(FingerprintIndex.open(landmark_index_dir(tmp_path / "index"), method=LANDMARK).refs()) == [
            "optout:OPT-9", "track:P1", "track:P2", "track:P3"]
        rows_before = con.execute("SELECT * FROM audio_matches ORDER BY ALL").fetchall()
        match_catalog(con, tmp_path / "index", actor="test")
        assert con.execute("SELECT * FROM audio_matches ORDER BY ALL").fetchall() == rows_before
        assert verify_chain(con).ok and verify_sealed(con)[0] == []


def test_the_landmark_index_persists_removes_and_keeps_its_method(tmp_path: Path,
                                                                  recordings: dict[str, Path]) -> None:
    root = tmp_path / "lm"
    fp = fingerprint_file(recordings["A"], max_seconds=None, landmarks=True)
    query = fingerprint_file(recordings["A_phone_excerpt"], max_seconds=None, landmarks=True).landmarks
    assert fp.landmarks is not None and query is not None
    with FingerprintIndex.open(root, method=LANDMARK) as index:
        index.add("A", fp.landmarks)
        assert index.query(query)[0].ref == "A"  # visible before the commit
    reopened = FingerprintIndex.open(root, method=LANDMARK)
    assert reopened.refs() == ["A"] and reopened.method == LANDMARK
    assert reopened.query(query)[0].ref == "A"
    with pytest.raises(ValueError, match="landmark"):
        FingerprintIndex.open(root)  # a Chromaprint reader must not read landmark hashes as items
    assert reopened.remove("A")
    reopened.commit()
    assert FingerprintIndex.open(root, method=LANDMARK).query(query) == []


def test_denser_query_peaks_find_more_of_a_mixed_copys_hashes(landmark_index: FingerprintIndex,
                                                               recordings: dict[str, Path]) -> None:
    fp = fingerprint_file(recordings["real_mixed"], max_seconds=None, landmarks=True)
    assert fp.landmarks is not None and fp.query_peaks is not None
    peaks = unpack_peaks(fp.query_peaks)
    assert np.array_equal(pack_peaks(peaks), fp.query_peaks)  # packing loses nothing
    sparse = peaks_from_landmarks(fp.landmarks)
    assert len(peaks.frames) > 2 * len(sparse.frames)
    as_reference = landmark_index.query(fp.landmarks, limit=1)[0]
    as_query = landmark_index.query(query_landmarks(fp.query_peaks), limit=1, fanout=QUERY_FANOUT)[0]
    assert as_reference.ref == as_query.ref == "real"
    assert as_query.score > 1.5 * as_reference.score
