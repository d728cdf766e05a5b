"""Stage 2, fingerprint: Chromaprint for every track, and audio identity against catalog and opt-outs."""

import json
from pathlib import Path

import dagster as dg

from assets.ingest import SYSTEM_ACTOR, catalog_delivery
from dagster_project.partitions import deliveries
from dagster_project.resources import LedgerResource

FINGERPRINT_SECONDS = 120.0


@dg.asset(partitions_def=deliveries, group_name="fingerprint", deps=[catalog_delivery], kinds={"python", "duckdb"})
def track_fingerprints(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """Chromaprint fingerprints (first 120 s, as fpcalc) of the delivery's tracks; failures are quarantined."""
    from fingerprinting.batch import fingerprint_many
    from fingerprinting.ledger import store_fingerprints

    delivery_id = context.partition_key
    ledger.delivery_dir(delivery_id)  # staged on this node when the deliveries are remote
    with ledger.connect() as con:
        rows = con.execute(
            "SELECT track_id, source_path FROM tracks WHERE delivery_id = ? ORDER BY track_id", [delivery_id]
        ).fetchall()
    by_path = {Path(p): t for t, p in rows}
    outcomes = list(fingerprint_many(list(by_path), max_seconds=FINGERPRINT_SECONDS))
    with ledger.connect() as con:
        summary = store_fingerprints(con, [(by_path[Path(o.path)], o) for o in outcomes], delivery_id)
    return dg.MaterializeResult(metadata={"fingerprinted": summary.stored, "quarantined": summary.quarantined,
                                          "quarantined_by_reason": dict(summary.by_reason)})


@dg.asset(group_name="fingerprint", kinds={"duckdb"})
def optout_registry(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """Recordings whose owners opted out of AI training, fingerprinted from the audio they filed."""
    from fingerprinting.ledger import register_optout

    home = ledger.data_home()
    registry = home.root / "optout" / "registry.json"
    if not registry.is_file():
        return dg.MaterializeResult(metadata={"entries": 0, "registry": "none filed"})
    doc = json.loads(registry.read_text(encoding="utf-8"))
    registered = 0
    with ledger.connect() as con:
        for entry in doc.get("entries", []):
            register_optout(con, optout_id=entry["optout_id"], claimant=entry["claimant"],
                            audio_path=registry.parent / entry["file"], isrc=entry.get("isrc"),
                            title=entry.get("title"), note=entry.get("note"), actor=SYSTEM_ACTOR)
            registered += 1
    return dg.MaterializeResult(metadata={"entries": registered, "registry": dg.MetadataValue.path(str(registry))})


@dg.multi_asset(
    specs=[
        dg.AssetSpec("duplicate_clusters", group_name="fingerprint", deps=[track_fingerprints], kinds={"duckdb"},
                     description="Catalog tracks that are the same recording, whatever their ISRCs say."),
        dg.AssetSpec("optout_matches", group_name="fingerprint", deps=[track_fingerprints, optout_registry],
                     kinds={"duckdb"}, description="Catalog tracks whose audio matches an opted-out recording."),
    ],
)
def audio_identity(ledger: LedgerResource):
    """Match every fingerprint against the persistent index: duplicates and opt-out matches, with evidence."""
    from fingerprinting.ledger import match_catalog

    home = ledger.data_home()
    with ledger.connect() as con:
        summary = match_catalog(con, home.root / "fingerprint-index")
    yield dg.MaterializeResult(asset_key="duplicate_clusters",
                               metadata={"clusters": summary.duplicate_clusters,
                                         "tracks_in_clusters": summary.tracks_in_clusters,
                                         "duplicate_pairs": summary.duplicate_pairs})
    yield dg.MaterializeResult(asset_key="optout_matches", metadata={
        "matches": summary.optout_matches, "tracks_denied_by_optout": summary.tracks_denied_by_optout,
        "threshold": summary.threshold, "min_span_s": summary.min_span_s})
