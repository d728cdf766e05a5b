"""Stage 2, fingerprint: Chromaprint for every track, and audio identity against catalog and opt-outs."""

import dagster as dg

from assets.ingest import catalog_delivery
from dagster_project.partitions import deliveries
from dagster_project.resources import LedgerResource
from fingerprinting.index import LANDMARK, FingerprintIndex
from fingerprinting.ledger import (
    fingerprint_delivery,
    index_delivery,
    landmark_index_dir,
    match_catalog,
    register_registry,
)

# Whole files: an excerpt from the middle of a catalog track, or a copy with its start cut,
# must find audio past the first 120 s (fpcalc's default length).
FINGERPRINT_SECONDS = None
INDEX_DIR = "fingerprint-index"


@dg.asset(partitions_def=deliveries, group_name="fingerprint", deps=[catalog_delivery], kinds={"python", "duckdb"})
def track_fingerprints(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """Chromaprint fingerprints (whole files) of the delivery's tracks; failures are quarantined."""

    delivery_id = context.partition_key
    ledger.delivery_dir(delivery_id)  # staged on this node when the deliveries are remote
    summary = fingerprint_delivery(ledger.connect, delivery_id, max_seconds=FINGERPRINT_SECONDS,
                                   actor=ledger.principal())
    return dg.MaterializeResult(metadata={"fingerprinted": summary.stored, "quarantined": summary.quarantined,
                                          "quarantined_by_reason": dict(summary.by_reason),
                                          "length": "whole file"})


@dg.asset(partitions_def=deliveries, group_name="fingerprint", deps=[track_fingerprints], kinds={"python"})
def fingerprint_index(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """The delivery's fingerprints in the persistent inverted index that matching queries."""

    index_dir = ledger.data_home().root / INDEX_DIR
    with ledger.connect() as con, FingerprintIndex.open(index_dir) as index, \
            FingerprintIndex.open(landmark_index_dir(index_dir), method=LANDMARK) as landmarks:
        added, removed = index_delivery(con, index, context.partition_key)
        lm_added, lm_removed = index_delivery(con, landmarks, context.partition_key)
        total = len(index)
    return dg.MaterializeResult(metadata={"added": added, "removed": removed, "indexed_total": total,
                                          "landmarks_added": lm_added, "landmarks_removed": lm_removed,
                                          "index": dg.MetadataValue.path(str(index_dir))})


@dg.asset(group_name="fingerprint", kinds={"duckdb"})
def optout_registry(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """Recordings whose owners opted out of AI training, fingerprinted from the audio they filed.

    A malformed entry, a path leaving the registry folder or unusable audio is quarantined
    (stage ``optout``); the other entries are registered.
    """

    registry = ledger.data_home().root / "optout" / "registry.json"
    if not registry.is_file():
        return dg.MaterializeResult(metadata={"entries": 0, "registry": "none filed"})
    with ledger.connect() as con:
        report = register_registry(con, registry, actor=ledger.principal())
    if report.quarantined:
        context.log.warning(f"{report.quarantined} opt-out entries quarantined: {report.by_reason}")
    return dg.MaterializeResult(metadata={"entries": len(report.registered), "quarantined": report.quarantined,
                                          "quarantined_by_reason": dict(report.by_reason),
                                          "registry": dg.MetadataValue.path(str(registry))})


@dg.multi_asset(
    specs=[
        dg.AssetSpec("duplicate_clusters", group_name="fingerprint", deps=[fingerprint_index], kinds={"duckdb"},
                     description="Catalog tracks that are the same recording, whatever their ISRCs say."),
        dg.AssetSpec("optout_matches", group_name="fingerprint", deps=[fingerprint_index, optout_registry],
                     kinds={"duckdb"}, description="Catalog tracks whose audio matches an opted-out recording."),
    ],
)
def audio_identity(ledger: LedgerResource):
    """Match every fingerprint against the persistent index: duplicates and opt-out matches, with evidence."""

    home = ledger.data_home()
    with ledger.connect() as con:
        summary = match_catalog(con, home.root / INDEX_DIR, actor=ledger.principal())
    yield dg.MaterializeResult(asset_key="duplicate_clusters",
                               metadata={"clusters": summary.duplicate_clusters,
                                         "tracks_in_clusters": summary.tracks_in_clusters,
                                         "duplicate_pairs": summary.duplicate_pairs})
    yield dg.MaterializeResult(asset_key="optout_matches", metadata={
        "matches": summary.optout_matches, "tracks_denied_by_optout": summary.tracks_denied_by_optout,
        "threshold": summary.threshold, "min_span_s": summary.min_span_s})
