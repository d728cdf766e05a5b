"""Stage 5, shards: attribution-tagged Parquet training shards, built only from an approved release."""


import dagster as dg
from pydantic import Field

from assets.release import training_release
from dagster_project.partitions import releases
from dagster_project.resources import LedgerResource


class ShardBuildConfig(dg.Config):
    built_by: str = Field(description="The ML engineer building the shards.")
    crops_per_track: int = 8
    seed: int = 0
    output_uri: str | None = Field(default=None, description="Where shards go (local path or s3://); "
                                                             "default: <home>/objects/shards/<release>.")


@dg.asset(partitions_def=releases, group_name="shards", deps=[training_release], kinds={"parquet", "python"})
def release_shards(context: dg.AssetExecutionContext, config: ShardBuildConfig,
                   ledger: LedgerResource) -> dg.MaterializeResult:
    """Parquet shards where every row carries who owns it, under which license, consent and decision."""
    from shards.writer import ShardConfig, build_shards

    release_id = context.partition_key
    output = config.output_uri or str(ledger.data_home().objects / "shards" / release_id)
    with ledger.connect() as con:
        manifest = build_shards(con, release_id, output_uri=output, actor=config.built_by,
                                config=ShardConfig(crops_per_track=config.crops_per_track, seed=config.seed))
    return dg.MaterializeResult(metadata={
        "manifest_uri": manifest.manifest_uri, "manifest_sha256": manifest.manifest_sha256,
        "shards": len(manifest.shards), "samples": sum(s.rows for s in manifest.shards),
        "policy_hash": manifest.policy_hash,
    })


@dg.asset_check(asset=release_shards, blocking=True)
def shards_verified(context: dg.AssetCheckExecutionContext, ledger: LedgerResource) -> dg.AssetCheckResult:
    """Every shard re-hashes to its manifest entry, and every row's decision is an allow for the purpose."""
    from shards.verify import verify_release_shards

    release_id = context.op_execution_context.partition_key
    with ledger.connect(read_only=True) as con:
        report = verify_release_shards(con, release_id)
    return dg.AssetCheckResult(passed=report.ok, metadata={"problems": report.problems[:50],
                                                           "shards_checked": report.shards_checked})
