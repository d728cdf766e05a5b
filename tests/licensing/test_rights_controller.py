"""A rights controller's (or licensor's) own refusal denies: a label's opt-out is honoured even where its deal
names the use. Silence from a rights controller changes nothing (its deal is its grant). Both evaluators agree."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from typer.testing import CliRunner

from dagster_project.cli import app
from licensing.evaluate import evaluate_catalog
from licensing.explain import explain
from licensing.policy import load_policy
from store.database import connect
from store.home import Home
from tests.licensing.helpers import add_track, consent, deal
from tests.roles import write_test_roles

runner = CliRunner()
A, B = "QZXXX2600001", "QZXXX2600002"
ON = date(2026, 3, 1)


def _run(home: Path, *args: str):  # type: ignore[no-untyped-def]
    who = [] if args[1] == "explain" else ["--actor", "rita"]
    return runner.invoke(app, [*args, "--home", str(home), *who], catch_exceptions=False)


def _import(home: Path, path: Path, parties: list[dict] = (), deals: list[dict] = (), consents: list[dict] = ()) -> None:
    path.write_text(json.dumps({"schema_version": 1, "parties": list(parties), "deals": list(deals),
                                "consents": list(consents)}), encoding="utf-8")
    r = _run(home, "rights", "import", str(path))
    assert r.exit_code == 0, r.output


def _decide(home: Path, isrc: str, purpose: str) -> list[str]:
    policy = load_policy()
    with connect(Home.from_env(home).db_path) as con:
        ref = explain(con, isrc, purpose=purpose, territory="DE", on_date=ON, policy=policy)
        evaluate_catalog(con, policy, purpose=purpose, territory="DE", on_date=ON, actor="rita")
        got = con.execute("SELECT d.decision_id, d.reason_codes FROM current_decisions JOIN decisions d "
                          "USING (decision_id) WHERE d.isrc = ? AND d.purpose = ? AND d.on_date = ? "
                          "AND d.policy_hash = ?", [isrc, purpose, ON, policy.content_hash]).fetchall()
    assert got == [(ref.decision_id, [c.value for c in ref.reason_codes])]
    return [c.value for c in ref.reason_codes]


def test_label_refusal_denies_and_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_test_roles(home)
    parties = [{"party_id": "P-label", "name": "Northern Label", "isni": None, "ipi": None},
               {"party_id": "P-ctl", "name": "Co-owner", "isni": None, "ipi": None},
               {"party_id": "P-a", "name": "Ada", "isni": None, "ipi": None}]
    _import(home, tmp_path / "r1.json", parties,
            [deal("D1", [A, B], shares=[("P-label", A, 50.0), ("P-ctl", A, 50.0), ("P-label", B, 100.0)])],
            [consent("C-a", "P-a")])
    with connect(Home.from_env(home).db_path) as con:
        add_track(con, 1, A, [("P-a", "MainArtist")])
        add_track(con, 2, B, [("P-a", "MainArtist")])
    # rights controllers that say nothing do not block
    assert _decide(home, A, "UseForTrainingGenerativeAI") == []
    # the co-owner of A refuses generative training for A only; the label refuses data mining everywhere
    _import(home, tmp_path / "r2.json", consents=[
        consent("C-ctl", "P-ctl", scope="recording", scope_ref=A, value="allowed",
                ai_generative_training="notAllowed"),
        consent("C-label", "P-label", value="allowed", data_mining="constrained")])
    assert _decide(home, A, "UseForTrainingGenerativeAI") == ["rights_controller_refused"]
    assert _decide(home, B, "UseForTrainingGenerativeAI") == []
    assert _decide(home, A, "UseForDataMining") == ["rights_controller_refused"]
    assert _decide(home, B, "UseForDataMining") == ["rights_controller_refused"]
    r = _run(home, "rights", "explain", A, "--purpose", "UseForTrainingGenerativeAI", "--territory", "DE",
             "--on", "2026-03-01", "--json")
    assert json.loads(r.output)[0]["consent_denials"] == [
        ("rights_controller_refused: Co-owner (P-ctl), a rights controller of the recording, refuses "
         "ai_generative_training")]


def test_label_refusal_re_decides_its_recordings_at_once(tmp_path: Path) -> None:
    """A licensor is not a contributor: its refusal still re-decides the deal's recordings in the same import."""
    home = tmp_path / "home"
    write_test_roles(home)
    today = datetime.now(UTC).date()
    parties = [{"party_id": "P-label", "name": "Northern Label", "isni": None, "ipi": None},
               {"party_id": "P-a", "name": "Ada", "isni": None, "ipi": None}]
    _import(home, tmp_path / "r1.json", parties,
            [deal("D1", [A, B], shares=[("P-label", A, 100.0), ("P-label", B, 100.0)])], [consent("C-a", "P-a")])
    policy = load_policy()
    purpose = "UseForTrainingGenerativeAI"
    with connect(Home.from_env(home).db_path) as con:
        add_track(con, 1, A, [("P-a", "MainArtist")])
        add_track(con, 2, B, [("P-a", "MainArtist")])
        evaluate_catalog(con, policy, purpose=purpose, territory="DE", on_date=today, actor="rita")

    def current() -> dict[str, bool]:
        with connect(Home.from_env(home).db_path) as con:
            return dict(con.execute("SELECT t.isrc, c.allowed FROM current_decisions c JOIN tracks t USING (track_id) "
                                    "WHERE c.purpose = ? AND c.on_date = ?", [purpose, today]).fetchall())

    assert current() == {A: True, B: True}
    _import(home, tmp_path / "r2.json", consents=[
        consent("C-label", "P-label", value="allowed", ai_generative_training="notAllowed",
                granted=f"{today}T00:00:00Z")])
    assert current() == {A: False, B: False}
