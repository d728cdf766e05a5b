"""Two ingest runs at once under the multiprocess executor, with CLI commands in between: nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from store.audit import verify_chain
from store.database import connect
from tests.scale.delivery import make_delivery, party_file
from tests.scale.pipeline import RIGHTS_APPROVER, ROOT, cli, prepare_home

INGEST_STEPS = {"catalog_delivery", "delivery_rights", "track_fingerprints", "fingerprint_index"}


def test_two_runs_and_cli_commands_at_once_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = prepare_home(tmp_path / "home", monkeypatch)
    isrcs = {d: make_delivery(home.deliveries / d, prefix=p, tracks=3, seed=n)
             for n, (d, p) in enumerate([("d-alpha", "AA"), ("d-beta", "BB")], 1)}
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("deliveries", list(isrcs))

    # Each run in its own process, as a run launcher starts them; CLI commands go in between.
    runs = {d: subprocess.Popen([sys.executable, "-m", "tests.scale.run_job", "ingest_delivery", d], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in isrcs}
    imports = []
    deadline = time.monotonic() + 600
    while any(p.poll() is None for p in runs.values()) or len(imports) < 2:
        assert time.monotonic() < deadline, "the runs did not finish"
        imports.append(cli("rights", "import", str(party_file(tmp_path / f"party-{len(imports) + 1}.json",
                                                               len(imports) + 1)), "--actor", RIGHTS_APPROVER))
    results = {}
    for delivery, proc in runs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        results[delivery] = json.loads(out.strip().splitlines()[-1])

    assert all(r.returncode == 0 for r in imports), [r.stderr[-800:] for r in imports if r.returncode]
    assert set(results) == set(isrcs) and all(r["success"] for r in results.values())
    with dg.DagsterInstance.get() as instance:
        for delivery, result in results.items():
            events = instance.all_logs(result["run_id"])
            step_pids = {e.step_key: e.dagster_event.pid for e in events
                         if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_START}
            # The multiprocess executor ran every step in its own process.
            assert set(step_pids) == INGEST_STEPS
            assert len(set(step_pids.values())) == len(INGEST_STEPS)
            materialized = {e.dagster_event.asset_key.to_user_string() for e in events if e.dagster_event
                            and e.dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION}
            assert materialized == INGEST_STEPS, delivery

    with connect(home.db_path, read_only=True) as con:
        tracks = dict(con.execute("SELECT isrc, delivery_id FROM tracks").fetchall())
        fingerprinted = con.execute("SELECT count(*) FROM fingerprints").fetchone()[0]
        actions = con.execute("SELECT action, subject FROM audit_log").fetchall()
        extra = con.execute("SELECT count(*) FROM parties WHERE party_id LIKE 'P-EXTRA-%'").fetchone()[0]
        chain = verify_chain(con)
    assert tracks == {i: d for d, ids in isrcs.items() for i in ids}
    assert fingerprinted == 6
    for delivery in isrcs:
        assert actions.count(("catalog.ingest", f"delivery:{delivery}")) == 1
        assert actions.count(("fingerprint.store", f"delivery:{delivery}")) == 1
        assert actions.count(("rights.import", f"deliveries/{delivery}/rights/rights.json")) == 1
    cli_imports = [s for a, s in actions if a == "rights.import" and "party-" in s]
    assert len(cli_imports) == len(set(cli_imports)) == len(imports) == extra
    assert chain.ok, chain
