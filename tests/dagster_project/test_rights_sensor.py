"""The rights-change sensor against a real ledger and instance: each change reported once, with its releases."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import dagster as dg

from dagster_project.resources import LedgerResource
from dagster_project.sensors import rights_change_sensor
from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.releases import approve_release, propose_release
from licensing.revocation import expire_deal, revoke_consent
from store.audit import verify_chain
from store.database import connect
from store.home import Home
from store.roles import RoleRefused
from tests.licensing.helpers import add_track, consent, deal, write_rights
from tests.licensing.test_revocation import GEN, ISRCS, ROLES, TODAY, _catalog
from tests.roles import write_test_roles


def _tick(instance: dg.DagsterInstance, ledger: LedgerResource, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"ledger": ledger})
    return rights_change_sensor(context)


def _decided_now(con, isrc: str) -> list[bool]:  # type: ignore[no-untyped-def]
    """What the ledger records for today for this recording (every purpose and territory in use)."""
    return [r[0] for r in con.execute(
        "SELECT c.allowed FROM current_decisions c JOIN tracks t USING (track_id) WHERE t.isrc = ? AND c.on_date = ?",
        [isrc, TODAY]).fetchall()]


def test_revocation_after_approval_is_effective_at_once_and_reported_once(tmp_path: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    write_test_roles(home.root)
    ledger = LedgerResource(home=str(home.root))
    with connect(home.db_path) as con:
        _catalog(con, tmp_path)
        release = propose_release(con, purpose=GEN, territory="DE", on_date=TODAY, actor="mina",
                                  policy=load_policy(), roles=ROLES)
        approve_release(con, release.release_id, actor="ravi", comment="ok", roles=ROLES)
    with dg.DagsterInstance.ephemeral() as instance:
        first = _tick(instance, ledger, None)  # starts at the log's head: earlier commands decided already
        assert first.skip_reason and "watching from audit entry" in first.skip_reason.skip_message
        quiet = _tick(instance, ledger, first.cursor)
        assert quiet.skip_reason and "no rights change" in quiet.skip_reason.skip_message
        with connect(home.db_path) as con:
            revoke_consent(con, party_id="P-a", consent_id="C-a", evidence_ref="s3://evidence/a.pdf",
                           actor="ravi", roles=ROLES)
            # effective at once: before any sensor tick, the ledger shows no allow for the revoked recordings
            assert _decided_now(con, ISRCS[0]) == [False] and _decided_now(con, ISRCS[2]) == [False]
            decisions_before = con.execute("SELECT count(*) FROM decisions").fetchone()
        after = _tick(instance, ledger, quiet.cursor)
        again = _tick(instance, ledger, after.cursor)
    assert again.skip_reason and "no rights change" in again.skip_reason.skip_message
    reports = sorted((home.root / "reports").glob("rights-change-*.json"))
    assert len(reports) == 1, "one change, one impact report"
    report = json.loads(reports[-1].read_text(encoding="utf-8"))
    with connect(home.db_path, read_only=True) as con:
        revoked_tracks = sorted(r[0] for r in con.execute(
            "SELECT track_id FROM tracks WHERE isrc IN (?, ?)", [ISRCS[0], ISRCS[2]]).fetchall())
        # the sensor fanned out without deciding anything again
        assert con.execute("SELECT count(*) FROM decisions").fetchone() == decisions_before
        assert report["redecided"] is None
    assert report["affected_releases"] == {release.release_id: revoked_tracks}
    assert set(report["trigger"]["isrcs"]) == {ISRCS[0], ISRCS[2]}
    with connect(home.db_path, read_only=True) as con:
        alerts = con.execute("SELECT count(*) FROM release_alerts WHERE release_id = ?",
                             [release.release_id]).fetchone()[0]
        assert alerts == 2 and verify_chain(con).ok


def _reports(home: Path) -> list[Path]:
    return sorted((home / "reports").glob("rights-change-*.json")) if (home / "reports").is_dir() else []


def test_import_revocation_and_deal_end_are_each_reported_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = Home.from_env(str(home)).ensure().db_path
    write_test_roles(home)
    today = TODAY
    with dg.DagsterInstance.ephemeral() as instance:
        start = _tick(instance, LedgerResource(home=str(home)), None)
        with connect(db) as con:
            rights = write_rights(tmp_path / "rights.json", ["P-label", "P-a", "P-b"], [deal("D1", ISRCS)],
                                  [consent("C-a", "P-a"), consent("C-b", "P-b")])
            import_rights_file(con, rights, actor="ravi")
            tracks = [add_track(con, 1, ISRCS[0], [("P-a", "MainArtist")]),
                      add_track(con, 2, ISRCS[1], [("P-b", "MainArtist")])]
            rel = propose_release(con, purpose=GEN, territory="DE", on_date=today, actor="mina", policy=load_policy(),
                                  roles=ROLES)
            approve_release(con, rel.release_id, actor="ravi", comment="checked", roles=ROLES)

        # first look: the import is news, but nothing held by a release is denied
        first = _tick(instance, LedgerResource(home=str(home)), start.cursor)
        [baseline] = _reports(home)
        assert json.loads(baseline.read_text())["affected_releases"] == {}

        with connect(db) as con:
            revoke_consent(con, party_id="P-a", consent_id="C-a", evidence_ref="withdrawal.pdf", actor="ravi",
                           roles=ROLES)
        second = _tick(instance, LedgerResource(home=str(home)), first.cursor)
        [report_path] = [p for p in _reports(home) if p != baseline]
        report = json.loads(report_path.read_text())
        assert report["affected_releases"] == {rel.release_id: [tracks[0]]}
        [impact] = [i for i in report["impact"] if i["isrc"] == ISRCS[0]]
        assert impact["releases"][0]["release_id"] == rel.release_id
        assert impact["releases"][0]["alert_reason_codes"] == ["consent_revoked"]
        assert report["trigger"]["audit_entries"][0]["action"] == "consent.revoke"
        with connect(db, read_only=True) as con:
            assert con.execute("SELECT release_id, track_id, reason_codes FROM release_alerts").fetchall() == [
                (rel.release_id, tracks[0], ["consent_revoked"])]
            assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'release.alert'").fetchone() == (2,)
            assert con.execute("SELECT DISTINCT actor FROM audit_log WHERE action = 'release.alert'").fetchall() == [
                ("linernotes-pipeline",)]

        # nothing changed since: no new report, no new alert
        third = _tick(instance, LedgerResource(home=str(home)), second.cursor)
        assert third.skip_reason and "no rights change" in third.skip_reason.skip_message
        assert len(_reports(home)) == 2

        # a deal ended early is noticed the same way
        with connect(db) as con:
            expire_deal(con, "D1", valid_to=today - timedelta(days=1),
                        evidence_ref="termination.pdf", actor="ravi", roles=ROLES)
            assert _decided_now(con, ISRCS[1]) == [False]  # the command re-decided the deal's recordings
        _tick(instance, LedgerResource(home=str(home)), third.cursor)
        latest = json.loads(_reports(home)[-1].read_text())
        assert latest["trigger"]["audit_entries"][0]["action"] == "deal.expire"
        assert latest["affected_releases"] == {rel.release_id: sorted(tracks)}
        assert latest["alerts_written"] == 1  # track 1 was alerted already


def test_a_sensor_whose_service_account_is_not_in_the_roles_file_is_refused(tmp_path: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    write_test_roles(home.root)
    with connect(home.db_path) as con:
        _catalog(con, tmp_path)
    ledger = LedgerResource(home=str(home.root), service_account="svc-unknown")
    with dg.DagsterInstance.ephemeral() as instance:
        first = _tick(instance, ledger, None)
        with connect(home.db_path) as con:
            revoke_consent(con, party_id="P-a", consent_id="C-a", evidence_ref="w.pdf", actor="ravi", roles=ROLES)
        try:
            _tick(instance, ledger, first.cursor)
        except RoleRefused as exc:
            assert exc.code == "unknown_service"
        else:
            raise AssertionError("a sensor acting as an unknown service account was not refused")
    with connect(home.db_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'release.alert.refused'").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM release_alerts").fetchone() == (0,)
