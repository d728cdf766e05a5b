"""Stage 5, shards: attribution-tagged Parquet training shards, built only from an approved release."""

import dagster as dg
import duckdb
from pydantic import Field

from assets.release import training_release
from dagster_project.partitions import releases
from dagster_project.resources import LedgerResource
from licensing.gate import ReleaseRefused
from shards.verify import (
    audit_decisions,
    latest_build,
    manifest_location,
    verify_manifest,
)
from shards.writer import ShardConfig, build_shards
from store.audit import last_entry


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

    release_id = context.partition_key
    output = config.output_uri or ledger.shards_uri(release_id)
    with ledger.connect() as con:
        try:
            manifest = build_shards(con, release_id, output_uri=output, actor=ledger.principal(config.built_by),
                                    config=ShardConfig(crops_per_track=config.crops_per_track, seed=config.seed))
        except ReleaseRefused as exc:
            raise dg.Failure(f"shard build refused for release {release_id}: {exc}") from exc
        build = _latest_build(con, release_id)
        audit = last_entry(con, subject=release_id, action="shards.build")
    for excluded in manifest.excluded:
        context.log.warning(f"excluded {excluded.isrc}: {excluded.reason_code}: {excluded.message}")
    return dg.MaterializeResult(metadata={
        "manifest_uri": build.manifest_uri, "manifest_sha256": build.manifest_sha256, "shards": len(manifest.shards),
        "samples": manifest.total_rows, "tracks": manifest.track_count, "excluded_tracks": len(manifest.excluded),
        "merkle_root": manifest.merkle_root, "policy_hash": manifest.policy_hash, "release_id": release_id,
        "build_id": f"{release_id}:{build.manifest_sha256[:16]}", **audit,
    })


def _latest_build(con: duckdb.DuckDBPyConnection, release_id: str):  # type: ignore[no-untyped-def]

    build = latest_build(con, release_id)
    if build is None:
        raise dg.Failure(f"release {release_id} has no shard build")
    return build


@dg.asset_check(asset=release_shards, blocking=True)
def shards_verified(context: dg.AssetCheckExecutionContext, ledger: LedgerResource) -> dg.AssetCheckResult:
    """Every shard re-hashes to its manifest entry, and every row's decision is an allow for the purpose."""

    release_id = context.op_execution_context.partition_key
    with ledger.connect(read_only=True) as con:
        manifest_uri = manifest_location(_latest_build(con, release_id).manifest_uri)
        report = verify_manifest(manifest_uri)
        decisions = audit_decisions(con, manifest_uri) if report.ok else None
    problems = list(report.problems) + [f"sample {s}: its decision is not an allow for the release's purpose"
                                        for s in (decisions.not_allowed if decisions else ())]
    return dg.AssetCheckResult(passed=report.ok and decisions is not None and decisions.ok, metadata={
        "manifest_uri": manifest_uri, "shards_checked": len(report.shards), "missing": list(report.missing),
        "extra": list(report.extra), "altered": list(report.altered), "problems": problems[:50]})
