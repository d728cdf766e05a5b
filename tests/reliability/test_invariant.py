"""The invariant, over many generated catalogs: no sample of a track that is not allowed for the release's
purpose ever appears in a shard or reaches a training step.

Each example generates a catalog (deals, shares, consents, revocations, opt-out matches, duplicate
clusters), points its tracks at real audio, proposes and approves a release through the real functions,
optionally withdraws consent after approval (through the rights importer), builds real shards and reads
them with the loader the trainer uses, recording exposure as the trainer does.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as _hypothesis_event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from licensing.evaluate import evaluate_track, load_facts
from licensing.gate import ReleaseRefused
from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.releases import ReleaseError, approve_release, propose_release
from licensing.synthetic import generate_catalog
from schemas.shards import Acknowledgement, ShardConfig
from shards.exposure import ExposureRecorder, read_exposure
from shards.loader import ShardDataset
from shards.writer import build_shards
from store.database import connect
from store.digest import sha256_file
from store.ledger import command
from store.roles import RoleBook
from tests.licensing.helpers import consent
from tests.roles import write_test_roles
from tests.shards.ledger import write_audio

ON = datetime.now(UTC).date()
ROLES = RoleBook(users={"mira": ("ml_engineer",), "rita": ("rights_team",)})
PURPOSES = ["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining"]
CONFIG = ShardConfig(crops_per_track=1, rows_per_shard=3, crop_seconds=1.0)


@pytest.fixture(scope="module")
def audio_pool(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    root = tmp_path_factory.mktemp("pool")
    out = []
    for i in range(4):
        path = write_audio(root / f"p{i}.flac", 1.5, freq=200.0 + 90 * i, rate=16000, channels=1, noise_seed=i)
        out.append((str(path), sha256_file(path)))
    return out


def _point_at_audio(con, audio_pool: list[tuple[str, str]]) -> None:  # type: ignore[no-untyped-def]
    """The generated tracks get real audio, through the write path."""
    with command(con, "ops", "catalog.ingest", "test audio") as w:
        for i, (track_id,) in enumerate(con.execute("SELECT track_id FROM tracks ORDER BY track_id").fetchall()):
            path, sha = audio_pool[i % len(audio_pool)]
            w.update("tracks", "track_id = ?", [track_id], {"source_path": path, "audio_sha256": sha})


def _allowed_now(con, policy, purpose: str, territory: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.track_id for f in load_facts(con)
            if f.track_id and evaluate_track(f, policy, purpose=purpose, territory=territory, on_date=ON).allowed}


def _withdraw(con, tmp: Path, track_id: str, how: str) -> None:  # type: ignore[no-untyped-def]
    """The consent of one contributor of ``track_id`` is withdrawn, through the rights importer."""
    parties = [p for (p,) in con.execute("SELECT DISTINCT party_id FROM contributors WHERE track_id = ? "
                                         "ORDER BY party_id", [track_id]).fetchall()]
    if not parties:
        return
    party = parties[0]
    records = []
    if how == "revoke":
        cols = ["consent_id", "party_id", "scope", "scope_ref", "ai_training", "ai_generative_training",
                "data_mining", "ai_inference", "evidence_ref", "evidence_sha256", "granted_at", "revoked_at"]
        midnight = datetime(ON.year, ON.month, ON.day, tzinfo=UTC)
        # Generated recording/work scopes carry placeholder codes the importer rightly refuses; revoke the rest.
        for row in con.execute(f"SELECT {', '.join(cols)} FROM consents WHERE party_id = ? AND scope = 'all'",
                               [party]).fetchall():
            record = dict(zip(cols, row))
            if record["granted_at"] > midnight or (record["revoked_at"] and record["revoked_at"] <= midnight):
                continue
            record["revoked_at"] = midnight
            records.append({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in record.items()})
    else:
        records.append(consent(f"C-refusal-{party}", party, value="notAllowed", granted=f"{ON}T00:00:00Z"))
    path = tmp / f"withdrawal-{how}.json"
    path.write_text(json.dumps({"schema_version": 1, "parties": [], "deals": [], "consents": records}), encoding="utf-8")
    report = import_rights_file(con, path, actor="rita")
    assert not report.rejected and not report.errors, report


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), tracks=st.integers(16, 48), purpose=st.sampled_from(PURPOSES),
       territory=st.sampled_from(["DE", "US", "Worldwide"]), withdraw=st.sampled_from(["none", "revoke", "refuse"]))
def test_no_sample_of_a_track_not_allowed_reaches_a_shard_or_a_training_step(
        audio_pool: list[tuple[str, str]], seed: int, tracks: int, purpose: str, territory: str, withdraw: str) -> None:
    """Withdrawals come through the rights importer, which re-decides the tracks they touch at once."""
    _check_invariant(audio_pool, seed, tracks, purpose, territory, withdraw)


def test_a_withdrawal_is_effective_at_once_in_the_recorded_decisions(audio_pool: list[tuple[str, str]]) -> None:
    _check_invariant(audio_pool, 10, 10, "UseForTrainingGenerativeAI", "DE", "revoke")


def event(text: str) -> None:
    """Hypothesis statistics inside a property test; nothing in a plain test."""
    try:
        _hypothesis_event(text)
    except InvalidArgument:
        pass


def _check_invariant(audio_pool: list[tuple[str, str]], seed: int, tracks: int, purpose: str, territory: str,
                     withdraw: str) -> None:
    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        write_test_roles(tmp)
        db = tmp / "ledger.duckdb"
        with connect(db) as con:
            generate_catalog(con, tracks=tracks, seed=seed, on_date=ON)
            _point_at_audio(con, audio_pool)
            try:
                release = propose_release(con, purpose=purpose, territory=territory, on_date=ON, actor="mira",
                                          policy=policy, roles=ROLES)
            except ReleaseError as exc:
                assert exc.code == "release_empty" and not _allowed_now(con, policy, purpose, territory)
                event("no track allowed: nothing to release")
                return
            frozen = {t.track_id for t in release.tracks}
            assert frozen == _allowed_now(con, policy, purpose, territory)  # the release holds exactly the allowed
            approve_release(con, release.release_id, actor="rita", comment="checked", roles=ROLES, on_date=ON)
            if withdraw != "none":
                _withdraw(con, tmp, sorted(frozen)[seed % len(frozen)], withdraw)
            allowed = frozen & _allowed_now(con, policy, purpose, territory)
            # the ledger never shows an allow the current rights deny: the import re-decided at once
            recorded = {t for (t,) in con.execute(
                "SELECT track_id FROM current_decisions WHERE purpose = ? AND on_date = ? AND allowed",
                [purpose, ON]).fetchall()}
            assert recorded & frozen == allowed

            out = str(tmp / "shards")
            try:
                manifest = build_shards(con, release.release_id, output_uri=out, config=CONFIG, actor="mira",
                                        roles=ROLES)
            except ReleaseRefused as refused:
                assert frozen - allowed, "refused although every track is still allowed"
                assert {d.track_id for d in refused.decision.denied_tracks} == frozen - allowed
                manifest = build_shards(con, release.release_id, output_uri=out, config=CONFIG, actor="mira",
                                        acknowledge=Acknowledgement(actor="mira", reason="build the rest"),
                                        roles=ROLES)
        in_shards = {t for e in manifest.shards for t in e.track_ids}
        event(f"released, {'some' if frozen - allowed else 'no'} track denied after approval")
        assert in_shards <= allowed, f"not allowed but in shards: {sorted(in_shards - allowed)}"

        # The training step: the trainer's dataset, exposure recorded per step as the trainer does.
        dataset = ShardDataset(out, ledger_path=db, seed=seed, roles=ROLES,
                               acknowledge={"actor": "mira", "reason": "train the rest"})
        recorder = ExposureRecorder(tmp / "exposure", run_id="run_prop", rank=0)
        batch: list[str] = []
        trained: set[str] = set()
        for step, sample in enumerate(dataset, start=1):
            assert sample["audio"].shape == (CONFIG.crop_samples,) and np.isfinite(sample["audio"].numpy()).all()
            trained.add(sample["track_id"])
            batch.append(sample["sample_id"])
            recorder.record(0, step, batch)
            batch = []
        exposed = {s.split(":")[0] for s in read_exposure(tmp / "exposure").column("sample_id").to_pylist()}
        assert trained <= allowed and exposed <= allowed
        assert exposed == trained == in_shards


def test_revocation_after_the_shards_were_built_stops_the_loader(audio_pool: list[tuple[str, str]],
                                                                 tmp_path: Path) -> None:
    policy = load_policy()
    for seed in range(50):  # the first generated catalog with at least two allowed tracks
        db = tmp_path / f"ledger-{seed}.duckdb"
        with connect(db) as con:
            generate_catalog(con, tracks=10, seed=seed, on_date=ON)
            if len(_allowed_now(con, policy, PURPOSES[1], "DE")) >= 2:
                break
    with connect(db) as con:
        _point_at_audio(con, audio_pool)
        release = propose_release(con, purpose=PURPOSES[1], territory="DE", on_date=ON, actor="mira", policy=policy,
                                  roles=ROLES)
        approve_release(con, release.release_id, actor="rita", comment="checked", roles=ROLES, on_date=ON)
        manifest = build_shards(con, release.release_id, output_uri=str(tmp_path / "shards"), config=CONFIG,
                                actor="mira")
        victim = sorted(t for e in manifest.shards for t in e.track_ids)[0]
        _withdraw(con, tmp_path, victim, "refuse")
    with pytest.raises(ReleaseRefused, match="denied_since_approval"):
        ShardDataset(str(tmp_path / "shards"), ledger_path=db)
    served = {s["track_id"] for s in ShardDataset(str(tmp_path / "shards"), ledger_path=db,
                                                    acknowledge={"actor": "mira", "reason": "without the withdrawn"})}
    with connect(db) as con:
        still = {t for e in manifest.shards for t in e.track_ids} & _allowed_now(con, policy, PURPOSES[1], "DE")
    assert victim not in served and served == still
