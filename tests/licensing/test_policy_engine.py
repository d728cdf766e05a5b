"""Table-driven: each rule of the deny-by-default policy, with its own reason code, on a real ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from licensing.evaluate import UnknownPurpose, evaluate_catalog
from licensing.explain import explain
from licensing.importers.tabular import import_rights_file
from licensing.policy import PolicyError, load_policy
from store.ledger import command
from tests.licensing.helpers import add_track, consent, deal, write_rights

ON = date(2026, 3, 1)
GEN = "UseForTrainingGenerativeAI"
NONGEN = "UseForTrainingNonGenerativeAI"
ISRC = "QZXXX2600001"
ARTIST = [("P-artist", "MainArtist")]

# (case, deals, consents, contributors, purpose, territory, on_date, expected reason codes)
CASES = [
    ("allowed", [deal("D1", [ISRC])], [consent("C1", "P-artist")], ARTIST, GEN, "DE", ON, []),
    ("no deal at all", [], [consent("C1", "P-artist")], ARTIST, GEN, "DE", ON, ["no_deal"]),
    ("deal for streaming only", [deal("D1", [ISRC], uses=["Stream", "PermanentDownload"])],
     [consent("C1", "P-artist")], ARTIST, GEN, "DE", ON, ["deal_use_not_licensed"]),
    ("territory excluded", [deal("D1", [ISRC], exclude=["DE"])], [consent("C1", "P-artist")], ARTIST, GEN, "DE", ON,
     ["deal_territory_not_covered"]),
    ("territory not included", [deal("D1", [ISRC], include=["US", "CA"])], [consent("C1", "P-artist")], ARTIST, GEN,
     "DE", ON, ["deal_territory_not_covered"]),
    ("worldwide use needs worldwide deal", [deal("D1", [ISRC], exclude=["US"])], [consent("C1", "P-artist")], ARTIST,
     GEN, "Worldwide", ON, ["deal_territory_not_covered"]),
    ("deal expired the day before", [deal("D1", [ISRC], valid_to="2026-02-28")], [consent("C1", "P-artist")], ARTIST,
     GEN, "DE", ON, ["deal_expired"]),
    ("deal ends on the day (inclusive)", [deal("D1", [ISRC], valid_to="2026-03-01")], [consent("C1", "P-artist")],
     ARTIST, GEN, "DE", ON, []),
    ("deal starts tomorrow", [deal("D1", [ISRC], valid_from="2026-03-02")], [consent("C1", "P-artist")], ARTIST, GEN,
     "DE", ON, ["deal_not_yet_valid"]),
    ("shares sum to 90%", [deal("D1", [ISRC], shares=[("P-label", ISRC, 60.0), ("P-artist", ISRC, 30.0)])],
     [consent("C1", "P-artist")], ARTIST, GEN, "DE", ON, ["rights_shares_incomplete"]),
    ("shares of two controllers sum to 100%", [deal("D1", [ISRC], shares=[("P-label", ISRC, 70.0), ("P-artist", ISRC, 30.0)])],
     [consent("C1", "P-artist")], ARTIST, GEN, "DE", ON, []),
    ("no contributor known", [deal("D1", [ISRC])], [], [], GEN, "DE", ON, ["contributors_unknown"]),
    ("artist never consented", [deal("D1", [ISRC])], [], ARTIST, GEN, "DE", ON, ["consent_missing"]),
    ("artist said notAllowed", [deal("D1", [ISRC])], [consent("C1", "P-artist", value="notAllowed")], ARTIST, GEN,
     "DE", ON, ["consent_not_allowed"]),
    ("constrained counts as no", [deal("D1", [ISRC])], [consent("C1", "P-artist", value="constrained")], ARTIST, GEN,
     "DE", ON, ["consent_constrained"]),
    ("consent revoked", [deal("D1", [ISRC])], [consent("C1", "P-artist", revoked="2026-02-10T12:00:00Z")], ARTIST, GEN,
     "DE", ON, ["consent_revoked"]),
    ("revocation after the date does not reach back", [deal("D1", [ISRC])],
     [consent("C1", "P-artist", revoked="2026-03-02T00:00:00Z")], ARTIST, GEN, "DE", ON, []),
    ("consent granted after the date", [deal("D1", [ISRC])], [consent("C1", "P-artist", granted="2026-03-02T00:00:00Z")],
     ARTIST, GEN, "DE", ON, ["consent_missing"]),
    ("refusal beats a permission", [deal("D1", [ISRC])],
     [consent("C1", "P-artist"), consent("C2", "P-artist", value="notAllowed", scope="recording", scope_ref=ISRC)],
     ARTIST, GEN, "DE", ON, ["consent_not_allowed"]),
    ("recording-scoped consent for another ISRC does not count", [deal("D1", [ISRC])],
     [consent("C1", "P-artist", scope="recording", scope_ref="QZXXX2600099")], ARTIST, GEN, "DE", ON,
     ["consent_missing"]),
    ("purpose maps to its own CAWG field", [deal("D1", [ISRC])],
     [consent("C1", "P-artist", ai_generative_training="notAllowed")], ARTIST, NONGEN, "DE", ON, []),
    ("songwriter consent required for generative training", [deal("D1", [ISRC])], [consent("C1", "P-artist")],
     ARTIST + [("P-writer", "Composer")], GEN, "DE", ON, ["consent_missing"]),
    ("songwriter consent not required for non-generative training", [deal("D1", [ISRC])], [consent("C1", "P-artist")],
     ARTIST + [("P-writer", "Composer")], NONGEN, "DE", ON, []),
    ("featured artist must consent too", [deal("D1", [ISRC])], [consent("C1", "P-artist")],
     ARTIST + [("P-feat", "FeaturedArtist")], NONGEN, "DE", ON, ["consent_missing"]),
]


@pytest.mark.parametrize("case,deals,consents,contributors,purpose,territory,on_date,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_rule(con, tmp_path: Path, case, deals, consents, contributors, purpose, territory, on_date, expected) -> None:
    parties = ["P-label", "P-artist", "P-writer", "P-feat"]
    report = import_rights_file(con, write_rights(tmp_path / "rights.json", parties, deals, consents), actor="rights-ops")
    assert report.errors == ()
    add_track(con, 1, ISRC, contributors)
    policy = load_policy()
    summary = evaluate_catalog(con, policy, purpose=purpose, territory=territory, on_date=on_date, actor="rights-ops")
    row = con.execute("SELECT allowed, reason_codes, deal_id, consent_ids, explanation, policy_hash FROM decisions").fetchone()
    assert list(row[1]) == expected
    assert row[0] is (not expected)
    assert row[5] == policy.content_hash
    assert summary.allowed == (0 if expected else 1)
    assert summary.by_reason == {code: 1 for code in expected}
    if not expected:
        assert row[2] == "D1" and row[3]
    decision = explain(con, ISRC, purpose=purpose, territory=territory, on_date=on_date, policy=policy)
    assert [c.value for c in decision.reason_codes] == expected
    assert decision.explanation == row[4]


def test_an_unknown_purpose_is_an_input_error_for_commands_and_a_denial_for_the_reference(con, tmp_path: Path) -> None:
    import_rights_file(con, write_rights(tmp_path / "r.json", ["P-label", "P-artist"], [deal("D1", [ISRC])],
                                         [consent("C1", "P-artist")]), actor="ops")
    add_track(con, 1, ISRC, ARTIST)
    before = con.execute("SELECT count(*) FROM audit_log").fetchone()
    with pytest.raises(UnknownPurpose, match="unknown purpose 'Stream'"):
        evaluate_catalog(con, load_policy(), purpose="Stream", territory="DE", on_date=ON, actor="ops")
    assert con.execute("SELECT count(*) FROM decisions").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM audit_log").fetchone() == before
    decision = explain(con, ISRC, purpose="Stream", territory="DE", on_date=ON, policy=load_policy())
    assert not decision.allowed and [c.value for c in decision.reason_codes] == ["purpose_unknown"]


def test_opt_out_match_and_duplicate_conflict_deny_with_evidence(con, tmp_path: Path) -> None:
    isrcs = ["QZXXX2600001", "QZXXX2600002", "QZXXX2600003"]
    import_rights_file(con, write_rights(tmp_path / "r.json", ["P-label", "P-artist"],
                                         [deal("D1", isrcs)], [consent("C1", "P-artist")]), actor="ops")
    t1, t2, t3 = (add_track(con, i + 1, isrc, ARTIST) for i, isrc in enumerate(isrcs))
    now = datetime.now(UTC)
    match = {"kind": "optout", "threshold": 0.6, "offset_s": 3.0, "span_s": 20.0, "matched_at": now}
    with command(con, "ops", "fingerprint.match", "catalog") as w:
        w.insert("audio_matches", [{**match, "track_id": t1, "matched_ref": "OPT-1", "score": 0.82, "bit_error_rate": 0.1},
                                   {**match, "track_id": t3, "matched_ref": "OPT-2", "score": 0.41, "bit_error_rate": 0.3}])
        w.insert("duplicate_clusters", [{"cluster_id": "CL1", "track_id": t2, "isrc": isrcs[1], "resolved": False},
                                        {"cluster_id": "CL1", "track_id": t3, "isrc": isrcs[2], "resolved": False}])
    evaluate_catalog(con, load_policy(), purpose=GEN, territory="FR", on_date=ON, actor="ops")
    rows = {r[0]: (list(r[1]), r[2]) for r in con.execute(
        "SELECT track_id, reason_codes, evidence::JSON->>'$.optout[0].score' FROM decisions").fetchall()}
    assert rows[t1] == (["optout_match"], "0.82")
    assert rows[t2][0] == ["duplicate_conflict"]
    assert rows[t3][0] == ["duplicate_conflict"]  # below-threshold match is not an opt-out
    with command(con, "ops", "fingerprint.match", "catalog") as w:
        w.update("duplicate_clusters", "cluster_id = ?", ["CL1"], {"resolved": True})
    evaluate_catalog(con, load_policy(), purpose=GEN, territory="FR", on_date=ON, actor="ops")
    allowed = con.execute("SELECT track_id FROM current_decisions WHERE allowed ORDER BY track_id").fetchall()
    assert allowed == [(t2,), (t3,)]


def test_ai_generated_excluded_by_default_and_policy_can_allow_it(con, tmp_path: Path) -> None:
    import_rights_file(con, write_rights(tmp_path / "r.json", ["P-label", "P-artist"], [deal("D1", [ISRC])],
                                         [consent("C1", "P-artist")]), actor="ops")
    add_track(con, 1, ISRC, ARTIST, ai=True)
    policy = load_policy()
    s = evaluate_catalog(con, policy, purpose=NONGEN, territory="DE", on_date=ON, actor="ops")
    assert s.by_reason == {"ai_generated": 1}
    text = (Path(__file__).resolve().parents[2] / "licensing/policies/default.yaml").read_text()
    relaxed_path = tmp_path / "relaxed.yaml"
    relaxed_path.write_text(text.replace("exclude_ai_generated: true", "exclude_ai_generated: false", 2)
                            .replace('version: "2026.1"', 'version: "2026.1-relaxed"'))
    relaxed = load_policy(relaxed_path)
    assert relaxed.content_hash != policy.content_hash
    assert relaxed.purposes[GEN].exclude_ai_generated is False
    assert relaxed.purposes["UseForDataMining"].exclude_ai_generated is True
    s = evaluate_catalog(con, relaxed, purpose=GEN, territory="DE", on_date=ON, actor="ops")
    assert s.allowed == 1


def test_a_track_whose_audio_was_never_fingerprinted_is_denied_and_explained(con, tmp_path: Path) -> None:
    import_rights_file(con, write_rights(tmp_path / "r.json", ["P-label", "P-artist"], [deal("D1", [ISRC])],
                                         [consent("C1", "P-artist")]), actor="ops")
    checked = add_track(con, 1, ISRC, ARTIST)
    unchecked = add_track(con, 2, ISRC, ARTIST, fingerprinted=False)
    policy = load_policy()
    s = evaluate_catalog(con, policy, purpose=NONGEN, territory="DE", on_date=ON, actor="ops")
    assert (s.allowed, s.by_reason) == (1, {"audio_not_fingerprinted": 1})
    rows = dict(con.execute("SELECT d.track_id, d.explanation FROM current_decisions c "
                            "JOIN decisions d USING (decision_id)").fetchall())
    assert rows[checked].startswith("allowed")
    assert "never checked against the opt-out registry" in rows[unchecked]
    # Once the audio is fingerprinted (and matches nothing), the same track is allowed.
    with command(con, "ops", "fingerprint.store", unchecked) as w:
        w.insert("fingerprints", [{"track_id": unchecked, "algorithm": 1, "duration_s": 30, "seconds_used": 30,
                                   "items": [7], "fingerprint": "x", "computed_at": datetime.now(UTC)}])
    assert evaluate_catalog(con, policy, purpose=NONGEN, territory="DE", on_date=ON, actor="ops").allowed == 2
    # A policy may waive the check explicitly; the waiver changes the policy hash.
    with command(con, "ops", "fingerprint.store", unchecked) as w:
        w.supersede("fingerprints", "track_id = ?", [unchecked])
    text = (Path(__file__).resolve().parents[2] / "licensing/policies/default.yaml").read_text()
    waived_path = tmp_path / "waived.yaml"
    waived_path.write_text(text.replace("require_fingerprint: true", "require_fingerprint: false"))
    waived = load_policy(waived_path)
    assert waived.content_hash != policy.content_hash
    assert evaluate_catalog(con, waived, purpose=NONGEN, territory="DE", on_date=ON, actor="ops").allowed == 2


def test_policy_hash_ignores_comments_but_not_values(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "licensing/policies/default.yaml").read_text()
    commented = tmp_path / "c.yaml"
    commented.write_text("# reviewed by legal\n" + text)
    assert load_policy(commented).content_hash == load_policy().content_hash
    changed = tmp_path / "v.yaml"
    changed.write_text(text.replace("share_tolerance: 0.01", "share_tolerance: 0.5"))
    assert load_policy(changed).content_hash != load_policy().content_hash
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("consent_field: data_mining", "consent_field: vibes"))
    with pytest.raises(PolicyError, match="consent_field"):
        load_policy(bad)


def test_reevaluation_is_idempotent_and_decisions_are_values(con, tmp_path: Path) -> None:
    import_rights_file(con, write_rights(tmp_path / "r.json", ["P-label", "P-artist"], [deal("D1", [ISRC])],
                                         [consent("C1", "P-artist")]), actor="ops")
    add_track(con, 1, ISRC, ARTIST)
    policy = load_policy()
    first = evaluate_catalog(con, policy, purpose=GEN, territory="DE", on_date=ON, actor="ops")
    again = evaluate_catalog(con, policy, purpose=GEN, territory="DE", on_date=ON, actor="ops")
    assert (first.decisions_written, again.decisions_written) == (1, 0)
    assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'rights.evaluate'").fetchone()[0] == 2
