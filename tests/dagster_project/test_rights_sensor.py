"""The rights-change sensor: a consent revoked after approval is reported with the release that holds it."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from dagster_project.resources import LedgerResource
from dagster_project.sensors import rights_change_sensor
from licensing.policy import load_policy
from licensing.releases import approve_release, propose_release
from licensing.revocation import revoke_consent
from lineage.audit import verify_chain
from store.database import connect
from store.home import Home
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
