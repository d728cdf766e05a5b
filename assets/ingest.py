"""Stage 1, ingest: a catalog delivery's audio, metadata and rights records."""

import dagster as dg

from catalog.delivery import rights_files
from catalog.ingest import ingest_delivery
from dagster_project.partitions import deliveries
from dagster_project.resources import LedgerResource
from licensing.importers.ddex import import_ddex
from licensing.importers.tabular import import_rights_file
from store.audit import last_entry


@dg.asset(partitions_def=deliveries, group_name="ingest", kinds={"duckdb", "python"})
def catalog_delivery(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """Tracks of one delivery: probed audio, embedded tags merged with delivery metadata.

    Files that cannot be ingested go to the quarantine table with a reason; the rest goes on.
    """

    delivery_id = context.partition_key
    folder = ledger.delivery_dir(delivery_id)
    if not folder.is_dir():
        raise dg.Failure(f"delivery {delivery_id!r} has no directory at {folder}")
    with ledger.connect() as con:
        report = ingest_delivery(con, folder, delivery_id=delivery_id, actor=ledger.principal())
        audit = last_entry(con, subject=f"delivery:{delivery_id}", action="ingest")
    for error in report.errors:
        context.log.warning(error)
    return dg.MaterializeResult(metadata={
        "tracks": report.ingested,
        "quarantined": report.quarantined,
        "quarantined_by_reason": dict(report.by_reason),
        "delivery_dir": dg.MetadataValue.path(str(folder)), "delivery_id": delivery_id, **audit,
    })


@dg.asset(partitions_def=deliveries, group_name="ingest", deps=[catalog_delivery], kinds={"duckdb"})
def delivery_rights(context: dg.AssetExecutionContext, ledger: LedgerResource) -> dg.MaterializeResult:
    """Licenses, rights controllers and consents delivered with the catalog (JSON/CSV and DDEX ERN)."""

    folder = ledger.delivery_dir(context.partition_key)
    imported: dict[str, dict[str, int]] = {}
    errors = 0
    with ledger.connect() as con:
        for path in rights_files(folder):
            if path.suffix.lower() == ".xml":
                report = import_ddex(con, path, actor=ledger.principal())
            else:
                report = import_rights_file(con, path, actor=ledger.principal())
            for error in report.errors:
                context.log.warning(str(error))
            errors += len(report.errors)
            imported[path.name] = {"parties": report.parties, "recordings": report.recordings,
                                   "deals": report.deals, "consents": report.consents}
    return dg.MaterializeResult(metadata={"files": imported, "record_errors": errors})
