"""The one release gate: every standing of a release, decided as a value on current rights data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
from pydantic import ValidationError

from licensing.gate import decide, denied_tracks
from licensing.revocation import expire_deal, revoke_consent
from schemas.gate import Acknowledged, Acknowledgement, GateDecision, GateReason
from store.database import connect
from store.ledger import command
from tests.ledger_seed import POLICY
from tests.shards.ledger import ARTIST, ON, Release, isrc_for, make_release

NOW = datetime.now(UTC)
R = GateReason


def _withdraw(con: duckdb.DuckDBPyConnection, isrc: str) -> None:
    revoke_consent(con, party_id=ARTIST, isrc=isrc, actor="rita.rights", evidence_ref="test://withdrawal")


def _expire_deal(con: duckdb.DuckDBPyConnection, r: Release) -> None:
    expire_deal(con, "deal_1", valid_to=NOW.date() - timedelta(days=1), actor="rita.rights",
                evidence_ref="test://deal-ended")


def _withdraw_track(con: duckdb.DuckDBPyConnection, r: Release) -> None:
    with command(con, "pipeline", "catalog.ingest", "delivery:dlv_1") as w:
        w.insert("track_withdrawals", [{"track_id": r.track_ids[0], "delivery_id": "dlv_1", "withdrawn_at": NOW,
                                        "reason": "not in the re-delivery", "restored_at": None}])


def _forget_track(con: duckdb.DuckDBPyConnection, r: Release) -> None:
    with command(con, "tester", "catalog.ingest", "delivery:dlv_1") as w:
        w.supersede("tracks", "track_id = ?", [r.track_ids[0]])


def _foreign_policy(con: duckdb.DuckDBPyConnection, r: Release) -> None:
    with command(con, "tester", "release.propose", r.release_id) as w:
        w.update("releases", "release_id = ?", [r.release_id], {"policy_hash": "f" * 64})


# change made after the release was frozen -> reasons (use "show"), and the tracks denied now
CASES: dict[str, tuple[str, Callable[[duckdb.DuckDBPyConnection, Release], object], tuple[R, ...], int]] = {
    "approved": ("approved", lambda con, r: None, (), 0),
    "proposed, never approved": ("proposed", lambda con, r: None, (R.RELEASE_NOT_APPROVED, R.APPROVAL_MISSING), 0),
    "rejected": ("rejected", lambda con, r: None, (R.RELEASE_NOT_APPROVED, R.APPROVAL_MISSING), 0),
    "revoked after approval": ("revoked", lambda con, r: None, (R.RELEASE_REVOKED,), 0),
    "consent withdrawn for a recording": (
        "approved", lambda con, r: _withdraw(con, isrc_for(0)), (R.DENIED_SINCE_APPROVAL,), 1),
    "consent withdrawn for a recording outside the release": (
        "approved", lambda con, r: _withdraw(con, "GBAYE2599999"), (), 0),
    "deal ended": ("approved", _expire_deal, (R.DENIED_SINCE_APPROVAL,), 2),
    "track withdrawn from its delivery": ("approved", _withdraw_track, (R.DENIED_SINCE_APPROVAL,), 1),
    "track gone from the catalog": ("approved", _forget_track, (R.DENIED_SINCE_APPROVAL,), 1),
    "policy not stored": ("approved", _foreign_policy, (R.POLICY_UNKNOWN,), 0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_release_standing(tmp_path, case) -> None:
    status, change, expected, denied = CASES[case]
    release = make_release(tmp_path, seconds=[1.0, 1.0], status=status)
    with connect(release.db_path) as con:
        change(con, release)
        decision = decide(con, release.release_id)
    assert decision.reason_codes == expected, decision.message
    assert decision.allowed == (expected == ())
    assert len(decision.denied_tracks) == denied
    assert decision.checked_on == datetime.now(UTC).date() and decision.use == "show"


def test_a_denial_names_the_recording_and_the_policy_reason(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[1.0, 1.0])
    with connect(release.db_path) as con:
        _withdraw(con, isrc_for(1))
        decision = decide(con, release.release_id)
        [denied] = decision.denied_tracks
        assert (denied.track_id, denied.isrc) == (release.track_ids[1], isrc_for(1))
        assert denied.reason_codes == ("consent_not_allowed",) and denied.decision_id
        assert release.track_ids[1] in decision.message and "consent_not_allowed" in decision.message
        assert denied_tracks(con, release.release_id) == decision.denied_tracks
        # Re-decided for a date before the withdrawal took effect, nothing is denied.
        assert decide(con, release.release_id, on_date=ON).allowed
        assert decision.policy_hash == POLICY.content_hash and decision.approval is not None


def test_unknown_and_changed_release(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[1.0])
    with connect(release.db_path) as con:
        unknown = decide(con, "rel_missing")
        assert (unknown.allowed, unknown.reason_codes) == (False, (R.RELEASE_UNKNOWN,))
        assert denied_tracks(con, "rel_missing") is None
        changed = decide(con, release.release_id, expected_content_sha256="d" * 64)
        assert changed.reason_codes == (R.RELEASE_CHANGED,)


def test_shards_are_judged_by_the_tracks_they_hold_and_a_build_leaves_denied_ones_out(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[1.0, 1.0])
    with connect(release.db_path) as con:
        _withdraw(con, isrc_for(0))
        held_denied = decide(con, release.release_id, use="load", contained_track_ids=set(release.track_ids))
        held_clean = decide(con, release.release_id, use="load", contained_track_ids={release.track_ids[1]})
        build = decide(con, release.release_id, use="build")
    assert held_denied.reason_codes == (R.DENIED_SINCE_APPROVAL,)
    assert held_clean.allowed and held_clean.denied_tracks == ()
    assert build.allowed and build.reason_codes == () and build.denied_track_ids == (release.track_ids[0],)
    assert "left out of this build" in build.message


def test_only_revocation_and_later_denials_can_be_acknowledged(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[1.0, 1.0], status="revoked")
    ack = Acknowledgement(actor="mira.ml", reason="audit replay")
    with connect(release.db_path) as con:
        _withdraw(con, isrc_for(0))
        refused = decide(con, release.release_id, use="load")
        assert refused.reason_codes == (R.RELEASE_REVOKED, R.DENIED_SINCE_APPROVAL) and not refused.allowed
        went_past = decide(con, release.release_id, use="load", acknowledge=ack)
        assert went_past.allowed and went_past.blocking == ()
        assert went_past.acknowledgement == Acknowledged(actor="mira.ml", reason="audit replay",
                                                         overridden=refused.reason_codes,
                                                         track_ids=(release.track_ids[0],))
        changed = decide(con, release.release_id, use="load", acknowledge=ack, expected_content_sha256="d" * 64)
        assert not changed.allowed and changed.acknowledgement is None
        assert changed.blocking == (R.RELEASE_REVOKED, R.RELEASE_CHANGED, R.DENIED_SINCE_APPROVAL)
        assert "cannot go past release_changed" in changed.message
        unapproved = make_release(tmp_path / "other", seconds=[1.0], status="proposed")
    with connect(unapproved.db_path) as con:
        assert not decide(con, unapproved.release_id, acknowledge=ack).allowed


def test_a_decision_cannot_claim_more_than_it_found() -> None:
    base = {"release_id": "r", "use": "train", "message": "m", "checked_on": date.today()}
    with pytest.raises(ValidationError):
        GateDecision(allowed=True, reason_codes=(R.RELEASE_NOT_APPROVED,), **base)
    with pytest.raises(ValidationError):  # an acknowledgement never covers an unapproved release
        GateDecision(allowed=True, reason_codes=(R.RELEASE_NOT_APPROVED,), **base,
                     acknowledgement=Acknowledged(actor="a", reason="why", overridden=(R.RELEASE_NOT_APPROVED,)))
    assert GateDecision(allowed=False, reason_codes=(R.MANIFEST_MISSING,), **base).blocking == (R.MANIFEST_MISSING,)
    assert str(R.DENIED_SINCE_APPROVAL) == "denied_since_approval"
