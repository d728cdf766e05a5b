"""The gate in front of training: approved release, verified shards, no newly denied recordings."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from licensing.gate import decide
from licensing.releases import revoke_release
from schemas.gate import Acknowledgement
from schemas.runs import TrainConfig
from store.database import connect
from store.roles import RoleRefused
from tests.training.ledger_fixture import POLICY, RELEASE, TRACKS, build, deny_track, seed_ledger
from training import gate
from training.launcher import TrainingRefused, launch_run


@pytest.fixture()
def built(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "ledger.duckdb"
    seed_ledger(db, audio_dir=tmp_path / "audio")
    return db, build(db, tmp_path / "shards", crops_per_track=2)


def test_approved_verified_release_is_allowed_with_its_manifest_hash(built: tuple[Path, str]) -> None:
    db, manifest = built
    with connect(db) as con:
        decision = gate.check_release(con, RELEASE)
    assert decision.allowed, decision.message
    assert decision.manifest_uri == manifest
    assert decision.manifest_sha256 == hashlib.sha256(Path(manifest).read_bytes()).hexdigest()
    assert decision.policy_hash == POLICY.content_hash and decision.use == "train"


def test_unknown_release_and_missing_shards_refuse(tmp_path: Path) -> None:
    db = tmp_path / "ledger.duckdb"
    seed_ledger(db)
    with connect(db) as con:
        unknown = gate.check_release(con, "rel_nope")
        unbuilt = gate.check_release(con, RELEASE)
    assert (unknown.allowed, unknown.reason_codes) == (False, ("release_unknown",))
    assert not unbuilt.allowed and unbuilt.reason_codes == ("manifest_missing",)


def test_revoked_release_refuses_and_the_refusal_is_recorded_before_anything_starts(built: tuple[Path, str]) -> None:
    db, _ = built
    with connect(db) as con:
        revoke_release(con, RELEASE, actor="rights@label", comment="deal under dispute")
    with pytest.raises(TrainingRefused) as refused:
        launch_run(db, run_id="run_revoked", config=TrainConfig(release_id=RELEASE), actor="ml@label",
                   runs_dir=db.parent / "runs")
    assert refused.value.decision.reason_codes == ("release_revoked",)
    assert not (db.parent / "runs" / "run_revoked").exists()
    with connect(db) as con:
        refusal = con.execute("SELECT refusal_id, run_id, release_id, actor, reason_codes FROM training_refusals"
                              ).fetchall()
        audit_rows = con.execute("SELECT action, subject FROM audit_log WHERE action LIKE 'train.%'").fetchall()
        runs = con.execute("SELECT count(*) FROM training_runs").fetchone()[0]
    assert refusal == [(refused.value.refusal_id, "run_revoked", RELEASE, "ml@label", ["release_revoked"])]
    assert audit_rows == [("train.start.refused", "run_revoked")]
    assert runs == 0


def test_only_an_ml_engineer_may_start_a_run_and_the_role_is_checked_first(built: tuple[Path, str]) -> None:
    db, _ = built
    with pytest.raises(RoleRefused):
        launch_run(db, run_id="run_rita", config=TrainConfig(release_id=RELEASE), actor="rita",
                   runs_dir=db.parent / "runs")
    with connect(db) as con:
        assert con.execute("SELECT run_id, actor, reason_codes FROM training_refusals").fetchall() == [
            ("run_rita", "rita", ["role_missing"])]
    assert not (db.parent / "runs" / "run_rita").exists()


def test_a_revoked_release_is_never_trained_on_even_when_acknowledged(built: tuple[Path, str]) -> None:
    """The rights team withdrew it: an engineer's acknowledgement may finish a build or a load on the record,
    never start training."""
    db, _ = built
    with connect(db) as con:
        revoke_release(con, RELEASE, actor="rights@label", comment="deal under dispute")
        decision = gate.check_release(con, RELEASE, acknowledge="reproduce run 12 for the audit", actor="ml@label")
        loading = decide(con, RELEASE, use="load", acknowledge=Acknowledgement(actor="ml@label", reason="finish"))
    assert not decision.allowed and decision.reason_codes == ("release_revoked",)
    assert decision.acknowledgement is None and "cannot go past release_revoked" in decision.message
    assert loading.allowed and loading.acknowledgement is not None


def test_a_tampered_shard_fails_verification(built: tuple[Path, str]) -> None:
    db, manifest = built
    entry = json.loads(Path(manifest).read_text())["shards"][0]
    shard = Path(manifest).parent / entry["name"]
    shard.write_bytes(shard.read_bytes() + b"\0")
    with connect(db) as con:
        decision = gate.check_release(con, RELEASE)
    assert not decision.allowed
    assert decision.reason_codes == ("shard_verification_failed",)
    assert entry["name"] in decision.message


def test_denied_since_approval_refuses_unless_acknowledged(built: tuple[Path, str]) -> None:
    db, _ = built
    with connect(db) as con:
        deny_track(con, TRACKS[1])
        refused = gate.check_release(con, RELEASE)
        acknowledged = gate.check_release(con, RELEASE, acknowledge="  retraining for audit comparison ", actor="cto")
    assert not refused.allowed
    assert refused.reason_codes == ("denied_since_approval",)
    assert refused.denied_track_ids == (TRACKS[1].track_id,)
    assert TRACKS[1].track_id in refused.message and "consent_not_allowed" in refused.message
    assert acknowledged.allowed and acknowledged.acknowledgement is not None
    assert acknowledged.acknowledgement.reason == "retraining for audit comparison"
    assert acknowledged.acknowledgement.actor == "cto"
    assert acknowledged.acknowledgement.track_ids == (TRACKS[1].track_id,)


def test_a_manifest_of_another_release_is_refused(built: tuple[Path, str]) -> None:
    from licensing.releases import approve_release, propose_release

    db, manifest = built
    with connect(db) as con:
        propose_release(con, purpose="UseForTrainingNonGenerativeAI", territory="GB", on_date=date(2025, 1, 1),
                        actor="ml@label", policy=POLICY, release_id="rel_other")
        approve_release(con, "rel_other", actor="rights@label", comment="ok")
        decision = gate.check_release(con, "rel_other", manifest_uri=manifest)
    assert not decision.allowed and decision.reason_codes == ("shard_verification_failed",)
    assert "belongs to release" in decision.message


def test_shards_rebuilt_without_a_denied_recording_train_without_acknowledgement(tmp_path: Path) -> None:
    db = tmp_path / "ledger.duckdb"
    seed_ledger(db, audio_dir=tmp_path / "audio")
    stale = build(db, tmp_path / "shards", crops_per_track=2)
    with connect(db) as con:
        deny_track(con, TRACKS[1])
    rebuilt = build(db, tmp_path / "rebuilt", crops_per_track=2)
    held = json.loads(Path(rebuilt).read_text())
    assert TRACKS[1].track_id not in {t for shard in held["shards"] for t in shard["track_ids"]}
    with connect(db) as con:
        old = gate.check_release(con, RELEASE, manifest_uri=stale)
        new = gate.check_release(con, RELEASE, manifest_uri=rebuilt)
    assert not old.allowed and old.reason_codes == ("denied_since_approval",)
    assert new.allowed, new.message
    assert new.denied_track_ids == () and new.acknowledgement is None
