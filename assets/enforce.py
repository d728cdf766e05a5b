"""Stage 3, enforce: deny-by-default decisions for every track and purpose, each with its reasons."""


from datetime import UTC, date, datetime

import dagster as dg
from pydantic import Field

from assets.ingest import delivery_rights
from dagster_project.resources import LedgerResource
from licensing.evaluate import evaluate_catalog
from licensing.policy import load_policy
from store.audit import last_entry

DEFAULT_PURPOSE = "UseForTrainingGenerativeAI"
DEFAULT_TERRITORY = "GB"


class DecisionConfig(dg.Config):
    purposes: list[str] = Field(default_factory=lambda: [DEFAULT_PURPOSE],
                                description="DDEX use types to decide for.")
    territory: str = Field(default=DEFAULT_TERRITORY, description="ISO 3166-1 territory where training happens.")
    on_date: str | None = Field(default=None, description="Decision date (YYYY-MM-DD); today when unset.")


def decision_date(value: str | None) -> date:
    return date.fromisoformat(value) if value else datetime.now(UTC).date()


@dg.asset(group_name="enforce", deps=[delivery_rights, "duplicate_clusters", "optout_matches"],
          kinds={"duckdb", "python"})
def rights_decisions(context: dg.AssetExecutionContext, config: DecisionConfig,
                     ledger: LedgerResource) -> dg.MaterializeResult:
    """Allow or deny every catalog track for each purpose under the versioned policy, with reason codes."""

    policy = load_policy()
    on = decision_date(config.on_date)
    results: dict[str, dict[str, object]] = {}
    with ledger.connect() as con:
        for purpose in config.purposes:
            summary = evaluate_catalog(con, policy, purpose=purpose, territory=config.territory, on_date=on,
                                       actor=ledger.principal())
            results[purpose] = {"allowed": summary.allowed, "denied": summary.denied,
                                "denied_by_reason": dict(summary.by_reason)}
            context.log.info(f"{purpose}: {summary.allowed} allowed, {summary.denied} denied {dict(summary.by_reason)}")
        audit = last_entry(con, action="rights.evaluate")
    return dg.MaterializeResult(metadata={"policy_hash": policy.content_hash, "territory": config.territory,
                                          "on_date": on.isoformat(), "decisions": results, **audit})
