"""The counts per reason kept beside current_decisions equal a recount after every kind of write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from dagster_project.cli import app
from licensing import decision_counts as dc
from licensing.evaluate import evaluate_catalog
from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.releases import approve_release, propose_release, release_review
from licensing.revocation import expire_deal, revoke_consent
from licensing.synthetic import generate_catalog
from lineage.integrity import verify_ledger
from store.database import connect
from store.home import Home
from store.roles import RoleBook, os_user
from tests.licensing.helpers import consent, deal, write_rights

GEN = "UseForTrainingGenerativeAI"
ROLES = RoleBook(users={"ops": ("admin",), "ravi": ("rights_team",), "mina": ("ml_engineer",)})
TODAY = datetime.now(UTC).date()
LATER = TODAY + timedelta(days=40)


def _recount(con: duckdb.DuckDBPyConnection) -> dict[tuple[object, ...], int]:
    """From scratch, straight from the decisions in force: per evaluation key, tracks allowed (''), denied ('*')
    and denied for each reason."""
    key = "c.purpose, c.territory, c.on_date, c.policy_hash"
    return {tuple(r[:5]): int(r[5]) for r in con.execute(
        f"SELECT {key}, CASE WHEN c.allowed THEN '' ELSE '*' END, count(*) FROM current_decisions c GROUP BY ALL "
        f"UNION ALL SELECT {key}, u.code, count(*) FROM current_decisions c JOIN decisions d USING (decision_id), "
        "unnest(d.reason_codes) u(code) GROUP BY ALL").fetchall()}


def _kept(con: duckdb.DuckDBPyConnection) -> dict[tuple[object, ...], int]:
    return {tuple(r[:5]): int(r[5]) for r in con.execute(
        "SELECT purpose, territory, on_date, policy_hash, reason, sum(tracks) FROM decision_counts "
        "GROUP BY ALL HAVING sum(tracks) > 0").fetchall()}


def _same(con: duckdb.DuckDBPyConnection) -> None:
    assert _kept(con) == _recount(con)
    assert dc.mismatches(con) == []


def _catalog(con: duckdb.DuckDBPyConnection) -> None:
    generate_catalog(con, tracks=3000, seed=7, on_date=TODAY)
    for day in (TODAY, LATER):
        for territory in ("DE", "US"):
            evaluate_catalog(con, load_policy(), purpose=GEN, territory=territory, on_date=day, actor="ops",
                             roles=ROLES)


def test_counts_after_whole_evaluations_are_a_recount_cut_into_ranges(con: duckdb.DuckDBPyConnection) -> None:
    _catalog(con)
    _same(con)
    key = (GEN, "DE", LATER, load_policy().content_hash)
    denied, by_reason = dc.denied_by_reason(con, *key)
    assert denied == con.execute("SELECT count(*) FROM current_decisions WHERE purpose = ? AND territory = 'DE' "
                                 "AND on_date = ? AND NOT allowed", [GEN, LATER]).fetchone()[0] > 1500
    assert sum(by_reason.values()) >= denied and len(by_reason) > 3
    # ranges of about 1,024 track ids: the first open below, each starting at a track id, every track in one
    starts = [r[0] for r in con.execute("SELECT DISTINCT bucket FROM decision_counts WHERE on_date = ? "
                                        "AND territory = 'DE' ORDER BY 1", [LATER]).fetchall()]
    ids = {r[0] for r in con.execute("SELECT track_id FROM tracks").fetchall()}
    assert starts[0] == "" and set(starts[1:]) <= ids and 1 <= len(starts) - 1 <= 12
    per_range = con.execute("SELECT sum(tracks) FROM decision_counts WHERE on_date = ? AND territory = 'DE' "
                            "AND reason IN ('', '*')", [LATER]).fetchone()[0]
    assert per_range == len(ids)


def test_windows_find_the_same_page_as_an_offset(con: duckdb.DuckDBPyConnection) -> None:
    _catalog(con)
    key = (GEN, "DE", LATER, load_policy().content_hash)
    denied = ("SELECT c.track_id FROM current_decisions c JOIN decisions d USING (decision_id) WHERE c.purpose = $p "
              "AND c.territory = $t AND c.on_date = $d AND c.policy_hash = $h AND NOT c.allowed "
              "AND ($reason IS NULL OR list_contains(d.reason_codes, $reason))")

    def page(win: dc.Window, reason: str | None) -> list[str]:
        cond, params = dc.window_sql(win)
        return [r[0] for r in con.execute(
            f"SELECT track_id FROM ({denied}) WHERE {cond} ORDER BY 1 LIMIT 50 OFFSET {win.skip}",
            {"p": key[0], "t": key[1], "d": key[2], "h": key[3], "reason": reason, **params}).fetchall()]

    for reason in (None, "no_deal", "consent_missing"):
        every = [r[0] for r in con.execute(denied + " ORDER BY 1", {"p": key[0], "t": key[1], "d": key[2],
                                                                    "h": key[3], "reason": reason}).fetchall()]
        assert len(every) > 100
        for skip in (0, 37, 1000, 1023, 1024, 1500, len(every) - 10, len(every), len(every) + 5):
            win = dc.window(con, *key, size=50, skip=skip, reason=reason)
            if skip >= len(every):
                assert win is None
            else:
                assert win is not None and page(win, reason) == every[skip:skip + 50], (reason, skip)
        for i in (0, len(every) // 2, len(every) - 2):
            win = dc.window(con, *key, size=50, after=every[i], reason=reason)
            assert win is not None and page(win, reason) == every[i + 1:i + 51], (reason, i)


def test_counts_follow_revocations_deal_ends_and_imports(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _catalog(con)
    before = _kept(con)
    # a party that contributes to many tracks withdraws every consent: its tracks are re-decided (a delta)
    party, n = con.execute("SELECT party_id, count(*) FROM contributors c JOIN consents k USING (party_id) "
                           "WHERE k.revoked_at IS NULL AND k.scope = 'all' GROUP BY 1 ORDER BY 2 DESC, 1 "
                           "LIMIT 1").fetchone()
    assert n > 1
    revoke_consent(con, party_id=party, scope="all", evidence_ref="test://withdrawal", actor="ravi", roles=ROLES)
    _same(con)
    assert _kept(con) != before
    # a deal ends early: its recordings are re-decided for today and for LATER
    deal_id = con.execute("SELECT deal_id FROM deals WHERE valid_to IS NULL OR valid_to > ? ORDER BY deal_id LIMIT 1",
                          [LATER]).fetchone()[0]
    expire_deal(con, deal_id, valid_to=TODAY - timedelta(days=1), actor="ravi", evidence_ref="test://end",
                roles=ROLES)
    _same(con)
    # an import gives some catalog recordings a deal and a consent they lacked
    isrcs = [r[0] for r in con.execute("SELECT t.isrc FROM tracks t JOIN current_decisions c USING (track_id) "
                                       "JOIN decisions d USING (decision_id) WHERE list_contains(d.reason_codes, "
                                       "'no_deal') ORDER BY 1 LIMIT 5").fetchall()]
    assert isrcs
    path = write_rights(tmp_path / "rights.json", ["P-label"], [deal("D-new", isrcs)], [consent("C-new", "P-label")])
    assert not import_rights_file(con, path, actor="ops", roles=ROLES).rejected
    _same(con)


def test_a_key_written_before_counts_were_kept_is_recounted_on_its_next_redecision(
        con: duckdb.DuckDBPyConnection) -> None:
    _catalog(con)
    con.execute("DELETE FROM decision_counts WHERE on_date = ?", [LATER])  # as an older version left it
    assert dc.mismatches(con)
    party = con.execute("SELECT party_id FROM consents WHERE revoked_at IS NULL AND scope = 'all' "
                        "ORDER BY consent_id LIMIT 1").fetchone()[0]
    revoke_consent(con, party_id=party, scope="all", evidence_ref="test://withdrawal", actor="ravi", roles=ROLES)
    _same(con)


def test_audit_verify_finds_counts_edited_outside_the_write_path(con: duckdb.DuckDBPyConnection) -> None:
    _catalog(con)
    assert not [f for f in verify_ledger(con).findings if "decision_counts" in f.subject]
    con.execute("UPDATE decision_counts SET tracks = tracks + 1 WHERE rowid = (SELECT min(rowid) FROM decision_counts "
                "WHERE reason = 'no_deal')")
    found = [f for f in verify_ledger(con).findings if f.subject.startswith("decision_counts")]
    assert found and "recount" in found[0].problem


def test_a_release_review_reads_the_same_as_a_full_scan(con: duckdb.DuckDBPyConnection) -> None:
    generate_catalog(con, tracks=3000, seed=11, on_date=TODAY)
    policy = load_policy()
    propose_release(con, purpose=GEN, territory="DE", on_date=TODAY, actor="mina", policy=policy,
                    release_id="rel-a", roles=ROLES)
    approve_release(con, "rel-a", actor="ravi", comment="baseline", roles=ROLES, on_date=TODAY)
    # a party's withdrawal, then a later release: some of rel-a's tracks are denied now
    party = con.execute("SELECT c.party_id FROM release_tracks rt JOIN contributors c USING (track_id) "
                        "JOIN consents k ON k.party_id = c.party_id AND k.scope = 'all' AND k.revoked_at IS NULL "
                        "WHERE rt.release_id = 'rel-a' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()[0]
    revoke_consent(con, party_id=party, scope="all", evidence_ref="test://withdrawal", actor="ravi", roles=ROLES)
    propose_release(con, purpose=GEN, territory="DE", on_date=LATER, actor="mina", policy=policy,
                    release_id="rel-b", roles=ROLES)
    # and one after it: rel-b's own evaluation key is re-decided for that party's tracks
    other = con.execute("SELECT c.party_id FROM release_tracks rt JOIN contributors c USING (track_id) JOIN consents k "
                        "ON k.party_id = c.party_id AND k.scope = 'all' AND k.revoked_at IS NULL WHERE rt.release_id = "
                        "'rel-b' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()[0]
    revoke_consent(con, party_id=other, scope="all", evidence_ref="test://withdrawal-2", actor="ravi", roles=ROLES)
    _same(con)
    key = [GEN, "DE", LATER, policy.content_hash]
    denied = con.execute("SELECT c.track_id, t.isrc, d.reason_codes FROM current_decisions c JOIN decisions d "
                         "USING (decision_id) JOIN tracks t ON t.track_id = c.track_id WHERE c.purpose = ? AND "
                         "c.territory = ? AND c.on_date = ? AND c.policy_hash = ? AND NOT c.allowed ORDER BY 1",
                         key).fetchall()
    base = {r[0] for r in con.execute("SELECT track_id FROM release_tracks WHERE release_id = 'rel-a'").fetchall()}
    newly = [r for r in denied if r[0] in base]
    assert newly
    by_reason: dict[str, int] = {}
    for _, _, codes in denied:
        for code in codes:
            by_reason[code] = by_reason.get(code, 0) + 1
    for offset in (0, 1000, 1050, len(denied) - 3):
        review = release_review(con, "rel-b", limit=50, offset=offset)
        assert review["baseline"] == "rel-a"
        assert review["excluded_count"] == len(denied) and review["excluded_by_reason"] == by_reason
        assert [(r["track_id"], r["isrc"], list(r["reason_codes"])) for r in review["excluded"]] == [
            (t, i, list(c)) for t, i, c in denied[offset:offset + 50]]
        assert review["newly_denied_count"] == len(newly)
        assert sorted((r["track_id"], list(r["reason_codes"])) for r in review["newly_denied"]) == sorted(
            (t, list(c)) for t, _, c in newly[:50])


def test_rights_recount_rebuilds_counts_through_the_cli_and_refuses_a_reader(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "roles.yaml").write_text(f"users:\n  ops: [rights_team]\n  aude: [auditor]\n"
                                     f"  admin:\n    roles: [admin]\n    os_users: [{os_user()}]\n")
    with connect(Home.from_env(home).db_path) as con:
        generate_catalog(con, tracks=1500, seed=3, on_date=TODAY)
        evaluate_catalog(con, load_policy(), purpose=GEN, territory="DE", on_date=TODAY, actor="ops")
        con.execute("DELETE FROM decision_counts")  # as a ledger written before counts were kept
        assert dc.mismatches(con)
    runner = CliRunner()
    refused = runner.invoke(app, ["rights", "recount", "--home", str(home), "--actor", "aude"])
    assert refused.exit_code == 3 and "role_missing" in refused.output
    done = runner.invoke(app, ["rights", "recount", "--home", str(home), "--actor", "ops"], catch_exceptions=False)
    assert done.exit_code == 0 and "1 evaluation key" in done.output
    with connect(Home.from_env(home).db_path) as con:
        _same(con)
        assert con.execute("SELECT actor, action FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone() == (
            "ops", "rights.recount")
