"""rights_change_sensor against a real ledger and a real Dagster instance: revoke -> report -> quiet."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from dagster_project.resources import LedgerResource
from dagster_project.sensors import rights_change_sensor
from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.releases import approve_release, propose_release
from licensing.revocation import expire_deal, revoke_consent
from licensing.roles import RoleBook
from store.database import connect
from store.home import Home
from tests.licensing.helpers import add_track, consent, deal, write_rights

GEN = "UseForTrainingGenerativeAI"
ISRCS = ["QZXXX2600001", "QZXXX2600002"]
ROLES = RoleBook(users={"mina": ("ml_engineer",), "ravi": ("rights_team",)})


def _tick(instance: dg.DagsterInstance, home: Path, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                      resources={"ledger": LedgerResource(home=str(home))})
    result = rights_change_sensor(context)
    assert isinstance(result, dg.SensorResult) and not result.run_requests
    return result


def _reports(home: Path) -> list[Path]:
    return sorted((home / "reports").glob("rights-change-*.json")) if (home / "reports").is_dir() else []


def test_revocation_is_reported_with_its_release_then_the_sensor_goes_quiet(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = Home.from_env(str(home)).ensure().db_path
    today = datetime.now(UTC).date()
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
        first = _tick(instance, home, None)
        [baseline] = _reports(home)
        assert json.loads(baseline.read_text())["affected_releases"] == {}

        with connect(db) as con:
            revoke_consent(con, party_id="P-a", consent_id="C-a", evidence_ref="withdrawal.pdf", actor="ravi",
                           roles=ROLES)
        second = _tick(instance, home, first.cursor)
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
        third = _tick(instance, home, second.cursor)
        assert third.skip_reason is not None and "no rights change" in str(third.skip_reason)
        assert len(_reports(home)) == 2

        # a deal ended early is noticed the same way
        with connect(db) as con:
            expire_deal(con, "D1", valid_to=today - timedelta(days=1),
                        evidence_ref="termination.pdf", actor="ravi", roles=ROLES)
        _tick(instance, home, third.cursor)
        latest = json.loads(_reports(home)[-1].read_text())
        assert latest["trigger"]["audit_entries"][0]["action"] == "deal.expire"
        assert {t["track_id"] for t in latest["became_denied"]} == {tracks[1]}
        assert latest["affected_releases"] == {rel.release_id: sorted(tracks)}
