"""Trace a song to every model it reached, and a model back to every song, rights holder and consent."""

from __future__ import annotations

import json
from typing import Any

import duckdb


class TraceNotFound(LookupError):
    """The ISRC, release or run is not in the ledger."""


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    out = []
    for row in cursor.fetchall():
        item = dict(zip(names, row, strict=True))
        for key, value in item.items():
            if isinstance(value, str) and key in {"evidence", "metrics", "config"}:
                try:
                    item[key] = json.loads(value)
                except ValueError:
                    pass
        out.append(item)
    return out


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])


def trace_isrc(con: duckdb.DuckDBPyConnection, isrc: str) -> dict[str, Any]:
    """Fingerprint, decisions over time, releases, shards, training runs and exposure for one recording."""
    from schemas.identifiers import normalize_isrc

    isrc = normalize_isrc(isrc)
    tracks = _rows(con, """
        SELECT t.track_id, t.isrc, t.title, t.artists, t.album, t.license_tag, t.delivery_id, t.source_path,
               t.audio_sha256, t.duration_s, f.algorithm AS fp_algorithm, f.seconds_used AS fp_seconds,
               left(f.fingerprint, 24) AS fp_prefix
        FROM tracks t LEFT JOIN fingerprints f USING (track_id) WHERE t.isrc = ?""", [isrc])
    if not tracks:
        raise TraceNotFound(f"ISRC {isrc} is not in the catalog")
    track_ids = [t["track_id"] for t in tracks]
    matches = _rows(con, """SELECT track_id, kind, matched_ref, score, threshold, offset_s, span_s
                            FROM audio_matches WHERE list_contains(?, track_id) ORDER BY kind, score DESC""",
                    [track_ids])
    decisions = _rows(con, """
        SELECT decision_id, purpose, territory, on_date, allowed, reason_codes, explanation, policy_hash,
               deal_id, consent_ids, decided_at
        FROM decisions WHERE list_contains(?, track_id) ORDER BY decided_at, purpose""", [track_ids])
    releases = _rows(con, """
        SELECT r.release_id, r.purpose, r.status, r.policy_hash, rt.decision_id,
               (SELECT any_value(a.actor ORDER BY a.recorded_at DESC) FROM approvals a
                 WHERE a.release_id = r.release_id AND a.action = 'approve') AS approved_by
        FROM release_tracks rt JOIN releases r USING (release_id)
        WHERE list_contains(?, rt.track_id) ORDER BY r.proposed_at""", [track_ids])
    shards = []
    if _has_table(con, "shard_file_tracks"):
        shards = _rows(con, """
            SELECT b.release_id, b.build_id, b.manifest_uri, f.uri AS shard_uri, ft.row_count AS rows
            FROM shard_file_tracks ft JOIN shard_files f USING (build_id, shard_index)
            JOIN shard_builds b USING (build_id)
            WHERE list_contains(?, ft.track_id) ORDER BY b.built_at, f.shard_index""", [track_ids])
    runs = []
    if _has_table(con, "training_exposure"):
        runs = _rows(con, """
            SELECT r.run_id, r.release_id, r.status, r.model, r.checkpoint_uri, r.checkpoint_sha256,
                   e.samples, e.fraction, r.samples_consumed, r.ended_at
            FROM training_exposure e JOIN training_runs r USING (run_id)
            WHERE list_contains(?, e.track_id) ORDER BY r.started_at""", [track_ids])
    return {"isrc": isrc, "tracks": tracks, "audio_matches": matches, "decisions": decisions,
            "releases": releases, "shards": shards, "models": runs}


def trace_release(con: duckdb.DuckDBPyConnection, release_id: str) -> dict[str, Any]:
    """A release: its purpose, policy, approvals, tracks with decisions, shard builds and runs."""
    release = _rows(con, "SELECT * FROM releases WHERE release_id = ?", [release_id])
    if not release:
        raise TraceNotFound(f"release {release_id} does not exist")
    approvals = _rows(con, "SELECT actor, action, comment, recorded_at FROM approvals WHERE release_id = ? "
                           "ORDER BY recorded_at", [release_id])
    tracks = _rows(con, """
        SELECT rt.track_id, rt.isrc, t.title, t.artists, d.decision_id, d.allowed, d.reason_codes, d.deal_id
        FROM release_tracks rt JOIN tracks t USING (track_id) LEFT JOIN decisions d USING (decision_id)
        WHERE rt.release_id = ? ORDER BY rt.isrc""", [release_id])
    builds = _rows(con, "SELECT build_id, manifest_uri, manifest_sha256, shard_count, row_count, built_by, built_at "
                        "FROM shard_builds WHERE release_id = ? ORDER BY built_at", [release_id]) \
        if _has_table(con, "shard_builds") else []
    runs = _rows(con, "SELECT run_id, status, model, samples_consumed, checkpoint_uri FROM training_runs "
                      "WHERE release_id = ? ORDER BY started_at", [release_id]) \
        if _has_table(con, "training_runs") else []
    return {"release": release[0], "approvals": approvals, "tracks": tracks, "shard_builds": builds, "runs": runs}


def trace_model(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    """Every track, rights holder (with shares), license, consent and decision behind a model, with exposure."""
    if not _has_table(con, "training_runs"):
        raise TraceNotFound(f"training run {run_id} does not exist")
    run = _rows(con, """SELECT run_id, release_id, status, model, actor, config, manifest_uri, manifest_sha256,
                               policy_hash, code_commit, code_dirty, torch_version, device, world_size, started_at,
                               ended_at, metrics, samples_consumed, checkpoint_uri, checkpoint_sha256,
                               acknowledged_by, acknowledged_reason
                        FROM training_runs WHERE run_id = ?""", [run_id])
    if not run:
        raise TraceNotFound(f"training run {run_id} does not exist")
    release_id = run[0]["release_id"]
    tracks = _rows(con, """
        SELECT e.track_id, e.isrc, t.title, t.artists, e.samples, e.fraction,
               d.decision_id, d.allowed, d.reason_codes, d.policy_hash, d.deal_id, d.consent_ids,
               dl.license, dl.conditions
        FROM training_exposure e
        JOIN tracks t USING (track_id)
        LEFT JOIN release_tracks rt ON rt.release_id = ? AND rt.track_id = e.track_id
        LEFT JOIN decisions d ON d.decision_id = rt.decision_id
        LEFT JOIN deals dl ON dl.deal_id = d.deal_id
        WHERE e.run_id = ? ORDER BY e.samples DESC, e.isrc""", [release_id, run_id])
    holders = _rows(con, """
        SELECT rc.isrc, rc.party_id, p.name, rc.share
        FROM rights_controllers rc
        JOIN decisions d ON d.deal_id = rc.deal_id AND d.isrc = rc.isrc
        JOIN release_tracks rt ON rt.decision_id = d.decision_id AND rt.release_id = ?
        LEFT JOIN parties p USING (party_id) ORDER BY rc.isrc, rc.party_id""", [release_id])
    by_isrc: dict[str, list[dict[str, Any]]] = {}
    for h in holders:
        by_isrc.setdefault(h["isrc"], []).append({"party_id": h["party_id"], "name": h["name"], "share": h["share"]})
    for t in tracks:
        t["rights_holders"] = by_isrc.get(t["isrc"], [])
    attribution = _rows(con, """SELECT party_id, name, tracks, samples_milli, fraction FROM training_attribution
                                WHERE run_id = ? ORDER BY samples_milli DESC, party_id""", [run_id]) \
        if _has_table(con, "training_attribution") else []
    licenses: dict[str, int] = {}
    for t in tracks:
        licenses[t["license"] or "unknown"] = licenses.get(t["license"] or "unknown", 0) + 1
    approvals = _rows(con, "SELECT actor, action, comment, recorded_at FROM approvals WHERE release_id = ? "
                           "ORDER BY recorded_at", [release_id])
    return {"run": run[0], "release_id": release_id, "approvals": approvals, "tracks": tracks,
            "rights_holders": attribution, "licenses": licenses,
            "samples_consumed": sum(int(t["samples"]) for t in tracks)}
