"""The linernotes code location for Celery: fan-out jobs send each step to a Celery worker.

Needs ``dagster-celery`` on the webserver, daemon and workers; its executor config is
``deploy/celery/executor.yaml``, and workers start with
``dagster-celery worker start -A dagster_celery.app -y deploy/celery/executor.yaml``.
"""

from pathlib import Path

import yaml
from dagster_celery import celery_executor

from dagster_project.definitions import defs as _defs
from dagster_project.jobs import with_fan_out_executor

_config = yaml.safe_load((Path(__file__).parent / "executor.yaml").read_text(encoding="utf-8"))
defs = with_fan_out_executor(_defs, celery_executor.configured(_config["execution"]["config"], name="celery_fan_out"))
