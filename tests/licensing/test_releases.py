"""Releases: ML engineers propose, the rights team approves; changes after approval are caught."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from licensing.gate import decide, denied_tracks
from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.releases import (
    ApprovalRefused,
    ReleaseError,
    approve_release,
    get_release,
    list_releases,
    propose_release,
    reject_release,
    tracks_without_allow,
)
from licensing.watch import WatchCursor, changes_since, handle_changes
from store.audit import verify_chain
from store.roles import load_roles
from tests.licensing.helpers import add_track, consent, deal, write_rights

ON = date(2026, 3, 1)
GEN = "UseForTrainingGenerativeAI"
ISRCS = ["QZXXX2600001", "QZXXX2600002", "QZXXX2600003"]


@pytest.fixture
def roles(tmp_path: Path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "roles.yaml"
    path.write_text("users:\n  mina: [ml_engineer]\n  ravi: [rights_team]\n  both: [ml_engineer, rights_team]\n")
    return load_roles(path)


@pytest.fixture
def catalog(con, tmp_path: Path):
    path = write_rights(tmp_path / "rights.json", ["P-label", "P-a", "P-b", "P-c"],
                        [deal("D1", ISRCS[:2], valid_to="2026-06-30"), deal("D2", [ISRCS[2]])],
                        [consent("C-a", "P-a"), consent("C-b", "P-b"), consent("C-c", "P-c", value="notAllowed")])
    import_rights_file(con, path, actor="ops")
    ids = [add_track(con, i + 1, isrc, [(p, "MainArtist")]) for i, (isrc, p) in enumerate(zip(ISRCS, ["P-a", "P-b", "P-c"]))]
    return ids


def test_propose_freezes_allowed_tracks_with_decisions(con, catalog, roles) -> None:
    rel = propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="mina", policy=load_policy(), roles=roles)
    assert rel.status == "proposed" and rel.track_count == 2
    assert [t.track_id for t in rel.tracks] == catalog[:2]
    decided = {r[0]: r[1] for r in con.execute("SELECT decision_id, allowed FROM decisions").fetchall()}
    assert all(decided[t.decision_id] for t in rel.tracks)
    assert rel.policy_hash == load_policy().content_hash
    assert [r.release_id for r in list_releases(con)] == [rel.release_id]


def test_approval_trail_and_separation_of_duties(con, catalog, roles) -> None:
    rel = propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="both", policy=load_policy(), roles=roles)
    with pytest.raises(ApprovalRefused) as same:
        approve_release(con, rel.release_id, actor="both", comment="looks fine", roles=roles)
    assert same.value.code == "same_person"
    with pytest.raises(ApprovalRefused) as no_role:
        approve_release(con, rel.release_id, actor="mina", comment="ok", roles=roles)
    assert no_role.value.code == "role_missing"
    with pytest.raises(ApprovalRefused) as no_comment:
        approve_release(con, rel.release_id, actor="ravi", comment="  ", roles=roles)
    assert no_comment.value.code == "comment_required"
    assert get_release(con, rel.release_id).status == "proposed"
    approved = approve_release(con, rel.release_id, actor="ravi", comment="deals and consents checked", roles=roles,
                               on_date=ON)
    assert approved.status == "approved"
    assert [(a.actor, a.action, a.comment) for a in approved.approvals] == [("ravi", "approve", "deals and consents checked")]
    with pytest.raises(ApprovalRefused) as twice:
        reject_release(con, rel.release_id, actor="ravi", comment="changed my mind", roles=roles)
    assert twice.value.code == "wrong_status"
    actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
    assert actions.count("release.approve.refused") == 3 and "release.approve" in actions
    assert verify_chain(con).ok


def test_proposing_needs_the_ml_engineer_role_and_a_roles_file(con, catalog, roles, tmp_path: Path) -> None:
    with pytest.raises(ApprovalRefused) as exc:
        propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="ravi", policy=load_policy(), roles=roles)
    assert exc.value.code == "role_missing"
    (tmp_path / "roles.yaml").unlink()
    with pytest.raises(ApprovalRefused) as missing:  # no roles.yaml beside the ledger: deny
        propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="mina", policy=load_policy())
    assert missing.value.code == "roles_unavailable"
    (tmp_path / "roles.yaml").write_text("users:\n  mina: [ml_engineer]\n")
    assert propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="mina", policy=load_policy()).track_count == 2


def test_reject_and_empty_release(con, catalog, roles) -> None:
    rel = propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="mina", policy=load_policy(), roles=roles)
    assert reject_release(con, rel.release_id, actor="ravi", comment="wrong territory", roles=roles).status == "rejected"
    assert not decide(con, rel.release_id, on_date=ON).allowed
    with pytest.raises(ReleaseError) as empty:
        propose_release(con, purpose=GEN, territory="DE", on_date=date(2019, 1, 1), actor="mina", policy=load_policy(),
                        roles=roles)
    assert empty.value.code == "release_empty"


def test_revocation_after_approval_closes_the_gate_and_is_reported(con, catalog, roles, tmp_path: Path) -> None:
    policy = load_policy()
    rel = propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="mina", policy=policy, roles=roles)
    approve_release(con, rel.release_id, actor="ravi", comment="ok", roles=roles, on_date=ON)
    assert decide(con, rel.release_id, on_date=ON).allowed
    assert denied_tracks(con, rel.release_id, on_date=ON) == ()
    revoked = write_rights(tmp_path / "revocation.json", ["P-a"], [],
                           [consent("C-a", "P-a", revoked="2026-03-05T08:00:00Z")])
    import_rights_file(con, revoked, actor="ops")
    assert denied_tracks(con, rel.release_id, on_date=ON) == ()  # not yet revoked on the release date
    later = date(2026, 3, 10)
    denied = denied_tracks(con, rel.release_id, on_date=later)
    assert [(d.track_id, d.reason_codes) for d in denied] == [(catalog[0], ("consent_revoked",))]
    gate = decide(con, rel.release_id, on_date=later)
    assert not gate.allowed and gate.reason_codes == ("denied_since_approval",)
    # what the rights_change_sensor does: re-decide what time changed, alert the releases holding it
    # the watcher last looked on the release date; time passes to the 10th
    watched = WatchCursor.at_head(con, now=datetime(2026, 3, 1, tzinfo=UTC))
    changes = changes_since(con, watched, now=datetime(2026, 3, 10, tzinfo=UTC))
    report = handle_changes(con, changes, reports_dir=tmp_path / "reports", actor="sensor", on_date=later)
    assert report["redecided"]["became_denied"] == [[catalog[0], GEN, "DE"]]
    assert report["affected_releases"] == {rel.release_id: [catalog[0]]}
    assert report["alerts_written"] == 1
    assert handle_changes(con, changes, reports_dir=tmp_path / "reports", actor="sensor",
                          on_date=later)["alerts_written"] == 0
    # the deal of the second track expires at the end of June
    summer = changes_since(con, changes.cursor, now=datetime(2026, 7, 1, tzinfo=UTC))
    assert summer.deals_ended == ("D1",)
    report = handle_changes(con, summer, reports_dir=tmp_path / "reports", actor="sensor", on_date=date(2026, 7, 1))
    assert report["redecided"]["became_denied"] == [[catalog[1], GEN, "DE"]]
    assert report["checked_on"] == "2026-07-01" and report["alerts_written"] == 1


def test_approval_refused_when_a_track_is_denied_by_then(con, catalog, roles, tmp_path: Path) -> None:
    rel = propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="mina", policy=load_policy(), roles=roles)
    import_rights_file(con, write_rights(tmp_path / "r.json", ["P-b"], [],
                                         [consent("C-b", "P-b", revoked="2026-02-01T00:00:00Z")]), actor="ops")
    with pytest.raises(ApprovalRefused) as exc:
        approve_release(con, rel.release_id, actor="ravi", comment="ok", roles=roles, on_date=ON)
    assert exc.value.code == "tracks_now_denied" and "QZXXX2600002" in exc.value.message


def test_tracks_without_allow_names_a_frozen_deny(con, catalog, roles) -> None:
    release = propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="mina", policy=load_policy(),
                              roles=roles)
    assert release.track_count == 2 and tracks_without_allow(con, release.release_id) == []
    frozen = con.execute("SELECT decision_id FROM release_tracks WHERE release_id = ? AND isrc = ?",
                         [release.release_id, ISRCS[0]]).fetchone()[0]
    con.execute("UPDATE decisions SET allowed = false WHERE decision_id = ?", [frozen])
    assert tracks_without_allow(con, release.release_id) == [ISRCS[0]]
