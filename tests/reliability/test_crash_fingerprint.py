"""SIGKILL during ingest and fingerprinting, then a re-run: the same ledger as an uninterrupted run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from store.audit import verify_chain
from store.database import connect
from tests.audio_fixtures import music_like, write_audio
from tests.reliability.conftest import run_child
from tests.roles import write_test_roles


@pytest.fixture(scope="module")
def crash_delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash-delivery")
    for i in range(5):
        write_audio(root / "audio" / f"song-{i}.flac", music_like(8, seed=60 + i))
    write_audio(root / "audio" / "silent.wav", np.zeros(44100 * 4, dtype=np.float32))
    (root / "audio" / "empty.flac").write_bytes(b"")
    return root


def _state(db: Path) -> dict[str, object]:
    with connect(db) as con:
        chain = verify_chain(con)
        return {
            "chain_ok": chain.ok,
            "tracks": con.execute("SELECT track_id, isrc, audio_sha256 FROM tracks ORDER BY ALL").fetchall(),
            "fingerprints": con.execute("SELECT track_id, items_sha256, fingerprint FROM fingerprints "
                                        "ORDER BY ALL").fetchall(),
            "quarantine": con.execute("SELECT stage, source_ref, reason_code FROM quarantine ORDER BY ALL").fetchall(),
            "deliveries": con.execute("SELECT delivery_id, manifest_sha256, track_count, quarantined_count "
                                      "FROM deliveries").fetchall(),
            "stores": con.execute("SELECT count(*) FROM audit_log WHERE action = 'fingerprint.store'").fetchone()[0],
        }


@pytest.fixture(scope="module")
def uninterrupted(crash_delivery: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    clean = tmp_path_factory.mktemp("clean")
    write_test_roles(clean)
    db = clean / "ledger.duckdb"
    run_child("fingerprint", "none", str(db), str(crash_delivery))
    state = _state(db)
    assert len(state["fingerprints"]) == 5 and len(state["quarantine"]) == 2  # type: ignore[arg-type]
    return state


@pytest.mark.parametrize("point", ["ingest_transaction", "mid_batch", "store_transaction"])
def test_sigkill_then_rerun_converges_to_the_uninterrupted_ledger(point: str, crash_delivery: Path, tmp_path: Path,
                                                                  uninterrupted: dict[str, object]) -> None:
    db = tmp_path / "ledger.duckdb"
    run_child("fingerprint", point, str(db), str(crash_delivery), kill_at=point)

    after_kill = _state(db)
    assert after_kill["chain_ok"]
    assert after_kill["fingerprints"] == [] and after_kill["stores"] == 0  # nothing half-written
    if point == "ingest_transaction":
        assert after_kill["tracks"] == [] and after_kill["quarantine"] == [] and after_kill["deliveries"] == []
    else:
        assert after_kill["tracks"] == uninterrupted["tracks"]

    run_child("fingerprint", "none", str(db), str(crash_delivery))

    final = _state(db)
    assert final == uninterrupted  # same rows, none lost, none twice; the audit chain verifies
    with connect(db) as con:
        refusals = con.execute("SELECT count(*) FROM audit_log WHERE action LIKE '%refused%'").fetchone()[0]
    assert refusals == 0


def test_a_kill_while_storing_over_earlier_fingerprints_leaves_the_earlier_ones_whole(
        crash_delivery: Path, tmp_path: Path, uninterrupted: dict[str, object]) -> None:
    db = tmp_path / "ledger.duckdb"
    run_child("fingerprint", "none", str(db), str(crash_delivery))
    changed = tmp_path / "changed"
    shutil.copytree(crash_delivery, changed)
    write_audio(changed / "audio" / "song-0.flac", music_like(8, seed=99))  # new audio for a known file
    run_child("fingerprint", "store_transaction", str(db), str(changed), kill_at="store_transaction")
    state = _state(db)
    assert state["chain_ok"] and state["stores"] == 1
    assert state["fingerprints"] == uninterrupted["fingerprints"]  # the killed store replaced nothing
