from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from fingerprinting.chromaprint import (
    ITEM_SECONDS,
    FingerprintError,
    decode_items,
    encode_items,
    fingerprint_file,
)
from tests.fingerprinting.conftest import TESTDATA, encode, music


def _fpcalc_items(text: str) -> list[int]:
    return [int(x) for x in text.split("FINGERPRINT=")[1].strip().split(",")]


def test_upstream_test_mp3_is_bit_identical_to_fpcalc() -> None:
    fp = fingerprint_file(TESTDATA / "test.mp3")
    assert fp.items.tolist() == _fpcalc_items((TESTDATA / "test.mp3.fpcalc.out").read_text())
    expected = (TESTDATA / "test.mp3.fpcalc_compressed.debian-1.5.1.out").read_text().split("FINGERPRINT=")[1].strip()
    assert fp.encoded() == expected
    assert fp.algorithm == 1
    assert fp.duration_s == pytest.approx(10.0, abs=0.1)


@pytest.mark.skipif(shutil.which("fpcalc") is None, reason="fpcalc is not installed")
@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".opus", ".m4a"])
def test_formats_match_fpcalc_bit_for_bit(audio_dir: Path, suffix: str) -> None:
    path = encode(audio_dir / f"fmt{suffix}", music(7, 25.0))
    out = subprocess.run(["fpcalc", "-raw", "-length", "20", str(path)], capture_output=True, text=True, check=True)
    fp = fingerprint_file(path, max_seconds=20)
    assert fp.items.tolist() == _fpcalc_items(out.stdout)
    assert fp.seconds_used == pytest.approx(20.0, abs=0.01)
    assert fp.duration_s == pytest.approx(25.0, abs=0.1)


def test_ogg_vorbis_fingerprints_like_its_source(audio_dir: Path, song: Path) -> None:
    ogg = encode(audio_dir / "song.ogg", music(1, 40.0))
    a, b = fingerprint_file(ogg).items, fingerprint_file(song).items
    n = min(len(a), len(b))
    ber = np.bitwise_count(a[:n] ^ b[:n]).sum() / (32 * n)
    assert ber < 0.1


def test_length_limits_the_items_but_not_the_duration(song: Path) -> None:
    short = fingerprint_file(song, max_seconds=10)
    full = fingerprint_file(song, max_seconds=None)
    assert short.seconds_used == pytest.approx(10.0, abs=0.01)
    assert full.seconds_used == pytest.approx(40.0, abs=0.05)
    assert short.duration_s == full.duration_s == pytest.approx(40.0, abs=0.05)
    assert len(full.items) == pytest.approx(40.0 / ITEM_SECONDS, abs=30)
    # The limited fingerprint is a prefix of the full one, give or take the final frames.
    assert np.array_equal(short.items[:-3], full.items[: len(short.items) - 3])


def test_encoded_string_round_trips() -> None:
    items = np.random.default_rng(0).integers(0, 2**32, size=500, dtype=np.uint32)
    decoded, algorithm = decode_items(encode_items(items))
    assert algorithm == 1
    assert np.array_equal(decoded, items)
    with pytest.raises(ValueError):
        decode_items("not a fingerprint!")


def _wav(path: Path, samples: np.ndarray, rate: int = 44100) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def _reason(path: Path) -> str:
    with pytest.raises(FingerprintError) as info:
        fingerprint_file(path)
    assert str(path) in info.value.message
    return info.value.reason_code


def test_bad_audio_gets_a_reason(tmp_path: Path, song: Path) -> None:
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp3"
    text.write_text("these are liner notes, not audio\n" * 50)
    silence = _wav(tmp_path / "silence.wav", np.zeros(44100 * 10))
    short = _wav(tmp_path / "short.wav", (music(3, 0.5)[0] * 20000))
    assert _reason(tmp_path / "missing.wav") == "missing_file"
    assert _reason(empty) == "empty_file"
    assert _reason(text) == "not_audio"
    assert _reason(silence) == "silence"
    assert _reason(short) == "too_short"


def test_truncated_files_are_caught(tmp_path: Path, audio_dir: Path, song: Path) -> None:
    data = song.read_bytes()
    cut_flac = tmp_path / "cut.flac"
    cut_flac.write_bytes(data[: len(data) // 2])
    assert _reason(cut_flac) == "truncated"
    ogg = encode(audio_dir / "trunc-src.opus", music(4, 30.0)).with_suffix(".opus")
    cut_ogg = tmp_path / "cut.opus"
    cut_ogg.write_bytes(ogg.read_bytes()[: ogg.stat().st_size * 2 // 3])
    assert _reason(cut_ogg) == "truncated"
    wav = _wav(tmp_path / "full.wav", music(5, 20.0)[0] * 20000)
    cut_wav = tmp_path / "cut.wav"
    cut_wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 3])
    assert _reason(cut_wav) == "truncated"


def test_unknown_codec_is_unsupported(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "odd.wav", music(6, 5.0)[0] * 20000)
    data = bytearray(wav.read_bytes())
    data[20:22] = (0x7777).to_bytes(2, "little")  # WAVE format tag no decoder knows
    odd = tmp_path / "odd-codec.wav"
    odd.write_bytes(bytes(data))
    assert _reason(odd) in {"unsupported_codec", "not_audio"}


@pytest.mark.parametrize("suffix", [".flac", ".mp3"])
def test_corrupt_data_mid_stream_is_reported(tmp_path: Path, suffix: str) -> None:
    source = encode(tmp_path / f"src{suffix}", music(2, 20.0))
    data = bytearray(source.read_bytes())
    n = len(data)
    data[n // 3: n // 3 + n // 4] = np.random.default_rng(0).integers(0, 256, n // 4, dtype=np.uint8).tobytes()
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(bytes(data))
    assert _reason(broken) == "corrupt"
