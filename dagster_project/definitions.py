"""The linernotes code location: every asset, check, job and sensor, and the ledger resource."""

import dagster as dg

import assets
from dagster_project.jobs import ALL_JOBS
from dagster_project.resources import LedgerResource
from dagster_project.sensors import delivery_inbox_sensor, rights_change_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_package_module(assets),
    asset_checks=dg.load_asset_checks_from_package_module(assets),
    jobs=ALL_JOBS,
    sensors=[delivery_inbox_sensor, rights_change_sensor],
    resources={"ledger": LedgerResource()},
    # Jobs that fan out name their own executor (jobs.py); docs/deployment.md moves these to k8s or celery.
    executor=dg.in_process_executor,
)
