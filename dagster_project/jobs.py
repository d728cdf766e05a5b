"""Jobs: one per stage boundary where the partitioning changes (delivery, catalog, release, run)."""

import dagster as dg

# Steps of one run in separate processes: a delivery's rights import and fingerprinting overlap, and
# every step opens the DuckDB ledger only briefly, so the others wait on its lock instead of failing.
# Runs of different partitions go side by side through the run coordinator (see docs/deployment.md).
FAN_OUT_MAX_CONCURRENT = 4
fan_out_executor = dg.multiprocess_executor.configured({"max_concurrent": FAN_OUT_MAX_CONCURRENT}, name="fan_out")

ingest_job = dg.define_asset_job(
    "ingest_delivery",
    selection=dg.AssetSelection.assets("catalog_delivery", "delivery_rights", "track_fingerprints"),
    description="Ingest one delivery: tracks, rights records, fingerprints.",
    executor_def=fan_out_executor,
)
decisions_job = dg.define_asset_job(
    "match_and_decide",
    selection=dg.AssetSelection.assets("optout_registry", "duplicate_clusters", "optout_matches", "rights_decisions"),
    description="Match audio against the catalog and the opt-out registry, then decide every track.",
)
release_job = dg.define_asset_job(
    "propose_release", selection=dg.AssetSelection.assets("training_release"),
    description="Freeze the allowed tracks for one purpose as a release awaiting rights-team approval.",
)
shards_job = dg.define_asset_job(
    "build_shards", selection=dg.AssetSelection.assets("release_shards"),
    description="Write attribution-tagged shards for an approved release.",
    executor_def=fan_out_executor,
)
training_job = dg.define_asset_job(
    "train_model",
    selection=dg.AssetSelection.assets("training_run", "model_lineage"),
    description="Train on an approved release's shards and record the model's lineage.",
)
ALL_JOBS = [ingest_job, decisions_job, release_job, shards_job, training_job]
