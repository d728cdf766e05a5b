"""Shared set-up for pipeline tests: a data directory, a Dagster home, and runs of the real jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from dagster_project.demo import RIGHTS_APPROVER, write_roles
from store.home import Home

ROOT = Path(__file__).resolve().parents[2]


def prepare_home(root: Path, monkeypatch, dagster_yaml: str = "") -> Home:  # type: ignore[no-untyped-def]
    """A fresh data directory and Dagster home, made the current ones through the environment."""
    home = Home.from_env(root).ensure()
    monkeypatch.setenv("LINERNOTES_HOME", str(home.root))
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    (home.dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + dagster_yaml, encoding="utf-8")
    write_roles(home)
    return home


def execute(job_fn, partition: str | None = None, run_config: dict | None = None) -> dg.JobExecutionResult:  # type: ignore[no-untyped-def,type-arg]
    """Run a job as a deployment does: its own executor (separate step processes), the instance on disk."""
    tags = {"dagster/partition": partition} if partition else {}
    with dg.DagsterInstance.get() as instance:
        return dg.execute_job(dg.reconstructable(job_fn), instance, run_config=run_config, tags=tags)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``linernotes`` command line in its own process."""
    return subprocess.run([sys.executable, "-c", "from dagster_project.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


__all__ = ["RIGHTS_APPROVER", "cli", "execute", "prepare_home"]
