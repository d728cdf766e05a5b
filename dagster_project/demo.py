"""``make demo``: obtain the demo catalog and run the whole asset graph through Dagster.

Each stage is a Dagster job run recorded in the instance under ``<home>/dagster``, so
``dagster dev -w workspace.yaml`` shows the same runs and materializations afterwards.
A run is skipped when a successful run with the same inputs (a content key tag) exists,
so a second ``make demo`` does no finished work again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.demo import build_demo_catalog
from dagster_project.definitions import defs
from licensing.policy import load_policy
from licensing.releases import approve_release, get_release
from schemas.shards import LongformConfig
from shards.longform import build_longform
from shards.verify import latest_build
from store.database import connect
from store.home import Home
from store.roles import Principal, os_user

ML_ENGINEER = "mira.ml"
RIGHTS_APPROVER = "rita.rights"
AUDITOR = "aldo.audit"
PIPELINE = "linernotes-pipeline"
DEMO_ADMIN = "demo.admin"
DEMO_ROLES_HEADER = "# linernotes demo users: who may do what."
INPUT_KEY_TAG = "linernotes/input_key"


@dataclass
class DemoOutcome:
    deliveries: list[str]
    release_id: str
    run_id: str
    steps: list[tuple[str, str]] = field(default_factory=list)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _folder_key(folder: Path) -> str:
    entries = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            entries.append((path.relative_to(folder).as_posix(), stat.st_size, int(stat.st_mtime)))
    return _key(entries)


def write_roles(home: Home) -> Path:
    """The demo's users and roles (a deployment maps these from its identity provider).

    The operating-system account running the demo is mapped to an admin, so the person trying it can
    run the command line as the demo's people (``--actor rita.rights``), each act recorded as theirs.
    A roles file not written by the demo is left alone.
    """
    path = home.root / "roles.yaml"
    if path.exists() and not path.read_text(encoding="utf-8").startswith(DEMO_ROLES_HEADER):
        return path
    path.write_text(
        f"{DEMO_ROLES_HEADER}\n"
        "# The command line acts as the user your operating-system account maps to (os_users);\n"
        "# only an admin may name someone else with --actor, and that is recorded.\n"
        "users:\n"
        f"  {RIGHTS_APPROVER}: [rights_team]\n"
        f"  {ML_ENGINEER}: [ml_engineer]\n"
        f"  {AUDITOR}: [auditor]\n"
        f"  {PIPELINE}:\n"
        "    roles: [pipeline]\n"
        "    service: true\n"
        f"  {DEMO_ADMIN}:\n"
        "    roles: [admin]\n"
        f"    os_users: [{json.dumps(os_user())}]\n",
        encoding="utf-8",
    )
    return path


def _build_longform(home: Home, release_id: str, outcome: DemoOutcome, say: Callable[[str], None]) -> None:
    """The long-form layout beside the crops: whole recordings at 24 kHz mono (FLAC) with their captions."""
    label = f"longform_shards[{release_id}]"
    with connect(home.db_path) as con:
        built = latest_build(con, release_id, "longform")
        if built is not None:
            outcome.steps.append((label, "up to date"))
            say(f"  {label}: up to date")
            return
        say(f"  {label}: building...")
        manifest = build_longform(con, release_id, output_uri=str(home.objects / "shards" / f"{release_id}-longform"),
                                  config=LongformConfig(sample_rate=24000, channels=1),
                                  actor=Principal(name=ML_ENGINEER, method="direct", via="linernotes demo"))
    outcome.steps.append((label, f"{manifest.total_rows} recordings"))


def run_demo(home: Home, *, tracks_per_package: int | None = None, epochs: int = 2,
             say: Callable[[str], None] = print) -> DemoOutcome:
    """Run every stage of the pipeline on the demo catalog; raise if any Dagster run fails."""
    import dagster as dg

    home.ensure()
    os.environ["LINERNOTES_HOME"] = str(home.root)
    os.environ["DAGSTER_HOME"] = str(home.dagster_home)
    dagster_yaml = home.dagster_home / "dagster.yaml"
    if not dagster_yaml.exists():
        dagster_yaml.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    write_roles(home)

    say("Obtaining the demo catalog (Debian packages wesnoth-1.16-music, singularity-music)...")
    catalog = build_demo_catalog(home.deliveries, home.downloads, tracks_per_package=tracks_per_package,
                                 optout_root=home.root / "optout")
    outcome = DemoOutcome(deliveries=sorted(catalog.deliveries), release_id="", run_id="")

    with dg.DagsterInstance.get() as instance:

        def run(job_name: str, key: str, *, partition: str | None = None,
                run_config: dict[str, Any] | None = None) -> None:
            job = defs.resolve_job_def(job_name)
            label = f"{job_name}[{partition}]" if partition else job_name
            done = instance.get_runs(filters=dg.RunsFilter(
                job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS],
                tags={INPUT_KEY_TAG: key, **({"dagster/partition": partition} if partition else {})}), limit=1)
            if done:
                outcome.steps.append((label, "up to date"))
                say(f"  {label}: up to date (run {done[0].run_id[:8]})")
                return
            say(f"  {label}: running...")
            # Step logs stay in the instance (see them with `make ui`); the console gets the summary.
            quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
            result = job.execute_in_process(instance=instance, partition_key=partition,
                                            run_config={**(run_config or {}), **quiet},
                                            tags={INPUT_KEY_TAG: key}, raise_on_error=False)
            if not result.success:
                failures = [e.message for e in result.all_events if e.is_failure]
                raise RuntimeError(f"Dagster run {label} failed: " + "; ".join(m or "" for m in failures[-3:]))
            outcome.steps.append((label, f"run {result.run_id[:8]}"))

        delivery_keys = {}
        for delivery_id, folder in sorted(catalog.deliveries.items()):
            instance.add_dynamic_partitions("deliveries", [delivery_id])
            delivery_keys[delivery_id] = _folder_key(folder)
            run("ingest_delivery", delivery_keys[delivery_id], partition=delivery_id)

        policy = load_policy()
        decide_key = _key(delivery_keys, _folder_key(catalog.optout_registry.parent), policy.content_hash)
        run("match_and_decide", decide_key)

        release_id = f"rel-{decide_key[:10]}"
        outcome.release_id = release_id
        instance.add_dynamic_partitions("releases", [release_id])
        run("propose_release", decide_key, partition=release_id,
            run_config={"ops": {"training_release": {"config": {"proposed_by": ML_ENGINEER}}}})
        with connect(home.db_path) as con:
            if get_release(con, release_id).status == "proposed":
                # The demo driver stands in for the rights person at the web page or command line.
                approve_release(con, release_id, actor=Principal(name=RIGHTS_APPROVER, method="direct",
                                                                 via="linernotes demo"),
                                comment="Demo catalog: open licences and artist consent verified.")
                say(f"  release {release_id}: approved by {RIGHTS_APPROVER}")
        run("build_shards", decide_key, partition=release_id,
            run_config={"ops": {"release_shards": {"config": {"built_by": ML_ENGINEER}}}})
        _build_longform(home, release_id, outcome, say)

        train_config = {"release": release_id, "started_by": ML_ENGINEER, "epochs": epochs}
        run_id = f"run-{_key(train_config)[:10]}"
        outcome.run_id = run_id
        instance.add_dynamic_partitions("training_runs", [run_id])
        run("train_model", _key(train_config), partition=run_id,
            run_config={"ops": {"training_run": {"config": train_config}}})
    return outcome
