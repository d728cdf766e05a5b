"""Stage 7, lineage: the path from every song to the model and back, and the audit chain's integrity."""

import json

import dagster as dg

from assets.training import training_run
from dagster_project.partitions import training_runs
from dagster_project.resources import LedgerResource


@dg.asset(partitions_def=training_runs, group_name="lineage", deps=[training_run], kinds={"duckdb", "json"})
def model_lineage(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """The model's trace back to every track, rights holder, license, consent and decision; chain verified."""
    from lineage.audit import verify_chain
    from lineage.trace import trace_model

    run_id = context.partition_key
    home = ledger.data_home()
    with ledger.connect(read_only=True) as con:
        trace = trace_model(con, run_id)
        chain = verify_chain(con)
    out = home.runs / run_id / "lineage.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(trace, indent=2, sort_keys=True, default=str), encoding="utf-8")
    if not chain.ok:
        raise dg.Failure(f"audit chain broken at entry {chain.first_bad_seq}: {chain.problem}")
    return dg.MaterializeResult(metadata={
        "tracks": len(trace["tracks"]), "rights_holders": len(trace["rights_holders"]),
        "samples_consumed": trace["samples_consumed"], "audit_entries": chain.entries,
        "lineage_json": dg.MetadataValue.path(str(out)),
    })
