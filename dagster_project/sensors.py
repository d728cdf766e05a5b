"""Sensors: new deliveries dropped into the inbox become partitions and ingest runs."""

import shutil

import dagster as dg

from dagster_project.jobs import ingest_job
from dagster_project.partitions import deliveries
from dagster_project.resources import LedgerResource

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
