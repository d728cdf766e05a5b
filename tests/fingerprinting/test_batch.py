from __future__ import annotations

from pathlib import Path

from fingerprinting.batch import fingerprint_many
from fingerprinting.chromaprint import fingerprint_file
from tests.fingerprinting.conftest import encode, music


def test_batch_keeps_order_and_survives_bad_files(tmp_path: Path, song: Path) -> None:
    other = encode(tmp_path / "other.mp3", music(11, 15.0))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"\x00\x01not audio" * 100)
    paths = [song, empty, other, junk, tmp_path / "gone.flac"]
    outcomes = list(fingerprint_many(paths, workers=2, max_seconds=30))
    assert [o.path for o in outcomes] == paths
    assert [o.ok for o in outcomes] == [True, False, True, False, False]
    assert [o.reason_code for o in outcomes if not o.ok] == ["empty_file", "not_audio", "missing_file"]
    assert all(o.message and str(o.path) in o.message for o in outcomes if not o.ok)
    # Threads give the same answer as a direct call.
    assert outcomes[2].fingerprint == fingerprint_file(other, max_seconds=30)
    assert outcomes[0].fingerprint is not None and outcomes[0].fingerprint.seconds_used == 30.0


def test_empty_batch_yields_nothing() -> None:
    assert list(fingerprint_many([])) == []
