"""Trace a song to every model it reached, and a model back to every song, rights holder and consent.

Each trace is a JSON document built by DuckDB itself (``trace_*_json``, what ``--json`` prints) and,
parsed, a dictionary of plain JSON values (``trace_*``); timestamps are ISO 8601 strings in UTC.

A model's training data never changes once its run has completed, and a release's tracks and the
decisions behind them are frozen when it is proposed. Those parts come from a stored snapshot
(:mod:`lineage.snapshots`, built by :func:`snapshot_model` / :func:`snapshot_release` when the run
completes) when there is one, and are computed from the ledger otherwise; what can still change
(the run and release status, approvals, consents revoked since, release alerts) is always read live.
Each trace says which it used under ``"snapshot"``. ``bench/trace_query.py`` times all of this.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from lineage import snapshots
from lineage.snapshots import SnapshotRecord
from schemas.identifiers import normalize_isrc
from store.ledger import authorize
from store.roles import Principal, RoleBook


class TraceNotFound(LookupError):
    """The ISRC, release or run is not in the ledger."""


def _ts(column: str) -> str:
    """SQL for a TIMESTAMPTZ as ISO 8601 in UTC, whatever the session's time zone."""
    return f"strftime({column} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%f+00:00')"


def _sections(con: duckdb.DuckDBPyConnection, sections: dict[str, str],
              params: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
    """Run every ``SELECT <list>, <count>, <total>`` section as one statement: {name: (JSON, count, total)}.

    One UNION ALL keeps the planner's join ordering per section (a cross join of all sections costs
    more to plan than to run) and pays DuckDB's fixed cost per statement once.
    """
    sql = "\nUNION ALL ".join(
        f"SELECT {i} AS i, coalesce(to_json(v), '[]')::VARCHAR, coalesce(n, 0), coalesce(s, 0) "
        f"FROM ({query}) q(v, n, s)" for i, query in enumerate(sections.values()))
    names = list(sections)
    try:
        rows = con.execute(sql, params).fetchall()
    except duckdb.CatalogException as exc:
        # A ledger written before snapshots existed, opened read-only: trace everything live.
        if "trace_snapshots" not in str(exc) or "snapshot" not in sections:
            raise
        return {**_sections(con, {k: v for k, v in sections.items() if k != "snapshot"}, params),
                "snapshot": ("[]", 0, 0)}
    return {names[i]: (text, int(n), int(s)) for i, text, n, s in rows}


def _document(parts: list[tuple[str, str | bytes | memoryview]]) -> bytes:
    """A JSON object (UTF-8) from (key, JSON text) pairs, without parsing the texts and copying them once."""
    pieces: list[bytes | memoryview] = []
    for key, text in parts:
        pieces += [b",", json.dumps(key).encode(), b":", text.encode("utf-8") if isinstance(text, str) else text]
    pieces[0] = b"{"
    pieces.append(b"}")
    return b"".join(pieces)


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _only(text: str) -> str:
    """The single element of a one-element JSON array text."""
    return text[1:-1]


def _snapshot_info(record: SnapshotRecord | None, problem: str | None) -> dict[str, Any]:
    if record is not None and problem is None:
        return {"used": True, "problem": None, **record.describe()}
    return {"used": False, "problem": problem, **(record.describe() if record else {})}


def _record(text: str) -> SnapshotRecord | None:
    rows = json.loads(text)
    return SnapshotRecord(**rows[0]) if rows else None


def _snapshot_row(kind: str, key: str) -> str:
    return (f"SELECT list({{'kind': kind, 'subject': subject, 'schema_version': schema_version, 'uri': uri, "
            f"'sha256': sha256, 'bytes': bytes, 'track_count': track_count, 'built_by': built_by, "
            f"'built_at': {_ts('built_at')}}}), count(*), 0 FROM trace_snapshots "
            f"WHERE kind = '{kind}' AND subject = ${key}")


# ISRC ---------------------------------------------------------------------------------------------

_KEYS = "(SELECT track_id FROM tracks WHERE isrc = $isrc)"
_ISRC_SECTIONS = {
    "tracks": f"""
        SELECT list({{'track_id': t.track_id, 'isrc': t.isrc, 'title': t.title, 'artists': t.artists,
                     'album': t.album, 'license_tag': t.license_tag, 'ai_generated': t.ai_generated,
                     'delivery_id': t.delivery_id, 'source_path': t.source_path, 'audio_sha256': t.audio_sha256,
                     'duration_s': t.duration_s, 'ingested_at': {_ts('t.ingested_at')},
                     'fp_algorithm': f.algorithm, 'fp_seconds': f.seconds_used, 'fp_items_sha256': f.items_sha256,
                     'fp_prefix': left(f.fingerprint, 24), 'fp_computed_at': {_ts('f.computed_at')},
                     'duplicate_cluster': dc.cluster_id}} ORDER BY t.ingested_at, t.track_id), count(*), 0
        FROM tracks t LEFT JOIN fingerprints f USING (track_id) LEFT JOIN duplicate_clusters dc USING (track_id)
        WHERE t.isrc = $isrc""",
    "contributors": f"""
        SELECT list({{'track_id': c.track_id, 'party_id': c.party_id, 'name': c.name, 'role': c.role}}
                    ORDER BY c.role, c.name), count(*), 0
        FROM contributors c JOIN {_KEYS} k USING (track_id)""",
    "audio_matches": f"""
        SELECT list({{'track_id': m.track_id, 'kind': m.kind, 'matched_ref': m.matched_ref,
                     'method': coalesce(m.method, 'chromaprint'), 'score': m.score, 'threshold': m.threshold,
                     'offset_s': m.offset_s, 'span_s': m.span_s, 'speed': m.speed,
                     'matched_at': {_ts('m.matched_at')}}} ORDER BY m.kind, m.score DESC), count(*), 0
        FROM audio_matches m JOIN {_KEYS} k USING (track_id)""",
    "decisions": f"""
        SELECT list({{'decision_id': d.decision_id, 'track_id': d.track_id, 'purpose': d.purpose,
                     'territory': d.territory, 'on_date': d.on_date, 'allowed': d.allowed,
                     'reason_codes': d.reason_codes, 'explanation': d.explanation, 'policy_hash': d.policy_hash,
                     'inputs_hash': d.inputs_hash, 'deal_id': d.deal_id, 'consent_ids': d.consent_ids,
                     'decided_at': {_ts('d.decided_at')}}} ORDER BY d.decided_at, d.purpose, d.decision_id),
               count(*), 0
        FROM decisions d JOIN {_KEYS} k USING (track_id)""",
    "releases": f"""
        SELECT list({{'release_id': r.release_id, 'purpose': r.purpose, 'territory': r.territory,
                     'on_date': r.on_date, 'status': r.status, 'policy_hash': r.policy_hash,
                     'decision_id': rt.decision_id, 'proposed_by': r.proposed_by,
                     'proposed_at': {_ts('r.proposed_at')},
                     'approved_by': (SELECT arg_max(a.actor, a.recorded_at) FROM approvals a
                                     WHERE a.release_id = r.release_id AND a.action = 'approve')}}
                    ORDER BY r.proposed_at, r.release_id), count(*), 0
        FROM release_tracks rt JOIN {_KEYS} k USING (track_id) JOIN releases r USING (release_id)""",
    "shards": f"""
        SELECT list({{'release_id': b.release_id, 'build_id': b.build_id, 'manifest_uri': b.manifest_uri,
                     'manifest_sha256': b.manifest_sha256, 'built_at': {_ts('b.built_at')},
                     'shard_index': f.shard_index, 'shard_uri': f.uri, 'shard_sha256': f.sha256,
                     'merkle_root': f.merkle_root, 'shard_rows': f.row_count, 'rows': ft.row_count}}
                    ORDER BY b.built_at, f.shard_index), count(*), sum(ft.row_count)
        FROM shard_file_tracks ft JOIN {_KEYS} k USING (track_id)
        JOIN shard_files f USING (build_id, shard_index) JOIN shard_builds b USING (build_id)""",
    "models": f"""
        SELECT list({{'run_id': r.run_id, 'release_id': r.release_id, 'status': r.status, 'model': r.model,
                     'actor': r.actor, 'started_at': {_ts('r.started_at')}, 'ended_at': {_ts('r.ended_at')},
                     'manifest_sha256': r.manifest_sha256, 'checkpoint_uri': r.checkpoint_uri,
                     'checkpoint_sha256': r.checkpoint_sha256, 'track_id': e.track_id, 'samples': e.samples,
                     'fraction': e.fraction, 'run_samples': r.samples_consumed}} ORDER BY r.started_at, r.run_id),
               count(*), sum(e.samples)
        FROM training_exposure e JOIN {_KEYS} k USING (track_id) JOIN training_runs r USING (run_id)""",
}


def trace_isrc_json(con: duckdb.DuckDBPyConnection, isrc: str) -> bytes:
    """:func:`trace_isrc` as the UTF-8 JSON DuckDB builds (what ``trace isrc --json`` prints)."""

    isrc = normalize_isrc(isrc)
    parts = _sections(con, _ISRC_SECTIONS, {"isrc": isrc})
    if parts["tracks"][1] == 0:
        raise TraceNotFound(f"ISRC {isrc} is not in the catalog")
    summary = {"decisions": parts["decisions"][1], "releases": parts["releases"][1],
               "shard_rows": parts["shards"][2], "models": parts["models"][1], "samples_seen": parts["models"][2]}
    return _document([("isrc", json.dumps(isrc)), *((name, text) for name, (text, _, _) in parts.items()),
                      ("summary", json.dumps(summary))])


def trace_isrc(con: duckdb.DuckDBPyConnection, isrc: str) -> dict[str, Any]:
    """Fingerprint, every decision over time, releases, shards (with rows), runs, models and exposure."""
    result: dict[str, Any] = json.loads(trace_isrc_json(con, isrc))
    return result


# Model --------------------------------------------------------------------------------------------

_RUN_RELEASE = "(SELECT release_id FROM training_runs WHERE run_id = $run_id)"
_MODEL_SECTIONS = {
    "run": f"""
        SELECT list({{'run_id': run_id, 'release_id': release_id, 'status': status, 'model': model, 'actor': actor,
                     'config': config, 'manifest_uri': manifest_uri, 'manifest_sha256': manifest_sha256,
                     'policy_hash': policy_hash, 'code_commit': code_commit, 'code_dirty': code_dirty,
                     'torch_version': torch_version, 'device': device, 'world_size': world_size,
                     'started_at': {_ts('started_at')}, 'ended_at': {_ts('ended_at')}, 'metrics': metrics,
                     'samples_consumed': samples_consumed, 'checkpoint_uri': checkpoint_uri,
                     'checkpoint_sha256': checkpoint_sha256, 'acknowledged_by': acknowledged_by,
                     'acknowledged_reason': acknowledged_reason, 'acknowledged_tracks': acknowledged_tracks}}),
               count(*), max(samples_consumed)
        FROM training_runs WHERE run_id = $run_id""",
    "release": f"""
        SELECT list({{'release_id': release_id, 'purpose': purpose, 'territory': territory, 'on_date': on_date,
                     'status': status, 'policy_hash': policy_hash, 'track_count': track_count,
                     'content_sha256': content_sha256}}), count(*), 0
        FROM releases WHERE release_id = {_RUN_RELEASE}""",
    "approvals": f"""
        SELECT list({{'actor': actor, 'action': action, 'comment': comment, 'recorded_at': {_ts('recorded_at')}}}
                    ORDER BY recorded_at), count(*), 0
        FROM approvals WHERE release_id = {_RUN_RELEASE}""",
    "rights_holders": """
        SELECT list({'party_id': party_id, 'name': name, 'tracks': tracks, 'samples_milli': samples_milli,
                     'fraction': fraction} ORDER BY samples_milli DESC, party_id), count(*), 0
        FROM training_attribution WHERE run_id = $run_id""",
    "release_alerts": f"""
        SELECT list({{'track_id': track_id, 'isrc': isrc, 'reason_codes': reason_codes, 'checked_on': checked_on,
                     'detected_at': {_ts('detected_at')}}} ORDER BY isrc, track_id), count(*), 0
        FROM release_alerts WHERE release_id = {_RUN_RELEASE}""",
    "revoked": f"""
        SELECT list({{'consent_id': consent_id, 'party_id': party_id, 'revoked_at': {_ts('revoked_at')}}}
                    ORDER BY revoked_at, consent_id), count(*), 0
        FROM consents WHERE revoked_at IS NOT NULL""",
    "snapshot": _snapshot_row("model", "run_id"),
}

_MODEL_TRACKS = f"""
WITH e AS (SELECT track_id, isrc, samples, fraction FROM training_exposure WHERE run_id = $run_id),
d AS (SELECT e.*, d.decision_id, d.allowed, d.reason_codes, d.explanation, d.policy_hash, d.decided_at,
             d.deal_id, d.consent_ids
      FROM e LEFT JOIN (SELECT track_id, decision_id FROM release_tracks WHERE release_id = {_RUN_RELEASE}) rt
           USING (track_id)
      LEFT JOIN decisions d ON d.decision_id = rt.decision_id),
holders AS (
    SELECT rc.deal_id, rc.isrc, list({{'party_id': rc.party_id, 'name': p.name, 'share': rc.share}}
                                     ORDER BY rc.share DESC, rc.party_id) AS rights_holders
    FROM rights_controllers rc JOIN (SELECT DISTINCT deal_id, isrc FROM d) k USING (deal_id, isrc)
    LEFT JOIN parties p USING (party_id) GROUP BY ALL),
cons AS (
    SELECT d.decision_id, list({{'consent_id': c.consent_id, 'party_id': c.party_id, 'scope': c.scope,
                                'ai_training': c.ai_training, 'ai_generative_training': c.ai_generative_training,
                                'data_mining': c.data_mining, 'evidence_sha256': c.evidence_sha256,
                                'revoked_at': {_ts('c.revoked_at')}}} ORDER BY c.consent_id) AS consents
    FROM d, unnest(d.consent_ids) AS u(consent_id) JOIN consents c USING (consent_id) GROUP BY ALL),
rows AS (
    SELECT d.samples, d.isrc, dl.license, d.consent_ids,
           to_json({{'track_id': d.track_id, 'isrc': d.isrc, 'title': t.title, 'artists': t.artists,
                    'samples': d.samples, 'fraction': d.fraction, 'decision_id': d.decision_id, 'allowed': d.allowed,
                    'reason_codes': d.reason_codes, 'explanation': d.explanation, 'policy_hash': d.policy_hash,
                    'decided_at': {_ts('d.decided_at')}, 'deal_id': d.deal_id, 'license': dl.license,
                    'conditions': dl.conditions, 'consent_ids': d.consent_ids,
                    'consents': coalesce(cons.consents, []),
                    'rights_holders': coalesce(holders.rights_holders, [])}})::VARCHAR AS doc
    FROM d JOIN tracks t USING (track_id)
    LEFT JOIN deals dl ON dl.deal_id = d.deal_id
    LEFT JOIN holders ON holders.deal_id = d.deal_id AND holders.isrc = d.isrc
    LEFT JOIN cons ON cons.decision_id = d.decision_id)
SELECT coalesce(list(doc ORDER BY samples DESC, isrc), []), count(*), coalesce(sum(samples), 0),
       (SELECT coalesce(list(DISTINCT c ORDER BY c), []) FROM rows, unnest(consent_ids) u(c)),
       (SELECT coalesce(list([license, tracks::VARCHAR] ORDER BY tracks DESC, license), []) FROM
            (SELECT coalesce(license, 'unknown') AS license, count(*) AS tracks FROM rows GROUP BY ALL))
FROM rows"""


def _model_bom(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[list[str], dict[str, Any]]:
    """Every track behind a run (one JSON text each, most samples first) and the snapshot header."""
    row = con.execute(_MODEL_TRACKS, {"run_id": run_id}).fetchone()
    docs, total, samples, consent_ids, licenses = row if row else ([], 0, 0, [], [])
    header = {"tracks_total": int(total), "samples_consumed": int(samples), "consent_ids": list(consent_ids),
              "licenses": [[license, int(count)] for license, count in licenses]}
    return list(docs), header


def trace_model_json(con: duckdb.DuckDBPyConnection, run_id: str, *, limit: int | None = None,
                     use_snapshot: bool = True) -> bytes:
    """:func:`trace_model` as UTF-8 JSON (what ``trace model --json`` prints), built without parsing the tracks."""
    parts = _sections(con, _MODEL_SECTIONS, {"run_id": run_id})
    if parts["run"][1] == 0:
        raise TraceNotFound(f"training run {run_id} does not exist")
    run = json.loads(parts["run"][0])[0]
    record, problem = _record(parts["snapshot"][0]), None
    tracks: str | bytes | memoryview | None = None
    if not use_snapshot:
        problem = "not asked to use the stored snapshot"
    elif record is None:
        problem = "no snapshot stored for this run"
    elif run["status"] != "completed":
        problem = f"run is {run['status']}; only a completed run's snapshot is used"
    else:
        snap, problem = snapshots.read(con, record)
        if snap is not None and snap.header.get("samples_consumed") != run["samples_consumed"]:
            problem = "snapshot disagrees with the run record (samples consumed)"
        elif snap is not None:
            tracks, header = snap.tracks_json(limit), snap.header
    if tracks is None:
        docs, header = _model_bom(con, run_id)
        tracks = _array(docs if limit is None else docs[:max(0, limit)])
    consent_ids = set(header["consent_ids"])
    revoked = [c for c in json.loads(parts["revoked"][0]) if c["consent_id"] in consent_ids]
    return _document([
        ("run", _only(parts["run"][0])), ("release_id", json.dumps(run["release_id"])),
        ("release", _only(parts["release"][0]) if parts["release"][1] else "null"),
        ("approvals", parts["approvals"][0]), ("tracks", tracks),
        ("rights_holders", parts["rights_holders"][0]),
        ("licenses", json.dumps(dict(header["licenses"]))), ("tracks_total", str(header["tracks_total"])),
        ("samples_consumed", str(header["samples_consumed"])), ("revoked_consents", json.dumps(revoked)),
        ("release_alerts", parts["release_alerts"][0]),
        ("snapshot", json.dumps(_snapshot_info(record, problem))),
    ])


def trace_model(con: duckdb.DuckDBPyConnection, run_id: str, *, limit: int | None = None,
                use_snapshot: bool = True) -> dict[str, Any]:
    """Every track behind a model with its rights holders (shares), license, consents, decision and exposure.

    ``limit`` keeps the tracks with the most samples (ties by ISRC); totals and licenses always cover
    every track. Tracks are as they stood when the run completed (its stored snapshot, unless
    ``use_snapshot=False`` or there is none); ``revoked_consents`` lists the consents behind them
    revoked since, ``release`` and ``approvals`` the release's current state.
    """
    result: dict[str, Any] = json.loads(trace_model_json(con, run_id, limit=limit, use_snapshot=use_snapshot))
    return result


# Release ------------------------------------------------------------------------------------------

_RELEASE_SECTIONS = {
    "release": f"""
        SELECT list(r), count(*), 0 FROM (SELECT * REPLACE ({_ts('proposed_at')} AS proposed_at)
                                          FROM releases WHERE release_id = $release_id) r""",
    "approvals": f"""
        SELECT list({{'actor': actor, 'action': action, 'comment': comment, 'recorded_at': {_ts('recorded_at')}}}
                    ORDER BY recorded_at), count(*), 0
        FROM approvals WHERE release_id = $release_id""",
    "shard_builds": f"""
        SELECT list({{'build_id': build_id, 'manifest_uri': manifest_uri, 'manifest_sha256': manifest_sha256,
                     'merkle_root': merkle_root, 'shard_count': shard_count, 'row_count': row_count,
                     'track_count': track_count, 'excluded_count': excluded_count, 'acknowledged': acknowledged,
                     'built_by': built_by, 'built_at': {_ts('built_at')}}} ORDER BY built_at, build_id), count(*), 0
        FROM shard_builds WHERE release_id = $release_id""",
    "shard_exclusions": """
        SELECT list({'build_id': build_id, 'track_id': track_id, 'isrc': isrc, 'reason_code': reason_code,
                     'message': message} ORDER BY build_id, isrc, track_id), count(*), 0
        FROM shard_exclusions WHERE release_id = $release_id""",
    "runs": f"""
        SELECT list({{'run_id': run_id, 'status': status, 'model': model, 'actor': actor,
                     'samples_consumed': samples_consumed, 'manifest_sha256': manifest_sha256,
                     'checkpoint_uri': checkpoint_uri, 'checkpoint_sha256': checkpoint_sha256,
                     'started_at': {_ts('started_at')}, 'ended_at': {_ts('ended_at')}}} ORDER BY started_at, run_id),
               count(*), 0
        FROM training_runs WHERE release_id = $release_id""",
    "training_refusals": f"""
        SELECT list({{'refusal_id': refusal_id, 'run_id': run_id, 'actor': actor, 'reason_codes': reason_codes,
                     'message': message, 'recorded_at': {_ts('recorded_at')}}} ORDER BY recorded_at, refusal_id),
               count(*), 0
        FROM training_refusals WHERE release_id = $release_id""",
    "release_alerts": f"""
        SELECT list({{'track_id': track_id, 'isrc': isrc, 'reason_codes': reason_codes, 'checked_on': checked_on,
                     'detected_at': {_ts('detected_at')}}} ORDER BY isrc, track_id), count(*), 0
        FROM release_alerts WHERE release_id = $release_id""",
    "snapshot": _snapshot_row("release", "release_id"),
}

_RELEASE_TRACKS = """
SELECT coalesce(list(to_json({'track_id': rt.track_id, 'isrc': rt.isrc, 'title': t.title, 'artists': t.artists,
                             'decision_id': d.decision_id, 'allowed': d.allowed, 'reason_codes': d.reason_codes,
                             'deal_id': d.deal_id, 'consent_ids': d.consent_ids})::VARCHAR
                     ORDER BY rt.isrc, rt.track_id), [])
FROM release_tracks rt JOIN tracks t USING (track_id) LEFT JOIN decisions d USING (decision_id)
WHERE rt.release_id = $release_id"""


def _release_tracks(con: duckdb.DuckDBPyConnection, release_id: str) -> list[str]:
    row = con.execute(_RELEASE_TRACKS, {"release_id": release_id}).fetchone()
    return list(row[0]) if row else []


def trace_release_json(con: duckdb.DuckDBPyConnection, release_id: str, *, use_snapshot: bool = True) -> bytes:
    """:func:`trace_release` as UTF-8 JSON (what ``trace release --json`` prints), built without parsing the tracks."""
    parts = _sections(con, _RELEASE_SECTIONS, {"release_id": release_id})
    if parts["release"][1] == 0:
        raise TraceNotFound(f"release {release_id} does not exist")
    release = json.loads(parts["release"][0])[0]
    record, problem = _record(parts["snapshot"][0]), None
    tracks: str | bytes | memoryview | None = None
    if not use_snapshot:
        problem = "not asked to use the stored snapshot"
    elif record is None:
        problem = "no snapshot stored for this release"
    else:
        snap, problem = snapshots.read(con, record)
        if snap is not None and snap.record.track_count != release["track_count"]:
            problem = "snapshot disagrees with the release record (track count)"
        elif snap is not None:
            tracks = snap.tracks_json()
    if tracks is None:
        tracks = _array(_release_tracks(con, release_id))
    return _document([
        ("release", _only(parts["release"][0])), ("approvals", parts["approvals"][0]),
        ("tracks", tracks),
        *((name, parts[name][0]) for name in ("shard_builds", "shard_exclusions", "runs", "training_refusals",
                                              "release_alerts")),
        ("snapshot", json.dumps(_snapshot_info(record, problem))),
    ])


def trace_release(con: duckdb.DuckDBPyConnection, release_id: str, *, use_snapshot: bool = True) -> dict[str, Any]:
    """A release: its purpose, policy, approvals, tracks with decisions, shard builds, runs and alerts since."""
    result: dict[str, Any] = json.loads(trace_release_json(con, release_id, use_snapshot=use_snapshot))
    return result


# Snapshots ----------------------------------------------------------------------------------------

def snapshot_model(con: duckdb.DuckDBPyConnection, run_id: str, *, actor: Principal | str, root: str | None = None,
                   store: Any = None, roles: RoleBook | None = None) -> SnapshotRecord:
    """Store a completed run's bill of materials (every track behind it) and audit-log its hash."""
    row = con.execute("SELECT status FROM training_runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise TraceNotFound(f"training run {run_id} does not exist")
    if row[0] != "completed":
        raise ValueError(f"training run {run_id} is {row[0]}: only a completed run has a fixed bill of materials")
    tracks, header = _model_bom(con, run_id)
    return snapshots.write(con, kind="model", subject=run_id, header=header, tracks=tracks, actor=actor,
                           root=root, store=store, roles=roles)


def snapshot_release(con: duckdb.DuckDBPyConnection, release_id: str, *, actor: Principal | str,
                     root: str | None = None, store: Any = None, roles: RoleBook | None = None) -> SnapshotRecord:
    """Store a release's tracks and the decision behind each (frozen at proposal) and audit-log the hash."""
    if con.execute("SELECT 1 FROM releases WHERE release_id = ?", [release_id]).fetchone() is None:
        raise TraceNotFound(f"release {release_id} does not exist")
    return snapshots.write(con, kind="release", subject=release_id, header={},
                           tracks=_release_tracks(con, release_id), actor=actor, root=root, store=store, roles=roles)


def ensure_snapshots(con: duckdb.DuckDBPyConnection, *, actor: Principal | str, run_id: str | None = None,
                     rebuild: bool = False, root: str | None = None,
                     roles: RoleBook | None = None) -> list[SnapshotRecord]:
    """Build the snapshots that are missing: of ``run_id`` and its release, or of every completed run and release.

    With ``rebuild=True`` existing snapshots are built again (each rebuild is audit-logged). The role
    (``trace.snapshot``) is checked even when nothing is missing.
    """
    authorize(con, actor, "trace.snapshot", run_id or "ledger", roles=roles)
    if run_id is not None:
        row = con.execute("SELECT status, release_id FROM training_runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise TraceNotFound(f"training run {run_id} does not exist")
        runs = [run_id] if row[0] == "completed" else []
        releases = [row[1]]
    else:
        runs = [r[0] for r in con.execute("SELECT run_id FROM training_runs WHERE status = 'completed' "
                                          "ORDER BY started_at, run_id").fetchall()]
        releases = [r[0] for r in con.execute("SELECT release_id FROM releases ORDER BY proposed_at, release_id")
                    .fetchall()]
    have = set() if rebuild else set(con.execute("SELECT kind, subject FROM trace_snapshots").fetchall())
    built = []
    for rid in runs:
        if ("model", rid) not in have:
            built.append(snapshot_model(con, rid, actor=actor, root=root, roles=roles))
    for rel in releases:
        if ("release", rel) not in have and con.execute("SELECT 1 FROM releases WHERE release_id = ?",
                                                        [rel]).fetchone():
            built.append(snapshot_release(con, rel, actor=actor, root=root, roles=roles))
    return built
