"""A run killed mid-training resumes from its checkpoint and ends exactly like an uninterrupted run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from schemas.runs import TrainConfig
from shards.exposure import read_exposure
from store.audit import verify_chain
from store.database import connect
from store.digest import sha256_file
from tests.training.ledger_fixture import RELEASE, build, seed_ledger
from training.launcher import TrainingFailed, launch_run
from training.runtime import KILL_AT_STEP_ENV


def _exposure(run_dir: Path) -> list[tuple[int, int, int, str]]:
    rows = read_exposure(run_dir / "exposure").to_pylist()
    return sorted((r["rank"], r["epoch"], r["step"], r["sample_id"]) for r in rows)


@pytest.mark.slow
def test_sigkilled_run_resumes_with_identical_exposure_attribution_and_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "ledger.duckdb"
    seed_ledger(db, audio_dir=tmp_path / "audio")
    build(db, tmp_path / "shards", crops_per_track=4)
    # 12 samples, 2 ranks, batch 2: 3 steps per epoch; checkpoints at steps 2, 3 (epoch end), 4, 6.
    config = TrainConfig(release_id=RELEASE, epochs=2, batch_size=2, nproc=2, checkpoint_every=2, seed=7)
    runs = tmp_path / "runs"

    straight = launch_run(db, run_id="run_straight", config=config, actor="ml@label", runs_dir=runs)

    # Killed after step 5 was recorded; the last checkpoint is step 4, in the middle of epoch 1.
    monkeypatch.setenv(KILL_AT_STEP_ENV, "5")
    with pytest.raises(TrainingFailed) as failed:
        launch_run(db, run_id="run_crash", config=config, actor="ml@label", runs_dir=runs)
    monkeypatch.delenv(KILL_AT_STEP_ENV)
    assert failed.value.record.status == "failed"
    before_resume = _exposure(runs / "run_crash")
    assert max(step for _, _, step, _ in before_resume) == 5
    with connect(db) as con:
        assert verify_chain(con).ok  # the failure itself is recorded on an intact chain

    resumed = launch_run(db, run_id="run_crash", config=config, actor="ml@label", runs_dir=runs, resume=True)

    assert resumed.status == "completed" and resumed.attempts == 2
    assert _exposure(runs / "run_crash") == _exposure(runs / "run_straight")
    assert resumed.samples_consumed == straight.samples_consumed == 2 * 12
    seen = Counter(sample_id for *_, sample_id in _exposure(runs / "run_crash"))
    assert len(seen) == 12 and set(seen.values()) == {2}  # every sample once per epoch, none twice

    a = json.loads((runs / "run_straight" / "attribution.json").read_text())
    b = json.loads((runs / "run_crash" / "attribution.json").read_text())
    assert a["tracks"] == b["tracks"] and a["rights_holders"] == b["rights_holders"]
    assert (a["total_samples"], b["total_samples"]) == (24, 24)
    untimed = [{k: v for k, v in m.model_dump().items() if k != "samples_per_s"} for m in straight.metrics]
    assert [{k: v for k, v in m.model_dump().items() if k != "samples_per_s"} for m in resumed.metrics] == untimed

    wa = torch.load(runs / "run_straight" / "model.pt")["state_dict"]
    wb = torch.load(runs / "run_crash" / "model.pt")["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    with connect(db) as con:
        ledger = con.execute("SELECT sum(samples) FROM training_exposure WHERE run_id = 'run_crash'").fetchone()[0]
        events = [json.loads(r[0])["event"] for r in con.execute(
            "SELECT payload FROM audit_log WHERE action = 'train.start' AND subject = 'run_crash' ORDER BY seq").fetchall()]
    assert ledger == 24
    assert events == ["started", "failed", "resumed", "completed"]
    with connect(db) as con:
        assert verify_chain(con).ok
    # The record points at a whole checkpoint, and no torn checkpoint write is left beside it.
    assert resumed.checkpoint_uri == "runs/run_crash/model.pt"
    assert sha256_file(db.parent / resumed.checkpoint_uri) == resumed.checkpoint_sha256
    assert not [p for p in (runs / "run_crash").rglob("*.tmp")]


@pytest.mark.slow
def test_resume_from_a_checkpoint_where_one_rank_had_run_dry_does_not_replay_its_epoch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "ledger.duckdb"
    seed_ledger(db, audio_dir=tmp_path / "audio")
    build(db, tmp_path / "shards", crops_per_track=5)
    # 15 samples: rank 0 serves 8, rank 1 serves 7. Batch 7: step 1 takes 7 + 7, then rank 1 is dry
    # and both stop; rank 0's eighth sample is not trained on (nor counted). 14 samples per epoch.
    config = TrainConfig(release_id=RELEASE, epochs=2, batch_size=7, nproc=2, checkpoint_every=1, seed=3)
    runs = tmp_path / "runs"
    monkeypatch.setenv(KILL_AT_STEP_ENV, "1")  # dies right after the checkpoint of step 1
    with pytest.raises(TrainingFailed):
        launch_run(db, run_id="run_dry", config=config, actor="ml@label", runs_dir=runs)
    monkeypatch.delenv(KILL_AT_STEP_ENV)

    resumed = launch_run(db, run_id="run_dry", config=config, actor="ml@label", runs_dir=runs, resume=True)

    rows = _exposure(runs / "run_dry")
    assert resumed.samples_consumed == len(rows) == 28
    assert sorted({(rank, epoch, step) for rank, epoch, step, _ in rows}) == [
        (0, 0, 1), (0, 1, 2), (1, 0, 1), (1, 1, 2)]
    assert [(m.epoch, m.steps, m.samples) for m in resumed.metrics] == [(0, 1, 14), (1, 1, 14)]
