"""`linernotes trace isrc|model|release`: song to model and back, from a ledger the pipeline wrote."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dagster_project.cli import app
from lineage.summary import pipeline_summary
from store.database import connect
from tests.lineage.pipeline import ABSENT, PURPOSE, REFUSED_RUN_ID, REJECTED_RELEASE_ID, RELEASE_ID, Pipeline

# Locations in a trace are the ledger's: relative to the data directory.
MANIFEST_REF = f"objects/shards/{RELEASE_ID}/manifest.json"


def _json(pipeline: Pipeline, *args: str) -> dict:
    result = CliRunner().invoke(app, ["trace", *args, "--home", str(pipeline.home), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_isrc_trace_reaches_fingerprint_decisions_releases_shards_and_models(pipeline: Pipeline) -> None:
    trace = _json(pipeline, "isrc", "GBLNR2600002")
    [track] = trace["tracks"]
    assert track["fp_prefix"].startswith("AQ") and track["fp_items_sha256"] and track["fp_seconds"] > 10
    assert {c["name"] for c in trace["contributors"]} == {"Ada Lark", "Ben Byrd"}
    assert {(d["purpose"], d["allowed"]) for d in trace["decisions"]} == {(PURPOSE, True), ("UseForDataMining", True)}
    assert [r["release_id"] for r in trace["releases"]] == [pipeline.release_id, REJECTED_RELEASE_ID]
    assert trace["releases"][0]["approved_by"] == "rita.rights"
    assert sum(s["rows"] for s in trace["shards"]) == 3  # crops_per_track
    assert all(s["manifest_uri"] == MANIFEST_REF for s in trace["shards"])
    [model] = trace["models"]
    assert (model["run_id"], model["samples"], model["run_samples"]) == (pipeline.run_id, 3, 6)
    assert model["checkpoint_sha256"] and model["fraction"] == 0.5
    assert trace["summary"] == {"decisions": 2, "releases": 2, "shard_rows": 3, "models": 1, "samples_seen": 3}


def test_denied_recordings_trace_to_their_reasons_and_no_model(pipeline: Pipeline) -> None:
    refused = _json(pipeline, "isrc", ABSENT)
    gen = [d for d in refused["decisions"] if d["purpose"] == PURPOSE]
    assert gen[0]["reason_codes"] == ["consent_not_allowed"] and not gen[0]["allowed"]
    assert refused["shards"] == [] and refused["models"] == []
    opted_out = _json(pipeline, "isrc", "GBLNR2600006")
    assert [(m["kind"], m["matched_ref"]) for m in opted_out["audio_matches"]] == [("optout", "OPT-LNR-1")]
    [match] = opted_out["audio_matches"]  # the evidence names its method, where and how well it matched
    assert match["method"] in ("chromaprint", "landmark") and match["score"] >= match["threshold"]
    assert match["span_s"] > 0 and match["offset_s"] is not None
    text = CliRunner().invoke(app, ["trace", "isrc", "GBLNR2600006", "--home", str(pipeline.home)]).output
    assert f"optout: OPT-LNR-1 by {match['method']}, score" in " ".join(text.split())
    assert {tuple(d["reason_codes"]) for d in opted_out["decisions"]} == {("optout_match",)}


def test_model_trace_lists_holders_shares_license_consent_and_exposure(pipeline: Pipeline) -> None:
    trace = _json(pipeline, "model", pipeline.run_id)
    assert trace["run"]["status"] == "completed" and trace["samples_consumed"] == 6
    by_isrc = {t["isrc"]: t for t in trace["tracks"]}
    assert set(by_isrc) == {"GBLNR2600001", "GBLNR2600002"}
    second = by_isrc["GBLNR2600002"]
    assert [(h["name"], h["share"]) for h in second["rights_holders"]] == [("Lineage Records", 60.0), ("Ben Byrd", 40.0)]
    assert second["license"] == "contract:LNR-2026-01" and second["allowed"] and second["samples"] == 3
    assert {c["consent_id"] for c in second["consents"]} == {"C-P-ada-lark", "C-P-ben-byrd"}
    assert all(c["ai_generative_training"] == "allowed" for c in second["consents"])
    holders = {h["name"]: h["samples_milli"] for h in trace["rights_holders"]}
    assert holders == {"Lineage Records": 4800, "Ben Byrd": 1200}
    assert trace["licenses"] == {"contract:LNR-2026-01": 2}


def test_release_trace_and_missing_keys(pipeline: Pipeline) -> None:
    rejected = _json(pipeline, "release", REJECTED_RELEASE_ID)
    assert rejected["release"]["status"] == "rejected" and rejected["shard_builds"] == []
    assert [r["run_id"] for r in rejected["training_refusals"]] == [REFUSED_RUN_ID]
    approved = _json(pipeline, "release", pipeline.release_id)
    assert [b["manifest_uri"] for b in approved["shard_builds"]] == [MANIFEST_REF]
    assert [r["run_id"] for r in approved["runs"]] == [pipeline.run_id]
    runner = CliRunner()
    for args, message in ((["isrc", "GBLNR2699999"], "not in the catalog"), (["model", "run-nope"], "does not exist"),
                          (["release", "rel-nope"], "does not exist"), (["isrc", "not-an-isrc"], "ISRC")):
        result = runner.invoke(app, ["trace", *args, "--home", str(pipeline.home)])
        assert result.exit_code == 1 and message in result.output, result.output
    text = runner.invoke(app, ["trace", "model", pipeline.run_id, "--home", str(pipeline.home)])
    assert text.exit_code == 0 and "Ben Byrd" in text.output and "(completed)" in text.output


def test_model_trace_top_keeps_totals(pipeline: Pipeline) -> None:
    top = _json(pipeline, "model", pipeline.run_id, "--top", "1")
    assert len(top["tracks"]) == 1 and top["tracks_total"] == 2 and top["samples_consumed"] == 6
    assert top["licenses"] == {"contract:LNR-2026-01": 2}


def test_pipeline_summary_counts_the_release_s_decisions_in_force(pipeline: Pipeline) -> None:
    with connect(pipeline.db_path, read_only=True) as con:
        summary = pipeline_summary(con, release_id=pipeline.release_id, run_id=pipeline.run_id)
        purpose, territory, on, policy = con.execute("SELECT purpose, territory, on_date, policy_hash FROM releases "
                                                     "WHERE release_id = ?", [pipeline.release_id]).fetchone()
        current = dict(con.execute("SELECT allowed, count(*) FROM current_decisions WHERE purpose = ? AND territory = ? "
                                   "AND on_date = ? AND policy_hash = ? GROUP BY allowed",
                                   [purpose, territory, on, policy]).fetchall())
        tracks = con.execute("SELECT count(*) FROM tracks").fetchone()[0]
    assert (summary["allowed"], summary["denied"]) == (current.get(True, 0), current.get(False, 0))
    assert summary["allowed"] + summary["denied"] == tracks and summary["denied"] > 0
    assert sum(summary["denied_by_reason"].values()) >= summary["denied"]
