"""Shared pieces for the reliability tests: real audio, deliveries on disk, ingest plus fingerprinting."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from store.database import connect
from store.paths import ledger_path
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
    by_path = {Path(ledger_path(con, p)): t for t, p in rows}  # the ledger keeps paths relative to its home
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


def run_child(*args: str, kill_at: str | None = None, wait_for: Callable[[], bool] | None = None,
              timeout: float = 120.0) -> list[str]:
    """Run ``tests.reliability.crash_child``; with ``kill_at``, SIGKILL it once it says it reached that point
    (and, with ``wait_for``, once that condition also holds, polled)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.crash_child", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if kill_at is not None and line.strip() == f"PAUSED {kill_at}":
                while wait_for is not None and not wait_for():
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"condition never held after {kill_at}")
                    time.sleep(0.005)
                os.kill(proc.pid, signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"child did not reach {kill_at}: {lines}")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if kill_at is not None:
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, lines, proc.stderr.read() if proc.stderr else "")
    else:
        assert proc.returncode == 0 and lines[-1] == "DONE", (lines, proc.stderr.read() if proc.stderr else "")
    return lines
