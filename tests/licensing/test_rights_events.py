"""Changes to rights are events, not overwrites: a re-import never silently loosens a later restriction."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from licensing.evaluate import catalog_decisions, evaluate_catalog_frame
from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.records import Supersession, history
from licensing.revocation import expire_deal
from lineage.integrity import verify_ledger
from store.database import connect
from store.home import Home
from store.roles import RoleRefused
from tests.licensing.helpers import add_track, consent, deal, write_rights
from tests.roles import roles_yaml

GEN = "UseForTrainingGenerativeAI"
ISRC = "QZXXX2600001"
TODAY = datetime.now(UTC).date()


def _deal_file(tmp_path: Path, name: str, **terms: object) -> Path:
    return write_rights(tmp_path / name, ["P-label", "P-a"], [deal("D1", [ISRC], **terms)], [consent("C-a", "P-a")])


def _decision(con, territory: str = "DE", on: date = TODAY) -> tuple[bool, list[str]]:  # type: ignore[no-untyped-def]
    evaluate_catalog_frame(con, load_policy(), purpose=GEN, territory=territory, on_date=on)
    [row] = catalog_decisions(con).values()
    return row["allowed"], list(row["reason_codes"])


def test_a_reimport_after_an_early_end_is_a_conflict_naming_the_termination(con, tmp_path: Path) -> None:
    import_rights_file(con, _deal_file(tmp_path, "v1.json", valid_to="2027-12-31"), actor="rita")
    add_track(con, 1, ISRC, [("P-a", "MainArtist")])
    end = TODAY - timedelta(days=1)
    expire_deal(con, "D1", valid_to=end, evidence_ref="termination.pdf", actor="rita")
    [ended] = [e for e in history(con, "D1") if e["kind"] == "deal.expired"]
    # the same terms again, in a file that differs (a re-export, say): not skipped as already imported
    again = _deal_file(tmp_path, "v1-again.json", valid_to="2027-12-31")
    again.write_text(again.read_text() + "\n")
    report = import_rights_file(con, again, actor="rita")
    [conflict] = report.errors
    assert conflict.reason_code == "rights_conflict" and ended["event_id"] in conflict.message
    assert "valid_to" in conflict.message and "--supersede" in conflict.message
    assert con.execute("SELECT valid_to FROM deals WHERE deal_id = 'D1'").fetchone() == (end,)
    assert _decision(con) == (False, ["deal_expired"])
    payload = json.loads(con.execute("SELECT payload FROM audit_log WHERE action = 'rights.import' "
                                     "ORDER BY seq DESC LIMIT 1").fetchone()[0])
    assert payload["conflicts"] == 1 and payload["deals"] == []
    # a tightening amendment applies without ceremony
    shorter = _deal_file(tmp_path, "shorter.json", valid_to=str(end - timedelta(days=30)))
    assert import_rights_file(con, shorter, actor="rita").errors == ()
    assert con.execute("SELECT valid_to FROM deals WHERE deal_id = 'D1'").fetchone() == (end - timedelta(days=30),)
    assert verify_ledger(con).ok


def test_superseding_a_termination_needs_the_rights_team_and_evidence_and_is_on_the_record(con, tmp_path: Path) -> None:
    import_rights_file(con, _deal_file(tmp_path, "v1.json", valid_to="2027-12-31"), actor="rita")
    add_track(con, 1, ISRC, [("P-a", "MainArtist")])
    expire_deal(con, "D1", valid_to=TODAY - timedelta(days=1), evidence_ref="termination.pdf", actor="rita")
    [ended] = [e["event_id"] for e in history(con, ISRC) if e["kind"] == "deal.expired"]
    renewal = _deal_file(tmp_path, "renewal.json", valid_to="2028-12-31")
    override = Supersession(frozenset({ended}), "s3://contracts/renewal-2026-12.pdf")
    with pytest.raises(RoleRefused):
        import_rights_file(con, renewal, actor="pipeline", supersede=override)
    assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'rights.supersede.refused'").fetchone() == (1,)
    report = import_rights_file(con, renewal, actor="rita", supersede=override)
    assert report.errors == () and report.deals == 1
    assert con.execute("SELECT valid_to FROM deals WHERE deal_id = 'D1'").fetchone() == (date(2028, 12, 31),)
    assert _decision(con) == (True, [])
    kinds = [(e["kind"], e["supersedes"], e["evidence_ref"]) for e in history(con, "D1")]
    assert kinds == [("deal.recorded", [], None), ("deal.expired", [], "termination.pdf"),
                     ("deal.superseded", [ended], "s3://contracts/renewal-2026-12.pdf")]
    payload = json.loads(con.execute("SELECT payload FROM audit_log WHERE action = 'rights.import' "
                                     "ORDER BY seq DESC LIMIT 1").fetchone()[0])
    assert payload["supersede"] == {"events": [ended], "evidence_ref": "s3://contracts/renewal-2026-12.pdf"}
    # nothing earlier was deleted: every version of the deal is kept
    assert [r[0] for r in con.execute("SELECT valid_to FROM deals__history WHERE deal_id = 'D1' "
                                      "ORDER BY superseded_seq").fetchall()] == [date(2027, 12, 31), TODAY - timedelta(days=1)]


def test_an_excluded_territory_cannot_be_lifted_by_a_reimport(con, tmp_path: Path) -> None:
    import_rights_file(con, _deal_file(tmp_path, "v1.json", exclude=["GB"]), actor="rita")
    add_track(con, 1, ISRC, [("P-a", "MainArtist")])
    assert _decision(con, "GB") == (False, ["deal_territory_not_covered"]) and _decision(con, "DE") == (True, [])
    lifted = import_rights_file(con, _deal_file(tmp_path, "lifted.json"), actor="rita")
    [conflict] = lifted.errors
    assert conflict.reason_code == "rights_conflict" and "territories.exclude" in conflict.message
    assert _decision(con, "GB")[0] is False
    # excluding one more applies; lifting that one again conflicts with the amendment that added it
    assert import_rights_file(con, _deal_file(tmp_path, "more.json", exclude=["GB", "FR"]), actor="rita").errors == ()
    assert _decision(con, "FR") == (False, ["deal_territory_not_covered"])
    [amended] = [e["event_id"] for e in history(con, "D1") if e["kind"] == "deal.amended"]
    old = _deal_file(tmp_path, "back.json", exclude=["GB"])
    assert import_rights_file(con, old, actor="rita").already_imported  # the very first file: nothing changes
    old.write_text(old.read_text() + "\n")  # the same terms in another file
    back = import_rights_file(con, old, actor="rita")
    assert back.errors[0].reason_code == "rights_conflict" and amended in back.errors[0].message


@pytest.mark.parametrize("code,hint", [("UK", "GB"), ("XX", "no country"), ("EU", "European Union")])
def test_a_non_iso_territory_in_a_deal_is_rejected_by_name(con, tmp_path: Path, code: str, hint: str) -> None:
    report = import_rights_file(con, _deal_file(tmp_path, "bad.json", exclude=[code]), actor="rita")
    [error] = report.errors
    assert error.reason_code == "invalid_territory" and hint in error.message and "D1" in error.source_ref
    assert con.execute("SELECT count(*) FROM deals").fetchone() == (0,)


def test_a_refused_consent_is_a_restriction_too(con, tmp_path: Path) -> None:
    refused = write_rights(tmp_path / "refused.json", ["P-a"], [], [consent("C-a", "P-a", value="notAllowed")])
    import_rights_file(con, refused, actor="rita")
    flipped = write_rights(tmp_path / "flipped.json", ["P-a"], [], [consent("C-a", "P-a")])
    [conflict] = import_rights_file(con, flipped, actor="rita").errors
    assert conflict.reason_code == "rights_conflict" and "ai_generative_training" in conflict.message
    assert con.execute("SELECT ai_generative_training FROM consents").fetchone() == ("notAllowed",)


def test_rights_history_and_conflicts_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "roles.yaml").write_text(roles_yaml())
    runner = CliRunner()

    def run(*args: str) -> object:
        return runner.invoke(app, [*args, "--home", str(home)], catch_exceptions=False)

    assert run("rights", "import", str(_deal_file(tmp_path, "v1.json", valid_to="2027-12-31")),
               "--actor", "rita").exit_code == 0  # type: ignore[attr-defined]
    assert run("rights", "expire-deal", "D1", "--valid-to", str(TODAY), "--evidence-ref", "end.pdf",
               "--actor", "rita").exit_code == 0  # type: ignore[attr-defined]
    again = _deal_file(tmp_path, "v1-again.json", valid_to="2027-12-31")
    again.write_text(again.read_text() + " ")
    r = run("rights", "import", str(again), "--actor", "rita")
    assert r.exit_code == 1 and "rights_conflict" in r.output  # type: ignore[attr-defined]
    with connect(Home.from_env(home).db_path, read_only=True) as con:
        [ended] = [e["event_id"] for e in history(con, "D1") if e["kind"] == "deal.expired"]
    r = run("rights", "import", str(again), "--supersede", ended, "--actor", "rita")
    assert r.exit_code == 2 and "--evidence-ref" in r.output  # type: ignore[attr-defined]
    r = run("rights", "import", str(again), "--supersede", ended, "--evidence-ref", "renewal.pdf", "--actor", "rita")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    r = run("rights", "history", ISRC, "--json")
    events = json.loads(r.output)  # type: ignore[attr-defined]
    assert [e["kind"] for e in events] == ["deal.recorded", "deal.expired", "deal.superseded"]
    r = run("rights", "history", "P-a", "--json")
    assert [e["kind"] for e in json.loads(r.output)] == ["party.recorded", "consent.recorded"]  # type: ignore[attr-defined]
    r = run("rights", "history", "D1")
    assert r.exit_code == 0 and "rights history of D1" in r.output  # type: ignore[attr-defined]
    r = run("rights", "history", "nothing-here")
    assert r.exit_code == 1  # type: ignore[attr-defined]
