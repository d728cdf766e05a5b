"""The Dagster instance on PostgreSQL: a delivery materialized end to end, every run and event in Postgres."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from store.audit import verify_chain
from store.database import connect
from tests.scale import jobs
from tests.scale.delivery import make_delivery
from tests.scale.pipeline import execute, prepare_home


def test_delivery_materialized_with_runs_and_events_in_postgres(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_server: tuple[str, int], postgres_db: str) -> None:
    import psycopg2
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    host, port = postgres_server
    url = f"postgresql+psycopg2://postgres@{host}:{port}/{postgres_db}"
    home = prepare_home(tmp_path / "home", monkeypatch, "storage:\n  postgres:\n"
                        f"    postgres_url: {url}\n")
    isrcs = make_delivery(home.deliveries / "d-pg", prefix="PG", tracks=3, seed=4)
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        instance.add_dynamic_partitions("deliveries", ["d-pg"])

    ingest = execute(jobs.ingest_delivery, "d-pg")
    decide = execute(jobs.match_and_decide, run_config={"ops": {"rights_decisions": {"config": {
        "on_date": "2026-06-01"}}}})
    assert ingest.success and decide.success

    with connect(home.db_path, read_only=True) as con:
        decided = dict(con.execute("SELECT isrc, allowed FROM decisions "
                                   "WHERE purpose = 'UseForTrainingGenerativeAI'").fetchall())
        chain = verify_chain(con)
    assert decided == {isrcs[0]: True, isrcs[1]: True, isrcs[2]: False} and chain.ok

    with psycopg2.connect(host=host, port=port, user="postgres", dbname=postgres_db) as pg, pg.cursor() as cur:
        cur.execute("SELECT run_id, pipeline_name, status FROM runs")
        runs = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        cur.execute("SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        materialized = {(k, p) for k, p in cur.fetchall()}
        cur.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'deliveries'")
        partitions = [r[0] for r in cur.fetchall()]
    assert runs == {ingest.run_id: ("ingest_delivery", "SUCCESS"), decide.run_id: ("match_and_decide", "SUCCESS")}
    assert {(dg.AssetKey.from_db_string(k).to_user_string(), p) for k, p in materialized} == {
        ("catalog_delivery", "d-pg"), ("delivery_rights", "d-pg"), ("track_fingerprints", "d-pg"), ("fingerprint_index", "d-pg"),
        ("optout_registry", None), ("duplicate_clusters", None), ("optout_matches", None), ("rights_decisions", None)}
    assert partitions == ["d-pg"]
