"""Consent withdrawals and deals ending early: recorded and audited, nothing deleted, and what they affect."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from licensing.evaluate import catalog_decisions, evaluate_catalog_frame
from licensing.impact import impact_report
from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.records import Supersession
from licensing.releases import approve_release, propose_release
from licensing.revocation import RevocationError, expire_deal, revoke_consent
from licensing.watch import WatchCursor, changes_since, handle_changes
from schemas.shards import ShardConfig
from shards.writer import build_shards
from store.audit import verify_chain
from store.database import connect
from store.digest import sha256_file
from store.home import Home
from store.ledger import command
from store.roles import RoleBook, RoleRefused
from tests.licensing.helpers import add_track, consent, deal, write_rights
from tests.roles import roles_yaml
from tests.shards.ledger import write_audio

GEN = "UseForTrainingGenerativeAI"
ISRCS = ["QZXXX2600001", "QZXXX2600002", "QZXXX2600003"]
ROLES = RoleBook(users={"mina": ("ml_engineer",), "ravi": ("rights_team",)})
TODAY = datetime.now(UTC).date()


def _catalog(con, tmp_path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """P-a sings on tracks 1 and 3 (one catalog-wide consent), P-b on track 2; one open deal covers all."""
    path = write_rights(tmp_path / "rights.json", ["P-label", "P-a", "P-b"], [deal("D1", ISRCS)],
                        [consent("C-a", "P-a"), consent("C-b", "P-b")])
    assert not import_rights_file(con, path, actor="ops").rejected
    return [add_track(con, i + 1, isrc, [(p, "MainArtist")]) for i, (isrc, p) in enumerate(zip(ISRCS, ["P-a", "P-b", "P-a"]))]


def _now(con, policy=None, on: date = TODAY) -> dict[str, tuple[bool, list[str]]]:  # type: ignore[no-untyped-def]
    evaluate_catalog_frame(con, policy or load_policy(), purpose=GEN, territory="DE", on_date=on)
    return {row["isrc"]: (row["allowed"], list(row["reason_codes"])) for row in catalog_decisions(con).values()}


def test_revoking_a_consent_records_it_and_denies_its_recordings(con, tmp_path: Path) -> None:
    _catalog(con, tmp_path)
    assert all(allowed for allowed, _ in _now(con).values())
    rv = revoke_consent(con, party_id="P-a", consent_id="C-a", evidence_ref="s3://evidence/withdrawal-a.pdf",
                        reason="artist request", actor="ravi", roles=ROLES)
    assert rv.revoked_consent_ids == ("C-a",) and rv.isrcs == (ISRCS[0], ISRCS[2]) and rv.refusal_consent_id is None
    row = con.execute("SELECT revoked_at, ai_generative_training FROM consents WHERE consent_id = 'C-a'").fetchone()
    assert row[0] is not None and row[1] == "allowed"  # the consent is kept, only its end is recorded
    assert con.execute("SELECT party_id, consent_ids, evidence_ref, actor FROM consent_revocations").fetchall() == [
        ("P-a", ["C-a"], "s3://evidence/withdrawal-a.pdf", "ravi")]
    assert _now(con) == {ISRCS[0]: (False, ["consent_revoked"]), ISRCS[1]: (True, []),
                         ISRCS[2]: (False, ["consent_revoked"])}
    # the day before the withdrawal the same facts still allowed it: revocation is dated, not retroactive
    assert _now(con, on=TODAY - timedelta(days=1))[ISRCS[0]] == (True, [])
    assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'consent.revoke'").fetchone() == (1,)
    assert verify_chain(con).ok
    with pytest.raises(RevocationError) as again:
        revoke_consent(con, party_id="P-a", consent_id="C-a", evidence_ref="x", actor="ravi", roles=ROLES)
    assert again.value.code == "already_revoked"


def test_revocation_needs_the_rights_team_evidence_and_one_target(con, tmp_path: Path) -> None:
    _catalog(con, tmp_path)
    with pytest.raises(RoleRefused):
        revoke_consent(con, party_id="P-a", scope="all", evidence_ref="x", actor="mina", roles=ROLES)
    assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'consent.revoke.refused'").fetchone() == (1,)
    for kwargs, code in (({"scope": "all", "evidence_ref": " "}, "evidence_required"),
                         ({"scope": "all", "consent_id": "C-a", "evidence_ref": "x"}, "target_required"),
                         ({"consent_id": "C-zzz", "evidence_ref": "x"}, "consent_not_found")):
        with pytest.raises(RevocationError) as exc:
            revoke_consent(con, party_id="P-a", actor="ravi", roles=ROLES, **kwargs)
        assert exc.value.code == code
    assert con.execute("SELECT count(*) FROM consents WHERE revoked_at IS NOT NULL").fetchone() == (0,)


def test_withdrawal_for_one_recording_leaves_the_rest_of_the_catalog(con, tmp_path: Path) -> None:
    _catalog(con, tmp_path)
    rv = revoke_consent(con, party_id="P-a", isrc=ISRCS[2], evidence_ref="mail-2026-11", actor="ravi", roles=ROLES)
    assert rv.revoked_consent_ids == () and rv.refusal_consent_id is not None
    assert _now(con) == {ISRCS[0]: (True, []), ISRCS[1]: (True, []), ISRCS[2]: (False, ["consent_not_allowed"])}
    assert con.execute("SELECT revoked_at FROM consents WHERE consent_id = 'C-a'").fetchone() == (None,)


def test_reimporting_a_consent_is_a_conflict_and_never_undoes_its_revocation(con, tmp_path: Path) -> None:
    _catalog(con, tmp_path)
    revoke_consent(con, party_id="P-b", scope="all", evidence_ref="letter", actor="ravi", roles=ROLES)
    revoked_event = con.execute("SELECT event_id FROM rights_events WHERE kind = 'consent.revoked'").fetchone()[0]
    again = write_rights(tmp_path / "again.json", ["P-b", "P-c"], [], [consent("C-b", "P-b")])
    report = import_rights_file(con, again, actor="ops")
    assert not report.rejected
    [conflict] = report.errors
    assert conflict.reason_code == "rights_conflict" and revoked_event in conflict.message
    assert con.execute("SELECT revoked_at IS NOT NULL FROM consents WHERE consent_id = 'C-b'").fetchone() == (True,)
    assert _now(con)[ISRCS[1]] == (False, ["consent_revoked"])
    assert con.execute("SELECT count(*) FROM quarantine WHERE reason_code = 'rights_conflict'").fetchone() == (1,)
    # with the new consent's evidence, the rights team may supersede the revocation on the record
    override = Supersession(frozenset({revoked_event}), "s3://evidence/re-grant.pdf")
    with pytest.raises(RoleRefused):  # superseding a restriction needs the rights team
        import_rights_file(con, again, actor="mina", roles=ROLES, supersede=override)
    done = import_rights_file(con, again, actor="ravi", roles=ROLES, supersede=override)
    assert done.errors == () and done.consents == 1
    assert _now(con)[ISRCS[1]] == (True, [])
    kind, supersedes, evidence = con.execute("SELECT kind, supersedes, evidence_ref FROM rights_events "
                                             "ORDER BY audit_seq DESC, event_id DESC LIMIT 1").fetchone()
    assert (kind, supersedes, evidence) == ("consent.superseded", [revoked_event], "s3://evidence/re-grant.pdf")
    assert import_rights_file(con, again, actor="ravi", roles=ROLES).already_imported  # now imported cleanly


def test_a_deal_ending_early_denies_from_the_next_day(con, tmp_path: Path) -> None:
    _catalog(con, tmp_path)
    end = TODAY - timedelta(days=1)
    ex = expire_deal(con, "D1", valid_to=end, evidence_ref="termination.pdf", reason="label left", actor="ravi",
                     roles=ROLES)
    assert ex.previous_valid_to is None and ex.isrcs == tuple(ISRCS)
    assert con.execute("SELECT valid_to FROM deals WHERE deal_id = 'D1'").fetchone() == (end,)
    assert con.execute("SELECT deal_id, valid_to, actor FROM deal_expiries").fetchall() == [("D1", end, "ravi")]
    assert list(_now(con).values()) == [(False, ["deal_expired"])] * 3
    assert _now(con, on=end)[ISRCS[0]] == (True, [])
    with pytest.raises(RevocationError) as later:
        expire_deal(con, "D1", valid_to=TODAY, evidence_ref="x", actor="ravi", roles=ROLES)
    assert later.value.code == "not_earlier"
    with pytest.raises(RoleRefused):
        expire_deal(con, "D1", valid_to=end - timedelta(days=1), evidence_ref="x", actor="mina", roles=ROLES)


def test_impact_names_release_shards_runs_and_the_decision_now(con, tmp_path: Path) -> None:
    tracks = _catalog(con, tmp_path)
    with command(con, "ops", "catalog.ingest", "test audio") as w:
        for i, track_id in enumerate(tracks):
            audio = write_audio(tmp_path / f"t{i}.flac", 6.0, freq=220.0 * (i + 1))
            w.update("tracks", "track_id = ?", [track_id], {"source_path": str(audio),
                                                            "audio_sha256": sha256_file(audio)})
    policy = load_policy()
    rel = propose_release(con, purpose=GEN, territory="DE", on_date=TODAY, actor="mina", policy=policy, roles=ROLES)
    approve_release(con, rel.release_id, actor="ravi", comment="contract checked", roles=ROLES)
    config = ShardConfig(crops_per_track=2, rows_per_shard=4, rows_per_row_group=2)
    manifest = build_shards(con, rel.release_id, output_uri=str(tmp_path / "shards"), config=config, actor="mina")
    build_id = con.execute("SELECT build_id FROM shard_builds").fetchone()[0]
    # a finished run, as the training launcher records it, that consumed 3 samples of track 1
    with command(con, "ops", "train.start", "run-1") as w:
        w.insert_query("training_runs", "SELECT 'run-1' AS run_id, ? AS release_id, 'completed' AS status, 'mina' AS actor, "
                                        "'tiny-cnn' AS model, '{}' AS config, manifest_uri, manifest_sha256, policy_hash, "
                                        "'abc' AS code_commit, '2.13' AS torch_version, 1 AS world_size, now() AS started_at, "
                                        "now() AS ended_at, 'runs/run-1/model.pt' AS checkpoint_uri, '{}' AS record "
                                        "FROM shard_builds", [rel.release_id])
        w.insert("training_exposure", [{"run_id": "run-1", "track_id": tracks[0], "isrc": ISRCS[0], "samples": 3,
                                        "fraction": 0.375}])

    cursor = WatchCursor.at_head(con)
    revoke_consent(con, party_id="P-a", consent_id="C-a", evidence_ref="withdrawal.pdf", actor="ravi", roles=ROLES)
    change = handle_changes(con, changes_since(con, cursor), reports_dir=tmp_path / "reports", actor="sensor")
    assert change["affected_releases"] == {rel.release_id: [tracks[0], tracks[2]]}

    report = impact_report(con, ISRCS[0])
    assert report.track_ids == (tracks[0],) and report.denied_now
    [now] = report.decisions_now
    assert (now.purpose, now.territory, now.allowed, now.reason_codes) == (GEN, "DE", False, ("consent_revoked",))
    [held] = report.releases
    assert (held.release_id, held.status, held.approved_by, held.alert_reason_codes) == (
        rel.release_id, "approved", "ravi", ("consent_revoked",))
    in_parquet = sum(pq.read_table(e.uri, columns=["track_id"]).column(0).to_pylist().count(tracks[0])
                     for e in manifest.shards)
    [built] = report.shard_builds
    assert (built.build_id, built.track_id, built.rows) == (build_id, tracks[0], in_parquet) and in_parquet >= 1
    [run] = report.training_runs
    assert (run.run_id, run.samples, run.model, run.acknowledged) == ("run-1", 3, "tiny-cnn", False)
    assert [v["party_id"] for v in report.revocations] == ["P-a"]
    # track 2 is untouched by P-a's withdrawal; its impact report says so
    other = impact_report(con, ISRCS[1])
    assert not other.denied_now and other.revocations == () and other.releases[0].alert_reason_codes is None


def test_consent_revoke_and_impact_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "roles.yaml").write_text(roles_yaml())
    with connect(Home.from_env(str(home)).db_path) as con:
        _catalog(con, tmp_path)
    runner = CliRunner()

    def run(*args: str) -> object:
        return runner.invoke(app, [*args, "--home", str(home)], catch_exceptions=False)

    r = run("consent", "revoke", "--party", "P-a", "--consent-id", "C-a", "--evidence-ref", "w.pdf", "--actor", "mina")
    assert r.exit_code == 3 and "role_missing" in r.output  # type: ignore[attr-defined]
    r = run("consent", "revoke", "--party", "P-a", "--consent-id", "C-a", "--evidence-ref", "w.pdf", "--actor", "ravi",
            "--json")
    assert r.exit_code == 0 and json.loads(r.output)["revoked_consent_ids"] == ["C-a"]  # type: ignore[attr-defined]
    r = run("rights", "expire-deal", "D1", "--valid-to", "2099-01-01", "--evidence-ref", "x", "--actor", "ravi")
    assert r.exit_code == 0 and "valid to" in r.output  # type: ignore[attr-defined]
    r = run("impact", ISRCS[0], "--json")
    doc = json.loads(r.output)  # type: ignore[attr-defined]
    assert doc["isrc"] == ISRCS[0] and doc["revocations"][0]["evidence_ref"] == "w.pdf"
    assert {(d["purpose"], d["allowed"]) for d in doc["decisions_now"]} == {
        (p, False) for p in load_policy().purposes}
    r = run("impact", ISRCS[0])
    assert r.exit_code == 0 and "consent_revoked" in r.output  # type: ignore[attr-defined]
