"""``linernotes train`` with a user's own script, ``linernotes runs show``, and a refused start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from store.database import connect
from tests.roles import write_test_roles
from tests.training.ledger_fixture import RELEASE, build, seed_ledger

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_byo.py"


def _roles(home: Path) -> None:
    """The test users; the account running the tests is an admin, acting as ``--actor``."""
    write_test_roles(home)


@pytest.mark.slow
def test_byo_script_trains_through_the_linernotes_dataset_and_is_shown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = home / "linernotes.duckdb"
    seed_ledger(db, audio_dir=tmp_path / "audio")
    build(db, tmp_path / "shards", crops_per_track=4)
    _roles(home)
    runner = CliRunner()

    result = runner.invoke(app, ["train", "--release", RELEASE, "--script", str(EXAMPLE), "--epochs", "2",
                                 "--batch-size", "3", "--nproc", "2", "--run-id", "run_byo", "--home", str(home),
                                 "--actor", "ml@label", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["status"] == "completed" and record["script"] == str(EXAMPLE)
    assert len(record["script_sha256"]) == 64 and record["samples_consumed"] == 24
    assert [m["epoch"] for m in record["metrics"]] == [0, 1] and all("loss" in m for m in record["metrics"])
    card = json.loads((home / "runs" / "run_byo" / "model_card.json").read_text())
    assert card["model"] == f"script:{EXAMPLE}" and card["data"]["samples_consumed"] == 24

    shown = runner.invoke(app, ["runs", "show", "run_byo", "--home", str(home), "--json"])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.output)
    assert payload["run"]["checkpoint_sha256"] == record["checkpoint_sha256"]
    assert sum(h["samples_milli"] for h in payload["attribution"]) == 24_000

    human = runner.invoke(app, ["runs", "show", "run_byo", "--home", str(home)])
    assert human.exit_code == 0 and "Alpha Records" in human.output


def test_refused_start_exits_non_zero_with_the_reason_and_is_recorded(tmp_path: Path) -> None:
    home = tmp_path / "home"
    seed_ledger(home / "linernotes.duckdb", status="proposed")
    _roles(home)
    result = CliRunner().invoke(app, ["train", "--release", RELEASE, "--home", str(home), "--actor", "ml@label",
                                      "--run-id", "run_no"])
    assert result.exit_code == 3
    assert "release_not_approved" in result.output
    with connect(home / "linernotes.duckdb") as con:
        assert con.execute("SELECT run_id, reason_codes FROM training_refusals").fetchall() == [
            ("run_no", ["release_not_approved", "approval_missing", "manifest_missing"])]
    missing = CliRunner().invoke(app, ["runs", "show", "run_no", "--home", str(home)])
    assert missing.exit_code == 1
