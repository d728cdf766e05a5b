"""Reconstructable handles on the real jobs, so runs can use the multiprocess executor from a test."""

import dagster as dg


def _job(name: str) -> dg.JobDefinition:
    from dagster_project.definitions import defs

    return defs.resolve_job_def(name)


def ingest_delivery() -> dg.JobDefinition:
    return _job("ingest_delivery")


def match_and_decide() -> dg.JobDefinition:
    return _job("match_and_decide")
