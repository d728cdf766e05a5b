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
from tests.licensing.helpers import add_track, consent, deal, write_rights
from tests.licensing.test_revocation import GEN, ISRCS, ROLES, TODAY, _catalog


def _tick(instance: dg.DagsterInstance, ledger: LedgerResource, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"ledger": ledger})
    return rights_change_sensor(context)


def test_revocation_after_approval_is_reported_once(tmp_path: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    ledger = LedgerResource(home=str(home.root))
    with connect(home.db_path) as con:
        _catalog(con, tmp_path)
        release = propose_release(con, purpose=GEN, territory="DE", on_date=TODAY, actor="mina",
                                  policy=load_policy(), roles=ROLES)
        approve_release(con, release.release_id, actor="ravi", comment="ok", roles=ROLES)
    with dg.DagsterInstance.ephemeral() as instance:
        first = _tick(instance, ledger, None)  # the imports so far are changes too: nothing became denied
        quiet = _tick(instance, ledger, first.cursor)
        assert quiet.skip_reason and "no rights change" in quiet.skip_reason.skip_message
        with connect(home.db_path) as con:
            revoke_consent(con, party_id="P-a", consent_id="C-a", evidence_ref="s3://evidence/a.pdf",
                           actor="ravi", roles=ROLES)
        after = _tick(instance, ledger, quiet.cursor)
        again = _tick(instance, ledger, after.cursor)
    assert again.skip_reason and "no rights change" in again.skip_reason.skip_message
    reports = sorted((home.root / "reports").glob("rights-change-*.json"))
    assert reports, "no impact report written"
    report = json.loads(reports[-1].read_text(encoding="utf-8"))
    assert {t["isrc"] for t in report["became_denied"]} == {ISRCS[0], ISRCS[2]}
    with connect(home.db_path, read_only=True) as con:
        revoked_tracks = sorted(r[0] for r in con.execute(
            "SELECT track_id FROM tracks WHERE isrc IN (?, ?)", [ISRCS[0], ISRCS[2]]).fetchall())
    assert report["affected_releases"] == {release.release_id: revoked_tracks}
    assert report["trigger"]["consents_revoked"] == ["C-a"]
    with connect(home.db_path, read_only=True) as con:
        alerts = con.execute("SELECT count(*) FROM release_alerts WHERE release_id = ?",
                             [release.release_id]).fetchone()[0]
        assert alerts == 2 and verify_chain(con).ok


def _reports(home: Path) -> list[Path]:
    return sorted((home / "reports").glob("rights-change-*.json")) if (home / "reports").is_dir() else []


def test_import_revocation_and_deal_end_are_each_reported_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = Home.from_env(str(home)).ensure().db_path
    today = TODAY
    with connect(db) as con:
        rights = write_rights(tmp_path / "rights.json", ["P-label", "P-a", "P-b"], [deal("D1", ISRCS)],
                              [consent("C-a", "P-a"), consent("C-b", "P-b")])
        import_rights_file(con, rights, actor="ravi")
        tracks = [add_track(con, 1, ISRCS[0], [("P-a", "MainArtist")]), add_track(con, 2, ISRCS[1], [("P-b", "MainArtist")])]
        rel = propose_release(con, purpose=GEN, territory="DE", on_date=today, actor="mina", policy=load_policy(),
                              roles=ROLES)
        approve_release(con, rel.release_id, actor="ravi", comment="checked", roles=ROLES)

    with dg.DagsterInstance.ephemeral() as instance:
        # first look: the import is news, but nothing that was allowed became denied
        first = _tick(instance, LedgerResource(home=str(home)), None)
        [baseline] = _reports(home)
        assert json.loads(baseline.read_text())["affected_releases"] == {}

        with connect(db) as con:
            revoke_consent(con, party_id="P-a", consent_id="C-a", evidence_ref="withdrawal.pdf", actor="ravi",
                           roles=ROLES)
        second = _tick(instance, LedgerResource(home=str(home)), first.cursor)
        [report_path] = [p for p in _reports(home) if p != baseline]
        report = json.loads(report_path.read_text())
        assert report["affected_releases"] == {rel.release_id: [tracks[0]]}
        assert [(t["track_id"], t["reason_codes"]) for t in report["became_denied"]] == [
            (tracks[0], ["consent_revoked"])]
        [impact] = report["impact"]
        assert impact["isrc"] == ISRCS[0] and impact["releases"][0]["release_id"] == rel.release_id
        assert impact["releases"][0]["alert_reason_codes"] == ["consent_revoked"]
        assert report["trigger"]["audit_entries"][0]["action"] == "consent.revoke"
        with connect(db, read_only=True) as con:
            assert con.execute("SELECT release_id, track_id, reason_codes FROM release_alerts").fetchall() == [
                (rel.release_id, tracks[0], ["consent_revoked"])]
            assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'rights.change_report'").fetchone() == (2,)

        # nothing changed since: no new report, no new alert
        third = _tick(instance, LedgerResource(home=str(home)), second.cursor)
        assert third.skip_reason and "no rights change" in third.skip_reason.skip_message
        assert len(_reports(home)) == 2

        # a deal ended early is noticed the same way
        with connect(db) as con:
            expire_deal(con, "D1", valid_to=today - timedelta(days=1),
                        evidence_ref="termination.pdf", actor="ravi", roles=ROLES)
        _tick(instance, LedgerResource(home=str(home)), third.cursor)
        latest = json.loads(_reports(home)[-1].read_text())
        assert latest["trigger"]["audit_entries"][0]["action"] == "deal.expire"
        assert {t["track_id"] for t in latest["became_denied"]} == {tracks[1]}
        assert latest["affected_releases"] == {rel.release_id: sorted(tracks)}
