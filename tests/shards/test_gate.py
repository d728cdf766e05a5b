from datetime import timedelta

import pytest

from schemas.shards import Acknowledgement
from shards.gate import ReleaseRefused, admit, check_release
from store.database import connect
from tests.shards.ledger import PURPOSE, T0, deny_since, isrc_for, make_release, set_status


def _decision(con, decision_id, track_id, *, allowed, hours, purpose=PURPOSE):
    con.execute(
        "INSERT INTO decisions VALUES (?, ?, ?, ?, 'WORLD', DATE '2025-02-01', ?, ['x'], 'x', 'pol', 'in', NULL, [], "
        "NULL, ?)", [decision_id, track_id, isrc_for(0), purpose, allowed, T0 + timedelta(hours=hours)])


CASES = {
    "approved": (lambda r, con: None, ()),
    "proposed": (lambda r, con: con.execute("UPDATE releases SET status = 'proposed'").fetchall(),
                 ("release_not_approved",)),
    "approval row missing": (lambda r, con: con.execute("DELETE FROM approvals").fetchall(), ("approval_missing",)),
    "latest approval is a reject": (
        lambda r, con: con.execute("INSERT INTO approvals VALUES (?, 'b', 'reject', 'no', ?)",
                                   [r.release_id, T0 + timedelta(hours=3)]).fetchall(), ("approval_missing",)),
    "revoked": (lambda r, con: con.execute("UPDATE releases SET status = 'revoked'").fetchall(), ("release_revoked",)),
    "denied later": (lambda r, con: _decision(con, "d2", r.track_ids[0], allowed=False, hours=4),
                     ("denied_since_approval",)),
    "denied then allowed again": (lambda r, con: (_decision(con, "d2", r.track_ids[0], allowed=False, hours=4),
                                                  _decision(con, "d3", r.track_ids[0], allowed=True, hours=5)), ()),
    "denied for another purpose": (lambda r, con: _decision(con, "d2", r.track_ids[0], allowed=False, hours=4,
                                                            purpose="ai_inference"), ()),
    "deny older than the release decision": (lambda r, con: _decision(con, "d2", r.track_ids[0], allowed=False,
                                                                      hours=-4), ()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_release_standing(tmp_path, case) -> None:
    change, expected = CASES[case]
    release = make_release(tmp_path, seconds=[1.0])
    with connect(release.db_path) as con:
        change(release, con)
        gate = check_release(con, release.release_id)
    assert gate.reasons == expected
    assert gate.ok == (expected == ())


def test_unknown_and_changed_release(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[1.0])
    with connect(release.db_path) as con:
        assert check_release(con, "rel_missing").reasons == ("release_unknown",)
        assert check_release(con, release.release_id, expected_content_sha256="d" * 64).reasons == ("release_changed",)


def test_only_revocation_and_later_denials_can_be_acknowledged(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[1.0])
    deny_since(release.db_path, release.track_ids[0], isrc_for(0))
    set_status(release.db_path, release.release_id, "revoked")
    ack = Acknowledgement(actor="a@x", reason="audit replay")
    with connect(release.db_path) as con:
        gate = check_release(con, release.release_id)
        record = admit(gate, ack, context="load")
        assert record is not None and record.skipped_track_ids == (release.track_ids[0],)
        with pytest.raises(ReleaseRefused):
            admit(check_release(con, release.release_id, expected_content_sha256="d" * 64), ack, context="load")
