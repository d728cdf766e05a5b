"""Sensors: new deliveries dropped into the inbox become partitions and ingest runs; rights changes
re-decide the catalog and report their impact."""

import shutil

import dagster as dg

from dagster_project.jobs import ingest_job
from dagster_project.partitions import deliveries
from dagster_project.resources import LedgerResource
from licensing.watch import WatchCursor, changes_since, handle_changes

READY_MARKER = "READY"


@dg.sensor(job=ingest_job, minimum_interval_seconds=30)
def delivery_inbox_sensor(context: dg.SensorEvaluationContext, ledger: LedgerResource) -> dg.SensorResult:
    """A directory under ``<home>/inbox/`` with a READY file is moved to deliveries/ and ingested."""
    home = ledger.data_home()
    inbox = home.root / "inbox"
    known = set(context.instance.get_dynamic_partitions(deliveries.name))
    new: list[str] = []
    if inbox.is_dir():
        for folder in sorted(p for p in inbox.iterdir() if p.is_dir() and (p / READY_MARKER).exists()):
            delivery_id = folder.name
            target = home.deliveries / delivery_id
            if delivery_id in known or target.exists():
                context.log.warning(f"delivery {delivery_id!r} already exists; leaving {folder} in the inbox")
                continue
            shutil.move(str(folder), str(target))
            new.append(delivery_id)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=d, run_key=f"delivery:{d}") for d in new],
        dynamic_partitions_requests=[deliveries.build_add_request(new)] if new else [],
    )


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def rights_change_sensor(context: dg.SensorEvaluationContext, ledger: LedgerResource) -> dg.SensorResult:
    """Consent revocations and deal ends re-decide the catalog, alert the releases that hold newly denied
    tracks (``release_alerts``) and write an impact report to ``<home>/reports/``."""

    cursor = WatchCursor.parse(context.cursor)
    with ledger.connect() as con:
        changes = changes_since(con, cursor)
        if not changes.any:
            return dg.SensorResult(cursor=changes.cursor.model_dump_json(),
                                   skip_reason=f"no rights change since {cursor.as_of:%Y-%m-%d %H:%M}")
        report = handle_changes(con, changes, reports_dir=ledger.data_home().root / "reports",
                                actor="rights_change_sensor")
    context.log.info(f"rights change: {len(report['became_denied'])} decision(s) became denied; releases "
                     f"alerted: {sorted(report['affected_releases']) or 'none'}; report {report['path']}")
    return dg.SensorResult(cursor=changes.cursor.model_dump_json())
