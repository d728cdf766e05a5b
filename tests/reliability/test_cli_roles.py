"""Every mutating command outside ``rights``/``release`` names its actor and is refused, audited, outside its role."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from store.audit import verify_chain
from store.database import connect
from tests.shards.ledger import make_release

ROLES = "users:\n  mira.ml: [ml_engineer]\n  rita.rights: [rights_team]\n  otto.audit: [auditor]\n  root: [admin]\n"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("LINERNOTES_ROLES", raising=False)
    monkeypatch.delenv("LINERNOTES_ACTOR", raising=False)
    root = tmp_path / "home"
    make_release(root, seconds=[5.0], db_name="linernotes.duckdb")
    (root / "roles.yaml").write_text(ROLES, encoding="utf-8")
    return root


def _text(result) -> str:  # type: ignore[no-untyped-def]
    return " ".join(result.output.split())  # rich wraps long lines


def _refusals(home: Path) -> list[tuple[str, str, str, str]]:
    with connect(home / "linernotes.duckdb") as con:
        assert verify_chain(con).ok
        return [(r[0], r[1], r[2], r[3]) for r in con.execute(
            "SELECT actor, action, subject, json_extract_string(payload, '$.code') FROM audit_log "
            "WHERE action LIKE '%.refused' ORDER BY seq").fetchall()]


COMMANDS = {
    "shards build": (["shards", "build", "rel_test"], "shards.build", "rel_test"),
    "train": (["train", "--release", "rel_test", "--run-id", "run_x", "--nproc", "1"], "train.start", "rel_test"),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("actor", ["rita.rights", "otto.audit", "stranger"])
def test_actor_outside_the_role_is_refused_with_exit_3_and_an_audit_row(home: Path, name: str, actor: str) -> None:
    argv, action, subject = COMMANDS[name]
    result = CliRunner().invoke(app, [*argv, "--home", str(home), "--actor", actor])
    assert result.exit_code == 3, result.output
    assert "refused (role_missing)" in _text(result) and actor in _text(result) and "ml_engineer" in _text(result)
    assert _refusals(home) == [(actor, f"{action}.refused", subject, "role_missing")]
    with connect(home / "linernotes.duckdb") as con:
        assert con.execute("SELECT count(*) FROM shard_builds").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM training_runs").fetchone()[0] == 0
    assert not (home / "objects" / "shards" / "rel_test").exists()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_actor_must_be_named(home: Path, name: str) -> None:
    argv, _, _ = COMMANDS[name]
    result = CliRunner().invoke(app, [*argv, "--home", str(home)])
    assert result.exit_code == 2
    assert "--actor or LINERNOTES_ACTOR" in _text(result)
    assert _refusals(home) == []


def test_actor_from_the_environment_and_the_roles_file_from_linernotes_roles(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "idp" / "roles.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("users:\n  svc-dagster: [ml_engineer]\n", encoding="utf-8")
    monkeypatch.setenv("LINERNOTES_ROLES", str(elsewhere))
    monkeypatch.setenv("LINERNOTES_ACTOR", "mira.ml")  # an ml_engineer in <home>/roles.yaml, unknown to the IdP file
    refused = CliRunner().invoke(app, ["shards", "build", "rel_test", "--home", str(home)])
    assert refused.exit_code == 3 and str(elsewhere) in _text(refused)
    monkeypatch.setenv("LINERNOTES_ACTOR", "svc-dagster")
    built = CliRunner().invoke(app, ["shards", "build", "rel_test", "--home", str(home), "--json"])
    assert built.exit_code == 0, built.output
    assert _refusals(home) == [("mira.ml", "shards.build.refused", "rel_test", "role_missing")]
    with connect(home / "linernotes.duckdb") as con:
        assert con.execute("SELECT built_by FROM shard_builds").fetchall() == [("svc-dagster",)]


def test_ml_engineer_and_admin_may_build(home: Path) -> None:
    runner = CliRunner()
    for actor in ("mira.ml", "root"):
        out = home.parent / f"out-{actor}"
        result = runner.invoke(app, ["shards", "build", "rel_test", "--output", str(out), "--home", str(home),
                                     "--actor", actor, "--json"])
        assert result.exit_code == 0, result.output
    assert _refusals(home) == []


def test_missing_or_broken_roles_file_refuses_everything(home: Path) -> None:
    (home / "roles.yaml").unlink()
    result = CliRunner().invoke(app, ["shards", "build", "rel_test", "--home", str(home), "--actor", "mira.ml"])
    assert result.exit_code == 3 and "roles_unavailable" in _text(result)
    (home / "roles.yaml").write_text("users: [this, is, not, a, mapping]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "--release", "rel_test", "--home", str(home), "--actor", "mira.ml"])
    assert result.exit_code == 3 and "invalid roles file" in _text(result)
    assert [r[3] for r in _refusals(home)] == ["roles_unavailable", "roles_unavailable"]


def test_release_id_cannot_steer_the_default_output_outside_the_data_directory(home: Path) -> None:
    result = CliRunner().invoke(app, ["shards", "build", "../../escaped", "--home", str(home), "--actor", "mira.ml"])
    assert result.exit_code == 2 and "release id" in _text(result)
    assert not (home.parent / "escaped").exists() and not (home / "escaped").exists()
