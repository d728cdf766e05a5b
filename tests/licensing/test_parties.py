"""One party per person or company: matching by ISNI / IPI / DPID, by name only when asked, and audited merges,
through the real CLI on a real ledger; denials name the party."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dagster_project.cli import app
from store.database import connect
from store.home import Home
from tests.licensing.ddex_samples import ISNI_A, ISNI_B, single
from tests.licensing.helpers import consent, deal
from tests.roles import write_test_roles

runner = CliRunner()
ISRC = "GBAYC1700598"
GEN = ("--purpose", "UseForTrainingGenerativeAI", "--territory", "DE", "--on", "2026-03-01")


def _run(home: Path, *args: str, actor: str = "rita"):  # type: ignore[no-untyped-def]
    who = [] if args[1] == "explain" else ["--actor", actor]
    return runner.invoke(app, [*args, "--home", str(home), *who], catch_exceptions=False)


def _flat(result) -> str:  # type: ignore[no-untyped-def]
    return " ".join(result.output.split())


def _rights(path: Path, parties: list[dict], deals: list[dict] = (), consents: list[dict] = ()) -> Path:
    path.write_text(json.dumps({"schema_version": 1, "parties": parties, "deals": list(deals),
                                "consents": list(consents)}), encoding="utf-8")
    return path


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    write_test_roles(home)
    return home


def _q(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    with connect(Home.from_env(home).db_path) as con:
        return con.execute(sql, params or []).fetchall()


def test_ddex_party_lands_on_the_party_with_the_same_isni_and_the_denial_names_it(tmp_path: Path) -> None:
    home = _home(tmp_path)
    label = {"party_id": "P-label", "name": "Label", "isni": None, "ipi": None}
    mattias = {"party_id": "P-mattias", "name": "Mattias Lind", "isni": ISNI_A, "ipi": None}
    r = _run(home, "rights", "import", str(_rights(tmp_path / "r1.json", [label, mattias], [deal("D1", [ISRC])])))
    assert r.exit_code == 0, r.output
    msg = single(tmp_path / "m1.xml", artist="MATTIAS LIND", artist_ids={"ISNI": ISNI_A})
    r = _run(home, "rights", "import-ddex", str(msg))
    assert r.exit_code == 0, r.output
    assert _q(home, "SELECT DISTINCT party_id FROM recording_contributors WHERE isrc = ?", [ISRC]) == [("P-mattias",)]
    assert _q(home, "SELECT count(*) FROM parties WHERE isni = ?", [ISNI_A]) == [(1,)]
    assert _q(home, "SELECT name FROM parties WHERE party_id = 'P-mattias'") == [("Mattias Lind",)]

    r = _run(home, "rights", "explain", ISRC, *GEN)
    assert r.exit_code == 0 and "DENIED" in r.output
    assert f"consent_missing: Mattias Lind (ISNI {ISNI_A}) has no ai_generative_training consent" in _flat(r)
    r = _run(home, "rights", "explain", ISRC, *GEN, "--json")
    assert json.loads(r.output)[0]["consent_denials"] == [
        f"consent_missing: Mattias Lind (ISNI {ISNI_A}) has no ai_generative_training consent"]

    # the consent given to the rights-file party counts for the contributor named in the DDEX message
    r = _run(home, "rights", "import", str(_rights(tmp_path / "r2.json", [], consents=[consent("C1", "P-mattias")])))
    assert r.exit_code == 0, r.output
    r = _run(home, "rights", "explain", ISRC, *GEN, "--json")
    assert json.loads(r.output)[0]["allowed"] is True


def test_ipi_and_dpid_match_a_recorded_party(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _run(home, "rights", "import", str(_rights(tmp_path / "r.json", [
        {"party_id": "P-writer", "name": "A Writer", "isni": None, "ipi": "00123456789"}])))
    msg = single(tmp_path / "m.xml", artist="Artist", artist_ids={"DPID": "PADPIDA2007050901U"},
                 extra_parties=[("PW", "Writer, A.", {"IpiNameNumber": "123456789"}, "Composer")])
    r = _run(home, "rights", "import-ddex", str(msg))
    assert r.exit_code == 0, r.output
    rows = _q(home, "SELECT party_id, role FROM recording_contributors WHERE isrc = ? ORDER BY role", [ISRC])
    assert ("P-writer", "Composer") in rows
    # the sender's DPID is the same as the artist's here: one party, not two
    assert _q(home, "SELECT count(*) FROM parties WHERE dpid = 'PADPIDA2007050901U'") == [(1,)]


def test_names_match_only_with_match_names(tmp_path: Path) -> None:
    found = []
    for flag in ([], ["--match-names"]):
        home = _home(tmp_path / f"h{len(flag)}")
        _run(home, "rights", "import", str(_rights(tmp_path / "r.json", [
            {"party_id": "P-mattias", "name": "Mattias  Lind", "isni": None, "ipi": None}])))
        r = _run(home, "rights", "import-ddex", *flag, str(single(tmp_path / "m.xml", artist="mattias lind",
                                                                   artist_ids={})))
        assert r.exit_code == 0, r.output
        found.append(_q(home, "SELECT DISTINCT party_id FROM recording_contributors WHERE isrc = ?", [ISRC]))
    assert found == [[("ddex:PADPIDA2007050901U:PRIOPY",)], [("P-mattias",)]]


def test_parties_merge_moves_everything_and_is_audited(tmp_path: Path) -> None:
    home = _home(tmp_path)
    label = {"party_id": "P-label", "name": "Label", "isni": None, "ipi": None}
    _run(home, "rights", "import", str(_rights(tmp_path / "r.json", [
        label, {"party_id": "P-mattias", "name": "Mattias Lind", "isni": None, "ipi": None},
        {"party_id": "P-other", "name": "Someone Else", "isni": ISNI_B, "ipi": None}],
        [deal("D1", [ISRC])], [consent("C1", "P-mattias")])))
    r = _run(home, "rights", "import-ddex", str(single(tmp_path / "m.xml", artist="M. Lind", artist_ids={"ISNI": ISNI_A})))
    assert r.exit_code == 0, r.output
    ddex_party = f"isni:{ISNI_A}"
    r = _run(home, "rights", "explain", ISRC, *GEN)
    assert f"consent_missing: M. Lind (ISNI {ISNI_A})" in _flat(r)

    r = _run(home, "rights", "parties", "merge", "P-mattias", ddex_party, "--evidence-ref", "x", actor="mina")
    assert r.exit_code == 3 and "role_missing" in r.output
    r = _run(home, "rights", "parties", "merge", "P-other", ddex_party, "--evidence-ref", "x")
    assert r.exit_code == 2 and "party_identifiers_conflict" in r.output
    r = _run(home, "rights", "parties", "merge", "P-mattias", ddex_party, "--evidence-ref", "passport-check-17",
             "-m", "same person")
    assert r.exit_code == 0, r.output
    assert _q(home, "SELECT DISTINCT party_id FROM recording_contributors WHERE isrc = ?", [ISRC]) == [("P-mattias",)]
    assert _q(home, "SELECT isni FROM parties WHERE party_id = 'P-mattias'") == [(ISNI_A,)]
    assert _q(home, "SELECT count(*) FROM parties WHERE party_id = ?", [ddex_party]) == [(0,)]
    assert _q(home, "SELECT actor, json_extract_string(payload, '$.evidence_ref') FROM audit_log "
                    "WHERE action = 'rights.parties.merge'") == [("rita", "passport-check-17")]
    r = _run(home, "rights", "explain", ISRC, *GEN, "--json")
    assert json.loads(r.output)[0]["allowed"] is True
    # a later message naming the merged party lands on the survivor
    r = _run(home, "rights", "import-ddex", str(single(tmp_path / "m2.xml", message_id="W9", isrc="GBAYC1700597",
                                                         artist="M. Lind", artist_ids={"ISNI": ISNI_A})))
    assert r.exit_code == 0, r.output
    assert _q(home, "SELECT DISTINCT party_id FROM recording_contributors WHERE isrc = 'GBAYC1700597'") == [
        ("P-mattias",)]


def test_a_rights_file_party_lands_on_the_ddex_party_with_its_isni(tmp_path: Path) -> None:
    home = _home(tmp_path)
    r = _run(home, "rights", "import-ddex", str(single(tmp_path / "m.xml", artist="Mattias", artist_ids={"ISNI": ISNI_A})))
    assert r.exit_code == 0, r.output
    later = {"party_id": "P-mattias", "name": "Mattias Lind", "isni": ISNI_A, "ipi": None}
    r = _run(home, "rights", "import", str(_rights(tmp_path / "r.json", [later], consents=[consent("C1", "P-mattias")])),
             "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["consents"] == 1
    assert _q(home, "SELECT party_id FROM consents") == [(f"isni:{ISNI_A}",)]
    assert _q(home, "SELECT count(*) FROM parties WHERE party_id = 'P-mattias'") == [(0,)]
    r = _run(home, "rights", "explain", ISRC, *GEN, "--json")
    assert "consent_missing" not in json.loads(r.output)[0]["reason_codes"]
