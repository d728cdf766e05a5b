"""SIGKILL during shard building, then a re-run: identical shards, no manifest naming a partial shard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shards.verify import verify_manifest
from shards.writer import SHARD_NAME
from store.audit import verify_chain
from store.database import connect
from tests.reliability.conftest import run_child
from tests.shards.ledger import make_release

ROWS_PER_SHARD = "4"


def _shard_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if SHARD_NAME.match(p.name)) if out.is_dir() else []


def _build(db: Path, out: Path, *, kill_at: str | None = None) -> None:
    wait = (lambda: bool(_shard_files(out))) if kill_at == "after_first_shards" else None
    run_child("shards", kill_at or "none", str(db), "rel_test", str(out), ROWS_PER_SHARD, kill_at=kill_at, wait_for=wait)


def _comparable(out: Path) -> dict[str, object]:
    doc = json.loads((out / "manifest.json").read_text())
    return {k: v for k, v in doc.items() if k not in ("built_at",)} | {
        "shards": [{k: v for k, v in e.items() if k != "uri"} for e in doc["shards"]]}


def _ledger(db: Path) -> dict[str, object]:
    with connect(db) as con:
        return {
            "chain_ok": verify_chain(con).ok,
            "builds": con.execute("SELECT count(*) FROM shard_builds").fetchone()[0],
            "build_audit": con.execute("SELECT count(*) FROM audit_log WHERE action = 'shards.build'").fetchone()[0],
            "rows_by_track": con.execute("SELECT track_id, sum(row_count)::INT FROM shard_file_tracks GROUP BY ALL "
                                         "ORDER BY ALL").fetchall(),
        }


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_release(tmp_path_factory.mktemp("release"), seconds=[17.0] * 6)


@pytest.fixture(scope="module")
def uninterrupted(release, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:  # type: ignore[no-untyped-def]
    clean = tmp_path_factory.mktemp("clean")
    shutil.copytree(release.db_path.parent, clean, dirs_exist_ok=True)  # the ledger finds its audio beside it
    out = clean / "shards"
    _build(clean / "ledger.duckdb", out)
    return _comparable(out)


@pytest.mark.parametrize("point", ["after_first_shards", "shard_rename", "ledger_transaction"])
def test_sigkill_during_build_then_rerun_gives_the_same_shards(point: str, release, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                               uninterrupted: dict[str, object]) -> None:
    shutil.copytree(release.db_path.parent, tmp_path, dirs_exist_ok=True)
    db = tmp_path / "ledger.duckdb"
    out = tmp_path / "shards"
    before = _ledger(db)

    _build(db, out, kill_at=point)

    after_kill = _ledger(db)
    assert after_kill == before  # no build row, no audit entry, the chain verifies
    if point == "ledger_transaction":
        assert verify_manifest(str(out)).ok  # the manifest came last, after every shard it names
    else:
        assert not (out / "manifest.json").exists()  # no manifest names a partial shard set
        assert _shard_files(out)
    if point == "shard_rename":
        assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # a torn write was left behind

    _build(db, out)

    assert _comparable(out) == uninterrupted
    report = verify_manifest(str(out))
    assert report.ok and not report.extra
    assert sorted(p.name for p in out.iterdir()) == sorted([*(s["name"] for s in uninterrupted["shards"]),  # type: ignore[union-attr]
                                                            "manifest.json"])
    final = _ledger(db)
    assert final["chain_ok"] and final["builds"] == final["build_audit"] == 1
    assert final["rows_by_track"] == [(t, 4) for t in release.track_ids]  # every sample once


def test_a_killed_rebuild_leaves_the_previous_manifest_and_its_shards_intact(release, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(release.db_path.parent, tmp_path, dirs_exist_ok=True)
    db = tmp_path / "ledger.duckdb"
    out = tmp_path / "shards"
    run_child("shards", "none", str(db), "rel_test", str(out), "6")  # a first build, another shard size
    first = json.loads((out / "manifest.json").read_text())
    old_names = {e["name"] for e in first["shards"]}
    run_child("shards", "after_first_shards", str(db), "rel_test", str(out), ROWS_PER_SHARD,
              kill_at="after_first_shards", wait_for=lambda: bool(set(_shard_files(out)) - old_names))
    assert json.loads((out / "manifest.json").read_text()) == first
    report = verify_manifest(str(out))
    assert not report.missing and not report.altered  # the old shards are all still there
    assert report.extra  # the new build's first shards, named by no manifest yet
    _build(db, out)
    assert verify_manifest(str(out)).ok
