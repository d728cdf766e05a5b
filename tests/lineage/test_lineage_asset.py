"""The model_lineage asset: a real Dagster materialization whose metadata links to the records."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb

from assets.lineage import model_lineage
from dagster_project.resources import LedgerResource
from tests.lineage.pipeline import Pipeline


def _materialize(home: Path, run_id: str) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("training_runs", [run_id])
    return dg.materialize([model_lineage], partition_key=run_id, instance=instance,
                          resources={"ledger": LedgerResource(home=str(home))}, raise_on_error=False)


def test_materialization_links_to_run_manifest_and_audit_entry(pipeline: Pipeline, ledger_copy: Path) -> None:
    home = ledger_copy.parent
    result = _materialize(home, pipeline.run_id)
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    con = duckdb.connect(str(ledger_copy), read_only=True)
    seq, entry_hash = con.execute("SELECT seq, entry_hash FROM audit_log WHERE subject = ? ORDER BY seq DESC LIMIT 1",
                                  [pipeline.run_id]).fetchone()
    con.close()
    assert (meta["audit_seq"], meta["audit_entry_hash"]) == (seq, entry_hash)
    assert meta["manifest_uri"] == f"objects/shards/{pipeline.release_id}/manifest.json"
    assert meta["release_id"] == pipeline.release_id
    assert (meta["tracks"], meta["samples_consumed"], meta["integrity_findings"]) == (2, 6, 0)
    run_dir = home / "runs" / pipeline.run_id
    assert json.loads((run_dir / "lineage.json").read_text())["run"]["run_id"] == pipeline.run_id
    assert (run_dir / "ai_act_summary.md").is_file() and len(list((run_dir / "openlineage").glob("*.json"))) == 12


def test_materialization_fails_when_the_model_checkpoint_changed(pipeline: Pipeline, ledger_copy: Path) -> None:
    checkpoint = ledger_copy.parent / "runs" / pipeline.run_id / "model.pt"
    checkpoint.write_bytes(checkpoint.read_bytes() + b"tampered")
    result = _materialize(ledger_copy.parent, pipeline.run_id)
    assert not result.success
    assert any("checkpoint" in str(e.event_specific_data) for e in result.all_events if e.is_failure)
