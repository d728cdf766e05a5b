from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dagster_project.cli import app
from fingerprinting.batch import fingerprint_many
from fingerprinting.ledger import match_catalog, store_fingerprints
from store.database import connect
from store.home import Home
from tests.fingerprinting.conftest import RATE, TESTDATA, encode, music
from tests.roles import write_test_roles

runner = CliRunner()


def test_fingerprint_prints_what_fpcalc_prints() -> None:
    raw = runner.invoke(app, ["fingerprint", "--raw", str(TESTDATA / "test.mp3")])
    assert raw.exit_code == 0, raw.output
    assert raw.stdout == (TESTDATA / "test.mp3.fpcalc.out").read_text()
    compressed = runner.invoke(app, ["fingerprint", str(TESTDATA / "test.mp3")])
    assert compressed.stdout == (TESTDATA / "test.mp3.fpcalc_compressed.debian-1.5.1.out").read_text()


def test_fingerprint_reports_bad_files_and_keeps_going(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_text("no audio here")
    result = runner.invoke(app, ["fingerprint", "--json", "--length", "5", str(bad), str(TESTDATA / "test.mp3")])
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert rows[0]["error"] == "not_audio" and rows[1]["duration"] == 10.0
    assert "not_audio" in result.stderr


def test_match_finds_an_excerpt(tmp_path: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    write_test_roles(home.root)
    piece = music(31, 40.0)
    full = encode(tmp_path / "full.flac", piece)
    other = encode(tmp_path / "other.flac", music(32, 40.0))
    excerpt = encode(tmp_path / "excerpt.mp3", piece[:, 12 * RATE: 30 * RATE])
    with connect(home.db_path) as con:
        outcomes = fingerprint_many([full, other], max_seconds=None)
        store_fingerprints(con, zip(["TRK-A", "TRK-B"], outcomes, strict=True), "D1", actor="test")
        match_catalog(con, home.root / "fingerprint-index", actor="test")
    result = runner.invoke(app, ["match", "--home", str(home.root), "--json", str(excerpt)])
    assert result.exit_code == 0, result.output
    best = json.loads(result.stdout)["matches"][0]
    assert best["ref"] == "track:TRK-A" and best["match"] is True
    assert abs(best["offset_s"] - 12.0) < 0.5
    table = runner.invoke(app, ["match", "--home", str(home.root), str(excerpt)])
    assert "TRK-A" in table.stdout
    missing = runner.invoke(app, ["match", "--home", str(tmp_path / "nohome"), str(excerpt)])
    assert missing.exit_code == 1


def test_match_shows_a_landmark_match_that_chromaprint_misses(tmp_path: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    write_test_roles(home.root)
    piece, other = music(33, 30.0), music(34, 30.0)
    full = encode(tmp_path / "full.flac", piece)
    fast = encode(tmp_path / "fast.wav", _faster(piece[:, 5 * RATE: 15 * RATE]))
    with connect(home.db_path) as con:
        outcomes = fingerprint_many([full, encode(tmp_path / "other.flac", other)], max_seconds=None, landmarks=True)
        store_fingerprints(con, zip(["TRK-A", "TRK-B"], outcomes, strict=True), "D1", actor="test")
        match_catalog(con, home.root / "fingerprint-index", actor="test")
    result = runner.invoke(app, ["match", "--home", str(home.root), "--json", str(fast)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["matches"]
    accepted = [r for r in rows if r["match"]]
    assert [(r["ref"], r["method"]) for r in accepted] == [("track:TRK-A", "landmark")]
    assert accepted[0]["bit_error_rate"] is None and abs(accepted[0]["speed"] - 1.03) < 0.011
    table = runner.invoke(app, ["match", "--home", str(home.root), str(fast)])
    assert "landmark" in table.stdout


def _faster(audio):  # type: ignore[no-untyped-def]
    """The same audio played 3% faster (pitch and tempo), like a sped-up upload."""
    from scipy import signal

    return signal.resample_poly(audio, 100, 103, axis=1).astype(audio.dtype)
