"""Two ingest runs at once under the multiprocess executor, with CLI commands in between: nothing lost."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
import pytest

from lineage.audit import verify_chain
from store.database import connect
from tests.scale import jobs
from tests.scale.delivery import make_delivery, party_file
from tests.scale.pipeline import RIGHTS_APPROVER, cli, execute, prepare_home


def test_two_runs_and_cli_commands_at_once_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = prepare_home(tmp_path / "home", monkeypatch)
    isrcs = {d: make_delivery(home.deliveries / d, prefix=p, tracks=3, seed=n)
             for n, (d, p) in enumerate([("d-alpha", "AA"), ("d-beta", "BB")], 1)}
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("deliveries", list(isrcs))

    results: dict[str, dg.JobExecutionResult] = {}
    threads = [threading.Thread(target=lambda d=d: results.__setitem__(d, execute(jobs.ingest_delivery, d)))
               for d in isrcs]
    for thread in threads:
        thread.start()
    imports = []
    n = 0
    while any(t.is_alive() for t in threads) or n < 2:
        n += 1
        imports.append(cli("rights", "import", str(party_file(tmp_path / f"party-{n}.json", n)),
                           "--actor", RIGHTS_APPROVER))
    for thread in threads:
        thread.join(timeout=300)

    assert all(r.returncode == 0 for r in imports), [r.stderr[-800:] for r in imports if r.returncode]
    assert set(results) == set(isrcs) and all(r.success for r in results.values())
    with dg.DagsterInstance.get() as instance:
        for delivery, result in results.items():
            events = instance.all_logs(result.run_id)
            step_pids = {e.step_key: e.dagster_event.pid for e in events
                         if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_START}
            # The multiprocess executor ran every step in its own process.
            assert set(step_pids) == {"catalog_delivery", "delivery_rights", "track_fingerprints"}
            assert len(set(step_pids.values())) == 3
            materialized = {e.dagster_event.asset_key.to_user_string() for e in events if e.dagster_event
                            and e.dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION}
            assert materialized == {"catalog_delivery", "delivery_rights", "track_fingerprints"}, delivery

    with connect(home.db_path, read_only=True) as con:
        tracks = dict(con.execute("SELECT isrc, delivery_id FROM tracks").fetchall())
        fingerprinted = con.execute("SELECT count(*) FROM fingerprints").fetchone()[0]
        actions = con.execute("SELECT action, subject FROM audit_log").fetchall()
        extra = con.execute("SELECT count(*) FROM parties WHERE party_id LIKE 'P-EXTRA-%'").fetchone()[0]
        chain = verify_chain(con)
    assert tracks == {i: d for d, ids in isrcs.items() for i in ids}
    assert fingerprinted == 6
    for delivery in isrcs:
        assert actions.count(("ingest", f"delivery:{delivery}")) == 1
        assert actions.count(("fingerprint.store", f"delivery:{delivery}")) == 1
        assert actions.count(("rights.import", str(home.deliveries / delivery / "rights" / "rights.json"))) == 1
    cli_imports = [s for a, s in actions if a == "rights.import" and "party-" in s]
    assert len(cli_imports) == len(set(cli_imports)) == len(imports) == extra
    assert chain.ok, chain
