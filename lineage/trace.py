"""Trace a song to every model it reached, and a model back to every song, rights holder and consent.

Each trace is one dictionary of plain values (JSON-ready with ``default=str``), read from the ledger
alone. The queries filter on indexed keys first (track, release, run), so a trace stays fast on a
ledger with millions of shard rows and exposure rows (see ``bench/trace_query.py``).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

_JSON_COLUMNS = {"evidence", "metrics", "config", "details"}


class TraceNotFound(LookupError):
    """The ISRC, release or run is not in the ledger."""


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    out = []
    for row in cursor.fetchall():
        item = dict(zip(names, row, strict=True))
        for key in _JSON_COLUMNS.intersection(item):
            if isinstance(item[key], str):
                try:
                    item[key] = json.loads(item[key])
                except ValueError:
                    pass
        out.append(item)
    return out


def trace_isrc(con: duckdb.DuckDBPyConnection, isrc: str) -> dict[str, Any]:
    """Fingerprint, every decision over time, releases, shards (with rows), runs, models and exposure."""
    from schemas.identifiers import normalize_isrc

    isrc = normalize_isrc(isrc)
    tracks = _rows(con, """
        SELECT t.track_id, t.isrc, t.title, t.artists, t.album, t.license_tag, t.ai_generated, t.delivery_id,
               t.source_path, t.audio_sha256, t.duration_s, t.ingested_at,
               f.algorithm AS fp_algorithm, f.seconds_used AS fp_seconds, f.items_sha256 AS fp_items_sha256,
               left(f.fingerprint, 24) AS fp_prefix, f.computed_at AS fp_computed_at,
               dc.cluster_id AS duplicate_cluster
        FROM tracks t LEFT JOIN fingerprints f USING (track_id) LEFT JOIN duplicate_clusters dc USING (track_id)
        WHERE t.isrc = ? ORDER BY t.ingested_at""", [isrc])
    if not tracks:
        raise TraceNotFound(f"ISRC {isrc} is not in the catalog")
    ids = [t["track_id"] for t in tracks]
    # A one-column table of the track ids, joined: hash joins beat list_contains over large tables.
    keys = "(SELECT unnest(?::VARCHAR[]) AS track_id)"
    contributors = _rows(con, f"SELECT c.track_id, c.party_id, c.name, c.role FROM contributors c "
                              f"JOIN {keys} k USING (track_id) ORDER BY c.role, c.name", [ids])
    matches = _rows(con, f"""SELECT m.track_id, m.kind, m.matched_ref, m.score, m.threshold, m.offset_s, m.span_s,
                                    m.matched_at
                             FROM audio_matches m JOIN {keys} k USING (track_id)
                             ORDER BY m.kind, m.score DESC""", [ids])
    decisions = _rows(con, f"""
        SELECT d.decision_id, d.track_id, d.purpose, d.territory, d.on_date, d.allowed, d.reason_codes,
               d.explanation, d.policy_hash, d.inputs_hash, d.deal_id, d.consent_ids, d.decided_at
        FROM decisions d JOIN {keys} k USING (track_id) ORDER BY d.decided_at, d.purpose, d.decision_id""", [ids])
    releases = _rows(con, f"""
        SELECT r.release_id, r.purpose, r.territory, r.on_date, r.status, r.policy_hash, rt.decision_id,
               r.proposed_by, r.proposed_at,
               (SELECT arg_max(a.actor, a.recorded_at) FROM approvals a
                 WHERE a.release_id = r.release_id AND a.action = 'approve') AS approved_by
        FROM release_tracks rt JOIN {keys} k USING (track_id) JOIN releases r USING (release_id)
        ORDER BY r.proposed_at""", [ids])
    shards = _rows(con, f"""
        SELECT b.release_id, b.build_id, b.manifest_uri, b.manifest_sha256, b.built_at, f.shard_index,
               f.uri AS shard_uri, f.sha256 AS shard_sha256, f.merkle_root, f.row_count AS shard_rows,
               ft.row_count AS rows
        FROM shard_file_tracks ft JOIN {keys} k USING (track_id)
        JOIN shard_files f USING (build_id, shard_index) JOIN shard_builds b USING (build_id)
        ORDER BY b.built_at, f.shard_index""", [ids])
    models = _rows(con, f"""
        SELECT r.run_id, r.release_id, r.status, r.model, r.actor, r.started_at, r.ended_at, r.manifest_sha256,
               r.checkpoint_uri, r.checkpoint_sha256, e.track_id, e.samples, e.fraction,
               r.samples_consumed AS run_samples
        FROM training_exposure e JOIN {keys} k USING (track_id) JOIN training_runs r USING (run_id)
        ORDER BY r.started_at, r.run_id""", [ids])
    return {"isrc": isrc, "tracks": tracks, "contributors": contributors, "audio_matches": matches,
            "decisions": decisions, "releases": releases, "shards": shards, "models": models,
            "summary": {"decisions": len(decisions), "releases": len(releases),
                        "shard_rows": sum(int(s["rows"]) for s in shards), "models": len(models),
                        "samples_seen": sum(int(m["samples"]) for m in models)}}


def trace_release(con: duckdb.DuckDBPyConnection, release_id: str) -> dict[str, Any]:
    """A release: its purpose, policy, approvals, tracks with decisions, shard builds and runs."""
    release = _rows(con, "SELECT * FROM releases WHERE release_id = ?", [release_id])
    if not release:
        raise TraceNotFound(f"release {release_id} does not exist")
    approvals = _rows(con, "SELECT actor, action, comment, recorded_at FROM approvals WHERE release_id = ? "
                           "ORDER BY recorded_at", [release_id])
    tracks = _rows(con, """
        SELECT rt.track_id, rt.isrc, t.title, t.artists, d.decision_id, d.allowed, d.reason_codes, d.deal_id,
               d.consent_ids
        FROM release_tracks rt JOIN tracks t USING (track_id) LEFT JOIN decisions d USING (decision_id)
        WHERE rt.release_id = ? ORDER BY rt.isrc""", [release_id])
    builds = _rows(con, "SELECT build_id, manifest_uri, manifest_sha256, merkle_root, shard_count, row_count, "
                        "track_count, excluded_count, acknowledged, built_by, built_at FROM shard_builds "
                        "WHERE release_id = ? ORDER BY built_at", [release_id])
    exclusions = _rows(con, "SELECT build_id, track_id, isrc, reason_code, message FROM shard_exclusions "
                            "WHERE release_id = ? ORDER BY build_id, isrc", [release_id])
    runs = _rows(con, "SELECT run_id, status, model, actor, samples_consumed, manifest_sha256, checkpoint_uri, "
                      "checkpoint_sha256, started_at, ended_at FROM training_runs WHERE release_id = ? "
                      "ORDER BY started_at", [release_id])
    refusals = _rows(con, "SELECT refusal_id, run_id, actor, reason_codes, message, recorded_at "
                          "FROM training_refusals WHERE release_id = ? ORDER BY recorded_at", [release_id])
    return {"release": release[0], "approvals": approvals, "tracks": tracks, "shard_builds": builds,
            "shard_exclusions": exclusions, "runs": runs, "training_refusals": refusals}


def trace_model(con: duckdb.DuckDBPyConnection, run_id: str, *, limit: int | None = None) -> dict[str, Any]:
    """Every track behind a model with its rights holders (shares), license, consents, decision and exposure.

    ``limit`` keeps the tracks with the most samples (ties by ISRC); totals and licenses always
    cover every track.
    """
    run = _rows(con, """SELECT run_id, release_id, status, model, actor, config, manifest_uri, manifest_sha256,
                               policy_hash, code_commit, code_dirty, torch_version, device, world_size, started_at,
                               ended_at, metrics, samples_consumed, checkpoint_uri, checkpoint_sha256,
                               acknowledged_by, acknowledged_reason, acknowledged_tracks
                        FROM training_runs WHERE run_id = ?""", [run_id])
    if not run:
        raise TraceNotFound(f"training run {run_id} does not exist")
    release_id = run[0]["release_id"]
    tracks = _rows(con, """
        WITH e AS (SELECT track_id, isrc, samples, fraction FROM training_exposure WHERE run_id = ?
                   ORDER BY samples DESC, isrc LIMIT ?),
        d AS (SELECT e.*, d.decision_id, d.allowed, d.reason_codes, d.explanation, d.policy_hash, d.decided_at,
                     d.deal_id, d.consent_ids
              FROM e LEFT JOIN (SELECT track_id, decision_id FROM release_tracks WHERE release_id = ?) rt
                   USING (track_id)
              LEFT JOIN decisions d ON d.decision_id = rt.decision_id),
        holders AS (
            SELECT rc.deal_id, rc.isrc, list({'party_id': rc.party_id, 'name': p.name, 'share': rc.share}
                                             ORDER BY rc.share DESC, rc.party_id) AS rights_holders
            FROM rights_controllers rc JOIN (SELECT DISTINCT deal_id, isrc FROM d) k USING (deal_id, isrc)
            LEFT JOIN parties p USING (party_id) GROUP BY ALL),
        cons AS (
            SELECT d.decision_id, list({'consent_id': c.consent_id, 'party_id': c.party_id, 'scope': c.scope,
                                        'ai_training': c.ai_training,
                                        'ai_generative_training': c.ai_generative_training,
                                        'data_mining': c.data_mining, 'evidence_sha256': c.evidence_sha256,
                                        'revoked_at': c.revoked_at} ORDER BY c.consent_id) AS consents
            FROM d, unnest(d.consent_ids) AS u(consent_id) JOIN consents c USING (consent_id) GROUP BY ALL)
        SELECT d.track_id, d.isrc, t.title, t.artists, d.samples, d.fraction, d.decision_id, d.allowed,
               d.reason_codes, d.explanation, d.policy_hash, d.decided_at, d.deal_id, dl.license, dl.conditions,
               d.consent_ids, coalesce(cons.consents, []) AS consents,
               coalesce(holders.rights_holders, []) AS rights_holders
        FROM d JOIN tracks t USING (track_id)
        LEFT JOIN deals dl ON dl.deal_id = d.deal_id
        LEFT JOIN holders ON holders.deal_id = d.deal_id AND holders.isrc = d.isrc
        LEFT JOIN cons ON cons.decision_id = d.decision_id
        ORDER BY d.samples DESC, d.isrc""", [run_id, limit, release_id])
    attribution = _rows(con, """SELECT party_id, name, tracks, samples_milli, fraction FROM training_attribution
                                WHERE run_id = ? ORDER BY samples_milli DESC, party_id""", [run_id])
    totals = con.execute("SELECT count(*), coalesce(sum(samples), 0) FROM training_exposure WHERE run_id = ?",
                         [run_id]).fetchone()
    licenses = dict(con.execute("""
        SELECT coalesce(dl.license, 'unknown') AS license, count(*) AS tracks
        FROM (SELECT track_id FROM training_exposure WHERE run_id = ?) e
        LEFT JOIN (SELECT track_id, decision_id FROM release_tracks WHERE release_id = ?) rt USING (track_id)
        LEFT JOIN decisions d ON d.decision_id = rt.decision_id LEFT JOIN deals dl ON dl.deal_id = d.deal_id
        GROUP BY ALL ORDER BY tracks DESC, license""", [run_id, release_id]).fetchall())
    approvals = _rows(con, "SELECT actor, action, comment, recorded_at FROM approvals WHERE release_id = ? "
                           "ORDER BY recorded_at", [release_id])
    return {"run": run[0], "release_id": release_id, "approvals": approvals, "tracks": tracks,
            "rights_holders": attribution, "licenses": licenses, "tracks_total": int(totals[0]) if totals else 0,
            "samples_consumed": int(totals[1]) if totals else 0}
