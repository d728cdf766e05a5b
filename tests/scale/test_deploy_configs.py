"""The checked-in deployment examples load: YAML parses, instance configs open on a real PostgreSQL."""

from __future__ import annotations

import ast
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_project.definitions import defs
from dagster_project.jobs import FAN_OUT_JOBS, with_fan_out_executor

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _load(path: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DEPLOY / path).read_text(encoding="utf-8"))


def test_every_deploy_yaml_parses_and_names_its_launcher_and_executor() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) == 5 and all(isinstance(yaml.safe_load(f.read_text()), dict) for f in files)
    values = _load("k8s/values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    deployment = values["dagster-user-deployments"]["deployments"][0]
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("--module-name") + 1]
    assert (DEPLOY.parent / (module.replace(".", "/") + ".py")).is_file()
    assert _load("k8s/dagster.yaml")["run_launcher"] == {**_load("k8s/dagster.yaml")["run_launcher"],
                                                         "module": "dagster_k8s", "class": "K8sRunLauncher"}
    assert "step_k8s_config" in _load("k8s/executor.yaml")
    assert {"broker", "backend", "include"} <= set(_load("celery/executor.yaml")["execution"]["config"])
    for name, executor in (("k8s", "k8s_job_executor"), ("celery", "celery_executor")):
        tree = ast.parse((DEPLOY / name / "definitions.py").read_text())
        imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names}
        assert {executor, "with_fan_out_executor"} <= imported


def test_fan_out_jobs_move_to_another_executor_and_the_sensor_follows() -> None:
    other = dg.multiprocess_executor.configured({"max_concurrent": 2}, name="elsewhere")
    moved = with_fan_out_executor(defs, other)
    assert FAN_OUT_JOBS == {"ingest_delivery", "build_shards"}
    for job in defs.resolve_all_job_defs():
        expected = "elsewhere" if job.name in FAN_OUT_JOBS else job.executor_def.name
        assert moved.resolve_job_def(job.name).executor_def.name == expected
    assert defs.resolve_job_def("ingest_delivery").executor_def.name == "fan_out"
    assert moved.resolve_sensor_def("delivery_inbox_sensor").job.executor_def.name == "elsewhere"
    assert moved.resolve_asset_graph().get_all_asset_keys() == defs.resolve_asset_graph().get_all_asset_keys()


@pytest.mark.parametrize("name", ["celery", "k8s"])
def test_instance_configs_open_on_postgres(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           postgres_server: tuple[str, int], postgres_db: str) -> None:
    from dagster_postgres import PostgresRunStorage

    host, port = postgres_server
    config = _load(f"{name}/dagster.yaml")
    if name == "k8s":
        config.pop("run_launcher")  # dagster-k8s is not installed here; the rest must load as written
    for key, value in {"DAGSTER_PG_URL": f"postgresql+psycopg2://postgres@{host}:{port}/{postgres_db}",
                       "DAGSTER_PG_HOST": host, "DAGSTER_PG_USERNAME": "postgres", "DAGSTER_PG_PASSWORD": ""}.items():
        monkeypatch.setenv(key, value)
    if name == "k8s":
        config["storage"]["postgres"]["postgres_db"]["port"] = port
        config["storage"]["postgres"]["postgres_db"]["db_name"] = postgres_db
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        limits = {(t["value"], t["limit"]) for t in coordinator.get_run_queue_config().tag_concurrency_limits}
        assert ("match_and_decide", 1) in limits


def test_torchrun_command_joins_a_rendezvous_on_several_nodes() -> None:
    from training.launcher import torchrun_command

    single = torchrun_command(2, None)
    assert "--standalone" in single and not any(a.startswith("--rdzv") for a in single)
    node1 = torchrun_command(4, None, nnodes=2, node_rank=1, rdzv_endpoint="node0:29500", rdzv_id="run-42")
    assert "--standalone" not in node1
    assert {"--nnodes=2", "--node_rank=1", "--rdzv_backend=c10d", "--rdzv_endpoint=node0:29500",
            "--rdzv_id=run-42", "--nproc_per_node=4"} <= set(node1)
    assert node1[-2:] == ["-m", "training.reference"]
    with pytest.raises(ValueError, match="rendezvous"):
        torchrun_command(1, None, nnodes=2)
