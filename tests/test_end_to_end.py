"""The whole pipeline through Dagster on a few real tracks of the demo catalog, twice."""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from dagster_project.demo import DemoOutcome
from store.audit import verify_chain
from store.database import connect
from store.home import Home
from store.paths import ledger_path

pytestmark = pytest.mark.slow

DOWNLOAD_CACHE = Path(os.environ.get("LINERNOTES_TEST_DOWNLOADS", Path.home() / ".cache" / "linernotes" / "downloads"))


@dataclass
class DemoRun:
    home: Home
    outcome: DemoOutcome
    second: DemoOutcome

    @property
    def db_path(self) -> Path:
        return self.home.db_path

    @property
    def root(self) -> Path:
        return self.home.root


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    from dagster_project.demo import run_demo

    home = Home.from_env(tmp_path_factory.mktemp("home")).ensure()
    DOWNLOAD_CACHE.mkdir(parents=True, exist_ok=True)
    home.downloads.rmdir()
    home.downloads.symlink_to(DOWNLOAD_CACHE)
    saved = {k: os.environ.get(k) for k in ("LINERNOTES_HOME", "DAGSTER_HOME")}
    outcome = run_demo(home, tracks_per_package=3, epochs=1, say=lambda _: None)
    second = run_demo(home, tracks_per_package=3, epochs=1, say=lambda _: None)
    yield DemoRun(home, outcome, second)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_demo_denies_for_each_story_reason_and_allows_the_rest(demo_home: DemoRun) -> None:
    with connect(demo_home.db_path, read_only=True) as con:
        decided = {isrc: (allowed, codes) for isrc, allowed, codes in con.execute(
            "SELECT isrc, allowed, reason_codes FROM decisions WHERE purpose = 'UseForTrainingGenerativeAI'"
        ).fetchall()}
        titles = dict(con.execute("SELECT isrc, title FROM tracks").fetchall())
        untagged = [i for (i,) in con.execute("SELECT isrc FROM tracks WHERE license_tag IS NULL").fetchall()]
        refusing = [i for (i,) in con.execute(
            "SELECT t.isrc FROM tracks t WHERE list_contains(t.artists, 'Gianmarco Leone')").fetchall()]
    by_title = {titles[i]: v for i, v in decided.items()}
    assert by_title["Awakening"] == (False, ["optout_match"])
    assert untagged and all(decided[i] == (False, ["no_deal"]) for i in untagged)
    assert refusing and all(not decided[i][0] and "consent_not_allowed" in decided[i][1] for i in refusing)
    allowed = [i for i, (ok, _) in decided.items() if ok]
    assert len(allowed) >= 2


def test_release_shards_and_model_contain_only_allowed_tracks(demo_home: DemoRun) -> None:
    outcome = demo_home.outcome
    with connect(demo_home.db_path, read_only=True) as con:
        status, approver = con.execute(
            "SELECT r.status, a.actor FROM releases r JOIN approvals a USING (release_id) WHERE release_id = ?",
            [outcome.release_id]).fetchone()
        allowed = {i for (i,) in con.execute(
            "SELECT isrc FROM decisions WHERE allowed AND purpose = 'UseForTrainingGenerativeAI'").fetchall()}
        manifest_uri = con.execute("SELECT manifest_uri FROM shard_builds WHERE release_id = ?",
                                   [outcome.release_id]).fetchone()[0]
        run = con.execute("SELECT status, samples_consumed, checkpoint_sha256 FROM training_runs WHERE run_id = ?",
                          [outcome.run_id]).fetchone()
        exposed = {i for (i,) in con.execute("SELECT isrc FROM training_exposure WHERE run_id = ?",
                                             [outcome.run_id]).fetchall()}
        chain = verify_chain(con)
        shard_isrcs = {i for (i,) in con.execute(
            f"SELECT DISTINCT isrc FROM read_parquet('{Path(ledger_path(con, manifest_uri)).parent}/*.parquet')"
        ).fetchall()}
    assert (status, approver) == ("approved", "rita.rights")
    assert shard_isrcs and shard_isrcs <= allowed
    assert run[0] == "completed" and run[1] > 0 and len(run[2]) == 64
    assert exposed and exposed <= allowed
    assert chain.ok


def test_second_run_redoes_nothing(demo_home: DemoRun) -> None:
    second = demo_home.second
    assert second.release_id == demo_home.outcome.release_id
    assert second.steps and all(state == "up to date" for _, state in second.steps)


def test_trace_commands_link_song_and_model(demo_home: DemoRun) -> None:
    runner = CliRunner()
    run_id = demo_home.outcome.run_id
    model = runner.invoke(app, ["trace", "model", run_id, "--home", str(demo_home.root), "--json"])
    assert model.exit_code == 0, model.output
    traced = json.loads(model.output)
    assert traced["samples_consumed"] > 0 and traced["rights_holders"]
    isrc = traced["tracks"][0]["isrc"]
    song = runner.invoke(app, ["trace", "isrc", isrc, "--home", str(demo_home.root), "--json"])
    assert song.exit_code == 0, song.output
    assert run_id in {m["run_id"] for m in json.loads(song.output)["models"]}
    missing = runner.invoke(app, ["trace", "isrc", "ZZZZZ9999999", "--home", str(demo_home.root)])
    assert missing.exit_code == 1 and "not in the catalog" in missing.output
