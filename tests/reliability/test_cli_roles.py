"""Shards and training from the command line: the actor is the OS account's user (or, for an admin, whom it
names), checked against the roles inside the domain command; a refusal exits 3, is audited, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from store.audit import verify_chain
from store.database import connect
from store.roles import os_user
from tests.shards.ledger import make_release

ME = os_user()
ROLES = ("users:\n  mira.ml: [ml_engineer]\n  rita.rights: [rights_team]\n  otto.audit: [auditor]\n"
         f"  ops:\n    roles: [admin]\n    os_users: [{ME}]\n")


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


def _nothing_built(home: Path) -> None:
    with connect(home / "linernotes.duckdb") as con:
        assert con.execute("SELECT count(*) FROM shard_builds").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM training_runs").fetchone()[0] == 0
    assert not (home / "objects" / "shards" / "rel_test").exists()


COMMANDS = {
    "shards build": (["shards", "build", "rel_test"], "shards.build", "rel_test"),
    "train": (["train", "--release", "rel_test", "--run-id", "run_x", "--nproc", "1"], "train.start", "run_x"),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("actor,code", [("rita.rights", "role_missing"), ("otto.audit", "role_missing"),
                                        ("stranger", "unknown_user")])
def test_an_actor_outside_the_role_is_refused_with_exit_3_and_an_audit_row(home: Path, name: str, actor: str,
                                                                          code: str) -> None:
    argv, action, subject = COMMANDS[name]
    result = CliRunner().invoke(app, [*argv, "--home", str(home), "--actor", actor])
    assert result.exit_code == 3, result.output
    assert f"refused ({code})" in _text(result) and actor in _text(result)
    assert _refusals(home) == [(actor, f"{action}.refused", subject, code)]
    _nothing_built(home)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_without_actor_the_command_acts_as_the_accounts_own_user(home: Path, name: str) -> None:
    (home / "roles.yaml").write_text(f"users:\n  rita.rights:\n    roles: [rights_team]\n    os_users: [{ME}]\n",
                                     encoding="utf-8")
    argv, action, subject = COMMANDS[name]
    result = CliRunner().invoke(app, [*argv, "--home", str(home)])
    assert result.exit_code == 3 and "refused (role_missing)" in _text(result)
    assert _refusals(home) == [("rita.rights", f"{action}.refused", subject, "role_missing")]
    result = CliRunner().invoke(app, [*argv, "--home", str(home), "--actor", "mira.ml"])  # not an admin
    assert result.exit_code == 3 and "impersonation_refused" in _text(result)
    _nothing_built(home)


def test_the_roles_file_from_linernotes_roles_and_the_actor_from_the_environment(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "idp" / "roles.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(f"users:\n  svc-build: [ml_engineer]\n  ops:\n    roles: [admin]\n    os_users: [{ME}]\n",
                         encoding="utf-8")
    monkeypatch.setenv("LINERNOTES_ROLES", str(elsewhere))
    monkeypatch.setenv("LINERNOTES_ACTOR", "mira.ml")  # an ml_engineer in <home>/roles.yaml, unknown to the IdP file
    refused = CliRunner().invoke(app, ["shards", "build", "rel_test", "--home", str(home)])
    assert refused.exit_code == 3 and "unknown_user" in _text(refused) and str(elsewhere) in _text(refused)
    monkeypatch.setenv("LINERNOTES_ACTOR", "svc-build")
    built = CliRunner().invoke(app, ["shards", "build", "rel_test", "--home", str(home), "--json"])
    assert built.exit_code == 0, built.output
    assert _refusals(home) == [("mira.ml", "shards.build.refused", "rel_test", "unknown_user")]
    with connect(home / "linernotes.duckdb") as con:
        assert con.execute("SELECT built_by FROM shard_builds").fetchall() == [("svc-build",)]
        principal = con.execute("SELECT json_extract(payload, '$.principal') FROM audit_log "
                                "WHERE action = 'shards.build'").fetchone()[0]
        assert principal == f'{{"method":"admin_as","name":"svc-build","via":"ops (os:{ME})"}}'


def test_an_ml_engineer_and_an_admin_may_build(home: Path) -> None:
    runner = CliRunner()
    for actor in ("mira.ml", "ops"):
        out = home.parent / f"out-{actor}"
        result = runner.invoke(app, ["shards", "build", "rel_test", "--output", str(out), "--home", str(home),
                                     "--actor", actor, "--json"])
        assert result.exit_code == 0, result.output
    assert _refusals(home) == []


def test_a_missing_or_broken_roles_file_refuses_everything(home: Path) -> None:
    (home / "roles.yaml").unlink()
    result = CliRunner().invoke(app, ["shards", "build", "rel_test", "--home", str(home), "--actor", "mira.ml"])
    assert result.exit_code == 3 and "roles_unavailable" in _text(result)
    (home / "roles.yaml").write_text("users: [this, is, not, a, mapping]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "--release", "rel_test", "--home", str(home), "--actor", "mira.ml"])
    assert result.exit_code == 3 and "invalid roles file" in _text(result)
    assert [(r[1], r[3]) for r in _refusals(home)] == [("identity.refused", "roles_unavailable")] * 2
    _nothing_built(home)


def test_release_id_cannot_steer_the_default_output_outside_the_data_directory(home: Path) -> None:
    result = CliRunner().invoke(app, ["shards", "build", "../../escaped", "--home", str(home), "--actor", "mira.ml"])
    assert result.exit_code == 2 and "release id" in _text(result)
    assert not (home.parent / "escaped").exists() and not (home / "escaped").exists()
