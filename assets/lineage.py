"""Stage 7, lineage: the path from every song to the model and back, and the records' integrity."""

import json

import dagster as dg

from assets.training import training_run
from dagster_project.partitions import training_runs
from dagster_project.resources import LedgerResource
from lineage import openlineage
from lineage.ai_act import build_summary, write_summary
from lineage.integrity import verify_ledger
from lineage.trace import ensure_snapshots, trace_model
from store.audit import last_entry


@dg.asset(partitions_def=training_runs, group_name="lineage", deps=[training_run], kinds={"duckdb", "json"})
def model_lineage(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """The model's trace back to every track, rights holder, license, consent and decision; records verified.

    Writes ``lineage.json``, the EU AI Act training-content summary and the run's OpenLineage events
    beside the run. Fails when the audit chain is broken or a file of this run no longer matches.
    """

    run_id = context.partition_key
    home = ledger.data_home()
    with ledger.connect() as con:
        built = ensure_snapshots(con, actor=ledger.principal(), run_id=run_id)
    with ledger.connect(read_only=True) as con:
        trace = trace_model(con, run_id)
        report = verify_ledger(con)
        summary = build_summary(con, run_id, provider="linernotes pipeline")
        events = openlineage.ledger_events(con, run_id=run_id)
        audit = last_entry(con, subject=run_id)
    run_dir = home.runs / run_id
    out = run_dir / "lineage.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(trace, indent=2, sort_keys=True, default=str), encoding="utf-8")
    paths = write_summary(summary, run_dir)
    openlineage.write_events(events, run_dir / "openlineage")
    run = trace["run"]
    own = {run["manifest_uri"], run["checkpoint_uri"]}
    mine = [f for f in report.findings if f.kind == "audit_entry" or f.subject in own]
    for finding in report.findings:
        context.log.warning(finding.describe())
    if mine:
        raise dg.Failure(f"records of {run_id} do not match: {mine[0].describe()}")
    return dg.MaterializeResult(metadata={
        "run_id": run_id, "release_id": trace["release_id"], "manifest_uri": run["manifest_uri"],
        "manifest_sha256": run["manifest_sha256"], "checkpoint_sha256": run["checkpoint_sha256"],
        "tracks": trace["tracks_total"], "rights_holders": len(trace["rights_holders"]),
        "samples_consumed": trace["samples_consumed"], "audit_entries": report.audit_entries,
        "integrity_findings": len(report.findings), "openlineage_events": len(events), **audit,
        "trace_snapshot_sha256": trace["snapshot"].get("sha256"), "trace_snapshots_built": len(built),
        "lineage_json": dg.MetadataValue.path(str(out)),
        "ai_act_summary": dg.MetadataValue.path(str(paths["markdown"])),
    })
