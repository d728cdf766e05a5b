"""Stage 4, approve: a frozen release of allowed tracks for one purpose, approved by the rights team."""

import dagster as dg
from pydantic import Field

from assets.enforce import (
    DEFAULT_PURPOSE,
    DEFAULT_TERRITORY,
    decision_date,
    rights_decisions,
)
from dagster_project.partitions import releases
from dagster_project.resources import LedgerResource
from licensing.policy import load_policy
from licensing.releases import propose_release, tracks_without_allow
from store.audit import last_entry


class ReleaseConfig(dg.Config):
    purpose: str = DEFAULT_PURPOSE
    territory: str = DEFAULT_TERRITORY
    on_date: str | None = None
    proposed_by: str = Field(description="The ML engineer proposing the release.")


@dg.asset(partitions_def=releases, group_name="approve", deps=[rights_decisions], kinds={"duckdb"})
def training_release(context: dg.AssetExecutionContext, config: ReleaseConfig,
                     ledger: LedgerResource) -> dg.MaterializeResult:
    """The frozen set of tracks allowed for one purpose, proposed for rights-team approval.

    Approval is a person's act (``linernotes release approve``); shards are built only once it is given.
    """

    with ledger.connect() as con:
        release = propose_release(con, purpose=config.purpose, territory=config.territory,
                                  on_date=decision_date(config.on_date), actor=ledger.principal(config.proposed_by),
                                  policy=load_policy(), release_id=context.partition_key)
        audit = last_entry(con, subject=release.release_id, action="release.propose")
    return dg.MaterializeResult(metadata={
        "release_id": release.release_id, "status": release.status, "tracks": release.track_count,
        "purpose": release.purpose, "policy_hash": release.policy_hash, "content_sha256": release.content_sha256,
        **audit,
    })


@dg.asset_check(asset=training_release, blocking=True)
def release_excludes_denied_tracks(context: dg.AssetCheckExecutionContext,
                                   ledger: LedgerResource) -> dg.AssetCheckResult:
    """Every track frozen in the release rests on an allow decision for the release's purpose."""

    with ledger.connect(read_only=True) as con:
        bad = tracks_without_allow(con, context.op_execution_context.partition_key)
    return dg.AssetCheckResult(passed=not bad, metadata={"denied_tracks_in_release": len(bad), "isrcs": bad[:50]})
