"""The linernotes code location for Kubernetes: fan-out jobs run one pod per step (``k8s_job_executor``).

Needs ``dagster-k8s`` in the image; its executor config is ``deploy/k8s/executor.yaml``.
"""

from pathlib import Path

import yaml
from dagster_k8s import k8s_job_executor

from dagster_project.definitions import defs as _defs
from dagster_project.jobs import with_fan_out_executor

_config = yaml.safe_load((Path(__file__).parent / "executor.yaml").read_text(encoding="utf-8"))
defs = with_fan_out_executor(_defs, k8s_job_executor.configured(_config, name="k8s_fan_out"))
