"""What happened in the pipeline, in numbers a person reads at a glance."""

from __future__ import annotations

from typing import Any

import duckdb


def pipeline_summary(con: duckdb.DuckDBPyConnection, *, release_id: str, run_id: str) -> dict[str, Any]:
    """Counts per stage for one release and run, from the ledger alone."""
    one = lambda sql, params=(): con.execute(sql, list(params)).fetchone()
    release = con.execute("SELECT purpose, territory, on_date, status, track_count, policy_hash FROM releases "
                          "WHERE release_id = ?", [release_id]).fetchone()
    purpose = release[0] if release else None
    # the decisions in force for the release's purpose, territory, date and policy (an identical decision is
    # stored once, so the newest row of ``decisions`` is not always the current one)
    key = [release[0], release[1], release[2], release[5]] if release else [None] * 4
    latest = """
        SELECT d.allowed, d.reason_codes FROM current_decisions c JOIN decisions d USING (decision_id)
        WHERE c.purpose = ? AND c.territory = ? AND c.on_date = ? AND c.policy_hash = ?"""
    denied = con.execute(f"""
        SELECT code, count(*) FROM ({latest}) d, unnest(d.reason_codes) AS u(code)
        WHERE NOT d.allowed GROUP BY code ORDER BY count(*) DESC, code""", key).fetchall()
    approval = con.execute("SELECT actor, recorded_at, comment FROM approvals WHERE release_id = ? AND "
                           "action = 'approve' ORDER BY recorded_at DESC LIMIT 1", [release_id]).fetchone()
    shards = one("SELECT count(*), coalesce(sum(f.row_count), 0) FROM shard_files f JOIN shard_builds b "
                 "USING (build_id) WHERE b.release_id = ? AND b.build_id = (SELECT build_id FROM shard_builds "
                 "WHERE release_id = ? ORDER BY built_at DESC LIMIT 1)", [release_id, release_id])
    run = con.execute("SELECT status, device, world_size, samples_consumed, metrics, checkpoint_uri, "
                      "checkpoint_sha256 FROM training_runs WHERE run_id = ?", [run_id]).fetchone()
    return {
        "tracks_ingested": one("SELECT count(*) FROM tracks")[0],
        "quarantined": dict(con.execute("SELECT stage || ':' || reason_code, count(*) FROM quarantine "
                                        "GROUP BY ALL ORDER BY ALL").fetchall()),
        "fingerprinted": one("SELECT count(*) FROM fingerprints")[0],
        "optout_matches": one("SELECT count(*) FROM audio_matches WHERE kind = 'optout' AND score >= threshold")[0],
        "duplicate_clusters": one("SELECT count(DISTINCT cluster_id) FROM duplicate_clusters")[0],
        "purpose": purpose,
        "allowed": one(f"SELECT count(*) FROM ({latest}) WHERE allowed", key)[0],
        "denied": one(f"SELECT count(*) FROM ({latest}) WHERE NOT allowed", key)[0],
        "denied_by_reason": dict(denied),
        "release": {"release_id": release_id, "status": release[3] if release else None,
                    "tracks": release[4] if release else 0, "policy_hash": release[5] if release else None,
                    "approved_by": approval[0] if approval else None,
                    "approved_at": approval[1] if approval else None,
                    "comment": approval[2] if approval else None},
        "shards": {"files": shards[0], "samples": shards[1]},
        "model": {"run_id": run_id, "status": run[0] if run else None, "device": run[1] if run else None,
                  "world_size": run[2] if run else None, "samples_consumed": run[3] if run else 0,
                  "metrics": run[4] if run else None, "checkpoint_uri": run[5] if run else None,
                  "checkpoint_sha256": run[6] if run else None},
    }
