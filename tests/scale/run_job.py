"""Run one job of the real Definitions in this process and print its run id and outcome as JSON.

A deployment's run launcher gives every run its own process; tests that run jobs side by side do
the same (two runs in threads of one process would share Python's logging set-up, which Dagster
reconfigures for every run).

    python -m tests.scale.run_job JOB_NAME [PARTITION]
"""

from __future__ import annotations

import json
import sys

from tests.scale import jobs
from tests.scale.pipeline import execute


def main() -> None:
    name, partition = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    result = execute(getattr(jobs, name), partition)
    print(json.dumps({"run_id": result.run_id, "success": result.success}))


if __name__ == "__main__":
    main()
