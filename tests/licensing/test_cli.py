"""The rights and release commands, end to end through the real CLI app and a real data directory."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dagster_project.cli import app
from store.database import connect
from store.home import Home
from store.roles import os_user
from tests.licensing.conftest import DDEX
from tests.licensing.helpers import add_track, consent, deal, write_rights

runner = CliRunner()


def _run(home: Path, *args: str, actor: str | None = None):  # type: ignore[no-untyped-def]
    argv = [*args, "--home", str(home)] + (["--actor", actor] if actor else [])
    return runner.invoke(app, argv, catch_exceptions=False)


def test_import_explain_propose_approve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rights = write_rights(tmp_path / "rights.json", ["P-label", "P-a"], [deal("D1", ["QZXXX2600001"])],
                          [consent("C1", "P-a")])
    home.mkdir()
    (home / "roles.yaml").write_text(f"users:\n  mina: [ml_engineer]\n  ravi: [rights_team]\n  ops: [rights_team]\n"
                                     f"  admin:\n    roles: [admin]\n    os_users: [{os_user()}]\n")
    r = _run(home, "rights", "import", str(rights), actor="mina")
    assert r.exit_code == 3 and "role_missing" in r.output
    r = _run(home, "rights", "import", str(rights), actor="ops")
    assert r.exit_code == 0 and "imported" in r.output
    r = _run(home, "rights", "import-ddex", str(DDEX / "ern43" / "1 Audio.xml"), "--validate", actor="ops")
    assert r.exit_code == 0 and "deals=3" in r.output
    with connect(Home.from_env(home).db_path) as con:
        add_track(con, 1, "QZXXX2600001", [("P-a", "MainArtist")])
    r = _run(home, "rights", "explain", "JPTO09404900", "--purpose", "UseForTrainingGenerativeAI",
             "--territory", "JP", "--on", "2026-03-01")
    assert r.exit_code == 0 and "DENIED" in r.output and "deal_use_not_licensed" in r.output
    r = _run(home, "rights", "explain", "QZXXX2600001", "--purpose", "UseForTrainingGenerativeAI",
             "--territory", "JP", "--on", "2026-03-01", "--json")
    assert json.loads(r.output)[0]["allowed"] is True

    r = _run(home, "release", "propose", "--purpose", "UseForTrainingGenerativeAI", "--territory", "DE",
             "--on", "2026-03-01", "--id", "rel-1", actor="mina")
    assert r.exit_code == 0 and "1 tracks" in r.output
    r = _run(home, "release", "approve", "rel-1", "-m", "ok", actor="mina")
    assert r.exit_code == 3 and "role_missing" in r.output
    r = _run(home, "release", "approve", "rel-1", "-m", "checked contract-1", actor="ravi")
    assert r.exit_code == 0 and "approved" in r.output
    r = _run(home, "release", "show", "rel-1", "--json")
    shown = json.loads(r.output)
    assert shown["release"]["status"] == "approved" and shown["release"]["approvals"][0]["actor"] == "ravi"
    r = _run(home, "release", "list")
    assert "rel-1" in r.output and "approved" in r.output


def test_rejected_file_exits_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "evil.xml"
    bad.write_bytes(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "roles.yaml").write_text(f"users:\n  ops:\n    roles: [rights_team]\n    os_users: [{os_user()}]\n")
    r = _run(tmp_path / "home", "rights", "import-ddex", str(bad), actor="ops")
    assert r.exit_code == 1 and "xml_dtd_forbidden" in r.output


def test_unknown_purpose_and_non_iso_territory_are_errors_not_denials(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "roles.yaml").write_text(f"users:\n  mina:\n    roles: [ml_engineer]\n    os_users: [{os_user()}]\n")
    r = _run(home, "rights", "explain", "QZXXX2600001", "--purpose", "UseForKaraoke", "--territory", "GB")
    assert r.exit_code == 2 and "unknown purpose 'UseForKaraoke'" in r.output
    r = _run(home, "rights", "explain", "QZXXX2600001", "--purpose", "UseForTrainingGenerativeAI", "--territory", "UK")
    assert r.exit_code == 2 and "GB" in r.output
    for territory in ("UK", "XX", "EU"):
        r = _run(home, "release", "propose", "--purpose", "UseForTrainingGenerativeAI", "--territory", territory)
        assert r.exit_code == 2 and "ISO 3166-1" in r.output, r.output
    r = _run(home, "release", "propose", "--purpose", "Karaoke", "--territory", "GB")
    assert r.exit_code == 2 and "unknown purpose" in r.output
    with connect(Home.from_env(home).db_path) as con:
        assert con.execute("SELECT count(*) FROM releases").fetchone() == (0,)
