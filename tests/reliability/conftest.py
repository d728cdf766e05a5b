"""Shared pieces for the reliability tests: real audio, deliveries on disk, ingest plus fingerprinting."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from store.database import connect
from tests.audio_fixtures import music_like, write_audio


@pytest.fixture(scope="session")
def good_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three short, distinct, real recordings in three codecs."""
    root = tmp_path_factory.mktemp("good-audio")
    return {name: write_audio(root / name, music_like(6, seed=i + 11))
            for i, name in enumerate(("good-a.flac", "good-b.ogg", "good-c.mp3"))}


@pytest.fixture()
def delivery(tmp_path: Path, good_audio: dict[str, Path]) -> Path:
    """A delivery directory already holding the three good recordings under audio/."""
    root = tmp_path / "delivery"
    (root / "audio").mkdir(parents=True)
    for name, path in good_audio.items():
        shutil.copy(path, root / "audio" / name)
    return root


@pytest.fixture()
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(tmp_path / "ledger.duckdb") as connection:
        yield connection


def ingest_and_fingerprint(con: duckdb.DuckDBPyConnection, delivery_dir: Path, delivery_id: str = "d1",
                           **ingest_options: object) -> dict[str, object]:
    """What the ingest and fingerprint assets do for one delivery, through the same domain calls."""
    from catalog.ingest import ingest_delivery
    from fingerprinting.batch import fingerprint_many
    from fingerprinting.ledger import store_fingerprints

    report = ingest_delivery(con, delivery_dir, delivery_id=delivery_id, actor="tester", **ingest_options)  # type: ignore[arg-type]
    rows = con.execute("SELECT track_id, source_path FROM tracks WHERE delivery_id = ? ORDER BY track_id",
                       [delivery_id]).fetchall()
    by_path = {Path(p): t for t, p in rows}
    outcomes = list(fingerprint_many(list(by_path), max_seconds=120.0, workers=2))
    summary = store_fingerprints(con, [(by_path[Path(o.path)], o) for o in outcomes], delivery_id, actor="tester")
    return {"ingest": report, "fingerprint": summary}


def quarantined(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str]]:
    """(stage, file name or record, reason, message) for every quarantine row; fingerprint rows named by file."""
    rows = con.execute(
        "SELECT q.stage, coalesce(t.source_path, q.source_ref), q.reason_code, q.message FROM quarantine q "
        "LEFT JOIN tracks t ON q.stage = 'fingerprint' AND t.track_id = q.source_ref ORDER BY ALL").fetchall()
    return [(stage, Path(ref).name if stage in ("ingest", "fingerprint") else ref, code, msg)
            for stage, ref, code, msg in rows]


def track_files(con: duckdb.DuckDBPyConnection) -> dict[str, bool]:
    """Ingested files by name, and whether each has a fingerprint."""
    return {Path(p).name: fp for p, fp in con.execute(
        "SELECT t.source_path, f.track_id IS NOT NULL FROM tracks t LEFT JOIN fingerprints f USING (track_id)"
    ).fetchall()}
