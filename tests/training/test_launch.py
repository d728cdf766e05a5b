"""Real two-process gloo torchrun runs over real shards: record, model card, attribution, acknowledgement."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.runs import ModelCard, TrainConfig
from shards.exposure import read_exposure
from store.database import connect
from store.sealing import verify_sealed
from tests.training.ledger_fixture import POLICY, RELEASE, TRACKS, build, deny_track, seed_ledger
from training.launcher import launch_run


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_reference_run_learns_and_writes_record_card_and_exact_attribution(tmp_path: Path) -> None:
    db = tmp_path / "ledger.duckdb"
    seed_ledger(db, audio_dir=tmp_path / "audio")
    manifest = build(db, tmp_path / "shards", crops_per_track=6)
    config = TrainConfig(release_id=RELEASE, epochs=2, batch_size=4, nproc=2, checkpoint_every=3, seed=1)

    record = launch_run(db, run_id="run_ref", config=config, actor="ml@label", runs_dir=tmp_path / "runs")
    run_dir = tmp_path / "runs" / "run_ref"

    assert record.status == "completed" and record.world_size == 2 and record.device == "cpu"
    assert record.manifest_sha256 == _sha(Path(manifest))
    assert re.fullmatch(r"[0-9a-f]{40}", record.code.commit) and record.code.dirty is not None
    assert record.checkpoint_uri == "runs/run_ref/model.pt"  # relative to the data directory
    assert record.manifest_uri == "shards/manifest.json"
    assert record.checkpoint_sha256 == _sha(run_dir / "model.pt")
    # 18 samples split 9/9 over the ranks, batches of 4: 3 steps and all 18 samples per epoch.
    assert [(m.epoch, m.steps, m.samples) for m in record.metrics] == [(0, 3, 18), (1, 3, 18)]
    first, last = record.metrics[0].model_dump(), record.metrics[-1].model_dump()
    assert last["loss"] < first["loss"] and last["accuracy"] > last["chance"]

    exposure = read_exposure(run_dir / "exposure")
    assert exposure.num_rows == record.samples_consumed == 36
    assert set(exposure.column("rank").to_pylist()) == {0, 1}

    statement = json.loads((run_dir / "attribution.json").read_text())
    assert statement["total_samples"] == 36
    assert {t["track_id"]: t["samples"] for t in statement["tracks"]} == {t.track_id: 12 for t in TRACKS}
    with (run_dir / "attribution_holders.csv").open() as handle:
        holders = {r["party_id"]: Decimal(r["samples"]) for r in csv.DictReader(handle)}
    assert sum(holders.values()) == Decimal(36)
    assert holders["pty_alpha"] == Decimal(18) and holders["pty_beta"] == Decimal(6)

    card = ModelCard.model_validate_json((run_dir / "model_card.json").read_text())
    assert (card.data.tracks_in_release, card.data.tracks_seen, card.data.rights_holders) == (3, 3, 3)
    assert card.data.licenses == ("CC-BY-SA-3.0", "contract:ALPHA-2025-01")
    assert card.data.policy_hash == POLICY.content_hash and card.checkpoint_sha256 == record.checkpoint_sha256
    markdown = (run_dir / "MODEL_CARD.md").read_text()
    assert RELEASE in markdown and "Alpha Records" in markdown and record.manifest_sha256 in markdown

    with connect(db) as con:
        row = con.execute("SELECT status, samples_consumed, checkpoint_sha256, code_commit FROM training_runs "
                          "WHERE run_id = 'run_ref'").fetchone()
        ledger_samples = con.execute("SELECT sum(samples) FROM training_exposure WHERE run_id = 'run_ref'").fetchone()
        milli = con.execute("SELECT sum(samples_milli) FROM training_attribution WHERE run_id = 'run_ref'").fetchone()
        entries = con.execute("SELECT action, payload FROM audit_log WHERE subject = 'run_ref' ORDER BY seq").fetchall()
        history = con.execute("SELECT status FROM training_runs__history WHERE run_id = 'run_ref'").fetchall()
        assert verify_sealed(con)[0] == []
    assert row == ("completed", 36, record.checkpoint_sha256, record.code.commit)
    assert ledger_samples[0] == 36 and milli[0] == 36_000
    events = [(action, json.loads(payload)) for action, payload in entries]
    assert [(a, p["event"]) for a, p in events] == [("train.start", "started"), ("train.start", "completed")]
    assert events[1][1]["checkpoint_sha256"] == record.checkpoint_sha256
    assert set(events[1][1]["seal"]) == {"training_runs", "training_exposure", "training_attribution"}
    assert history == [("running",)]  # the status change is a new version; the running one is kept


@pytest.mark.slow
def test_acknowledged_run_skips_the_denied_recording_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "ledger.duckdb"
    seed_ledger(db, audio_dir=tmp_path / "audio")
    build(db, tmp_path / "shards", crops_per_track=4)
    denied = TRACKS[2]
    with connect(db) as con:
        deny_track(con, denied)
    config = TrainConfig(release_id=RELEASE, epochs=1, batch_size=4, nproc=2)

    record = launch_run(db, run_id="run_ack", config=config, actor="ml@label", runs_dir=tmp_path / "runs",
                        acknowledge="comparison run requested by legal, ticket 12")

    assert record.acknowledgement is not None and record.acknowledgement.track_ids == (denied.track_id,)
    exposure = read_exposure(tmp_path / "runs" / "run_ack" / "exposure").column("sample_id").to_pylist()
    assert exposure and not any(s.startswith(denied.track_id) for s in exposure)
    # The denied recording's samples leave the ranks uneven; all ranks stop at the shortest, and
    # exposure counts exactly the batches trained on.
    assert record.samples_consumed == len(exposure) <= 8
    card = json.loads((tmp_path / "runs" / "run_ack" / "model_card.json").read_text())
    assert card["data"]["acknowledgement"]["reason"] == "comparison run requested by legal, ticket 12"
    assert card["data"]["tracks_seen"] == 2
    with connect(db) as con:
        started = con.execute("SELECT actor, payload FROM audit_log WHERE action = 'train.start' AND subject = "
                              "'run_ack' ORDER BY seq LIMIT 1").fetchone()
        loads = con.execute("SELECT context, skipped_track_ids FROM shard_acknowledgements WHERE context = 'load'").fetchall()
        ack_cols = con.execute("SELECT acknowledged_by, acknowledged_tracks FROM training_runs").fetchone()
    assert started[0] == "ml@label"
    assert json.loads(started[1])["acknowledgement"] == {
        "actor": "ml@label", "reason": "comparison run requested by legal, ticket 12",
        "overridden": ["denied_since_approval"], "track_ids": [denied.track_id]}
    assert loads and all(skipped == [denied.track_id] for _, skipped in loads)
    assert ack_cols == ("ml@label", [denied.track_id])
