"""Hostile audio in a delivery: each bad file is quarantined with its name and reason; the rest goes on."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from store.audit import verify_chain
from tests.audio_fixtures import music_like, write_audio
from tests.reliability.conftest import ingest_and_fingerprint, quarantined, track_files

GOOD = {"good-a.flac", "good-b.ogg", "good-c.mp3"}
ROOT = Path(__file__).resolve().parents[2]


def _corrupt(audio: Path, tmp: Path) -> None:
    data = bytearray(write_audio(tmp / "src.flac", music_like(6, seed=90)).read_bytes())
    data[2000:] = np.random.default_rng(0).integers(0, 256, len(data) - 2000, dtype=np.uint8).tobytes()
    (audio / "corrupt.flac").write_bytes(bytes(data))


def _truncated_ogg(audio: Path, tmp: Path) -> None:
    data = write_audio(tmp / "src.ogg", music_like(6, seed=91)).read_bytes()
    (audio / "truncated.ogg").write_bytes(data[: len(data) // 2])


def _truncated_wav(audio: Path, tmp: Path) -> None:
    data = write_audio(tmp / "src.wav", music_like(6, seed=92)).read_bytes()
    (audio / "truncated.wav").write_bytes(data[: len(data) // 2])


def _cut_header(audio: Path, tmp: Path) -> None:
    data = write_audio(tmp / "src.flac", music_like(6, seed=93)).read_bytes()
    (audio / "cut-header.flac").write_bytes(data[:60])


def _zero_length(audio: Path, tmp: Path) -> None:
    (audio / "zero.wav").write_bytes(b"")


def _silent(audio: Path, tmp: Path) -> None:
    write_audio(audio / "silent.wav", np.zeros(44100 * 5, dtype=np.float32))


def _text_as_mp3(audio: Path, tmp: Path) -> None:
    (audio / "liner-notes.mp3").write_text("Recorded live at the Old Vic, 1977. " * 200, encoding="utf-8")


def _image(audio: Path, tmp: Path) -> None:
    (audio / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(4000))


def _mislabelled(audio: Path, tmp: Path) -> None:
    mp3 = write_audio(tmp / "src.mp3", music_like(6, seed=94))
    (audio / "mislabelled.flac").write_bytes(mp3.read_bytes())


def _huge(audio: Path, tmp: Path) -> None:
    with open(audio / "huge.wav", "wb") as handle:  # sparse: 5 GiB long, a few bytes on disk
        handle.truncate(5 * 1024**3)


# kind -> (how to make it, file name, stage that catches it, reason code)
KINDS: dict[str, tuple[Callable[[Path, Path], None], str, str, str]] = {
    "corrupt": (_corrupt, "corrupt.flac", "fingerprint", "corrupt"),
    "truncated_ogg": (_truncated_ogg, "truncated.ogg", "fingerprint", "truncated"),
    "truncated_wav": (_truncated_wav, "truncated.wav", "fingerprint", "truncated"),
    "truncated_header": (_cut_header, "cut-header.flac", "ingest", "not_audio"),
    "zero_length": (_zero_length, "zero.wav", "ingest", "empty_file"),
    "silent": (_silent, "silent.wav", "fingerprint", "silence"),
    "non_audio": (_text_as_mp3, "liner-notes.mp3", "ingest", "not_audio"),
    "non_audio_type": (_image, "cover.jpg", "ingest", "not_audio"),
    "mislabelled": (_mislabelled, "mislabelled.flac", "ingest", "mislabelled"),
    "huge": (_huge, "huge.wav", "ingest", "file_too_large"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bad_audio_is_quarantined_by_name_and_reason_and_the_batch_completes(
        kind: str, delivery: Path, con, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make, name, stage, reason = KINDS[kind]
    make(delivery / "audio", tmp_path)

    ingest_and_fingerprint(con, delivery)

    rows = quarantined(con)
    assert [(s, f, r) for s, f, r, _ in rows] == [(stage, name, reason)]
    assert name in rows[0][3]  # the message names the file
    files = track_files(con)
    assert {f for f, fingerprinted in files.items() if fingerprinted} == GOOD
    assert set(files) - GOOD == ({name} if stage == "fingerprint" else set())
    assert verify_chain(con).ok


def test_every_kind_at_once_in_one_delivery(delivery: Path, con, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for i, (make, *_rest) in enumerate(KINDS.values()):
        scratch = tmp_path / f"scratch{i}"
        scratch.mkdir()
        make(delivery / "audio", scratch)
    out = ingest_and_fingerprint(con, delivery)
    expected = sorted((stage, name, reason) for _, name, stage, reason in KINDS.values())
    assert sorted((s, f, r) for s, f, r, _ in quarantined(con)) == expected
    assert {f for f, ok in track_files(con).items() if ok} == GOOD
    assert out["ingest"].ingested == len(GOOD) + sum(1 for *_, s, _ in KINDS.values() if s == "fingerprint")
    assert out["fingerprint"].stored == len(GOOD)
    # Re-running converges: the same rows, not twice as many.
    ingest_and_fingerprint(con, delivery)
    assert sorted((s, f, r) for s, f, r, _ in quarantined(con)) == expected


def test_size_limit_is_a_setting(delivery: Path, con, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LINERNOTES_MAX_AUDIO_BYTES", str(60_000))
    ingest_and_fingerprint(con, delivery)
    too_big = {f for s, f, r, _ in quarantined(con) if r == "file_too_large"}
    sizes = {p.name: p.stat().st_size for p in (delivery / "audio").iterdir()}
    assert too_big == {n for n, size in sizes.items() if size > 60_000} and too_big and too_big != GOOD


def _sparse_wav(path: Path, total_bytes: int, music_seconds: float) -> Path:
    """A valid 44.1 kHz stereo WAV whose data chunk is ``total_bytes`` long: music, then a hole of zeros."""
    pcm = (music_like(music_seconds, seed=95) * 32767).astype("<i2")
    stereo = np.repeat(pcm[:, None], 2, axis=1).tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + total_bytes) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 2, 44100, 44100 * 4, 4, 16) + b"data" + struct.pack("<I", total_bytes)
    with open(path, "wb") as handle:
        handle.write(header + stereo)
        handle.truncate(len(header) + total_bytes)
    return path


_STREAMING_PROBE = """
import json, sys
from pathlib import Path
from catalog.ingest import ingest_delivery
from fingerprinting.chromaprint import fingerprint_file
from store.database import connect
delivery, db = Path(sys.argv[1]), Path(sys.argv[2])
with connect(db) as con:
    report = ingest_delivery(con, delivery, delivery_id="big", actor="tester")
    duration = con.execute("SELECT duration_s FROM tracks").fetchone()[0]
fp = fingerprint_file(delivery / "audio" / "long.wav", max_seconds=120)
# VmHWM is this program's own peak; ru_maxrss would also carry the forking parent's size over exec.
hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
           if line.startswith("VmHWM:"))
print(json.dumps({"ingested": report.ingested, "duration_s": duration, "seconds_used": fp.seconds_used,
                  "items": len(fp.items), "max_rss_kib": hwm}))
"""


def test_a_long_file_under_the_limit_is_streamed_not_loaded_whole(tmp_path: Path) -> None:
    size = 1024**3  # one GiB of PCM: about 100 minutes
    delivery = tmp_path / "delivery"
    (delivery / "audio").mkdir(parents=True)
    wav = _sparse_wav(delivery / "audio" / "long.wav", size, 30.0)
    assert os.stat(wav).st_blocks * 512 < 64 * 1024**2  # nothing like a GiB on disk
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _STREAMING_PROBE, str(delivery), str(tmp_path / "l.duckdb")],
                          capture_output=True, text=True, env=env, timeout=120, check=True)
    import json

    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ingested"] == 1 and out["duration_s"] > 6000
    assert out["seconds_used"] == pytest.approx(120.0, abs=0.5) and out["items"] > 900
    assert out["max_rss_kib"] * 1024 < size / 2, out
