"""Sensors: new deliveries dropped into the inbox become partitions and ingest runs; rights changes are
fanned out to alerts and impact reports."""

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
    """Fan rights changes out: re-decide what time changed (a deal's end passing, a dated revocation coming into
    force), alert the releases that hold newly denied tracks (``release_alerts``) and write an impact report to
    ``<home>/reports/``. Imports, revocations and deal ends re-decide their own tracks when they are recorded;
    this sensor never re-evaluates the whole catalog.

    Its first tick starts at the log's head: what was recorded before it ran was already decided.
    """
    with ledger.connect() as con:
        if context.cursor is None:
            start = WatchCursor.at_head(con)
            return dg.SensorResult(cursor=start.model_dump_json(), skip_reason=f"watching from audit entry "
                                                                              f"#{start.audit_seq}")
        cursor = WatchCursor.parse(context.cursor)
        changes = changes_since(con, cursor)
        if not changes.any:
            return dg.SensorResult(cursor=changes.cursor.model_dump_json(),
                                   skip_reason=f"no rights change since {cursor.as_of:%Y-%m-%d %H:%M}")
        report = handle_changes(con, changes, reports_dir=ledger.data_home().root / "reports",
                                actor=ledger.principal())
    became = (report["redecided"] or {}).get("became_denied", [])
    context.log.info(f"rights change: {len(changes.isrcs)} recording(s); {len(became)} decision(s) became denied with "
                     f"time; releases alerted: {sorted(report['affected_releases']) or 'none'}; report {report['path']}")
    return dg.SensorResult(cursor=changes.cursor.model_dump_json())
