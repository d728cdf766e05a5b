"""Jobs: one per stage boundary where the partitioning changes (delivery, catalog, release, run)."""

import warnings

import dagster as dg

# Steps of one run in separate processes: a delivery's rights import and fingerprinting overlap, and
# every step opens the DuckDB ledger only briefly, so the others wait on its lock instead of failing.
# Runs of different partitions go side by side through the run coordinator (see docs/deployment.md).
FAN_OUT_MAX_CONCURRENT = 4
fan_out_executor = dg.multiprocess_executor.configured({"max_concurrent": FAN_OUT_MAX_CONCURRENT}, name="fan_out")

ingest_job = dg.define_asset_job(
    "ingest_delivery",
    selection=dg.AssetSelection.assets(
        "catalog_delivery", "delivery_rights", "track_fingerprints", "fingerprint_index"),
    description="Ingest one delivery: tracks, rights records, fingerprints and their index entries.",
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
FAN_OUT_JOBS = frozenset(j.name for j in ALL_JOBS if j.executor_def is fan_out_executor)


def with_fan_out_executor(defs: dg.Definitions, executor: dg.ExecutorDefinition) -> dg.Definitions:
    """The same code location with its fan-out jobs on another executor (k8s_job_executor, celery_executor).

    Sensors that target those jobs are pointed at the rebuilt ones; everything else is unchanged.
    """
    rebuilt = {
        job.name: dg.define_asset_job(job.name, selection=job.selection, description=job.description,
                                      tags=job.tags, executor_def=executor)
        for job in (defs.jobs or []) if getattr(job, "name", None) in FAN_OUT_JOBS
    }
    jobs = [rebuilt.get(getattr(job, "name", ""), job) for job in (defs.jobs or [])]
    sensors = []
    for sensor in defs.sensors or []:
        for target in list(sensor.targets):
            if target.job_name in rebuilt:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", dg.BetaWarning)  # raised inside Dagster's own copy
                    sensor = sensor.with_updated_job(rebuilt[target.job_name])
        sensors.append(sensor)
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=jobs, sensors=sensors,
                          schedules=defs.schedules, resources=defs.resources, executor=defs.executor)
