"""The impact of a rights change on one recording: what holds it, what learned from it, what it may do now.

After a consent is revoked or a deal ends, the rights team and auditors ask: which releases
contain this recording, which shard builds (and how many rows of it), which training runs and
models consumed it, and what does the policy decide for it today. :func:`impact_report` answers
from the ledger alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict

from licensing.evaluate import catalog_decisions, evaluate_catalog_frame
from licensing.policy import load_policy, policy_by_hash
from schemas.identifiers import normalize_isrc


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CurrentDecision(_Frozen):
    track_id: str
    purpose: str
    territory: str
    policy_hash: str
    allowed: bool
    reason_codes: tuple[str, ...]
    explanation: str
    decision_id: str


class ReleaseImpact(_Frozen):
    release_id: str
    status: str
    purpose: str
    territory: str
    track_id: str
    frozen_decision_id: str
    approved_by: str | None
    alert_reason_codes: tuple[str, ...] | None  # set when a change was detected for this release and track


class ShardImpact(_Frozen):
    build_id: str
    release_id: str
    manifest_uri: str
    built_at: datetime
    track_id: str
    rows: int
    shard_indexes: tuple[int, ...]


class ShardExclusion(_Frozen):
    build_id: str
    release_id: str
    track_id: str
    reason_code: str
    message: str


class TrainingImpact(_Frozen):
    run_id: str
    release_id: str
    status: str
    model: str
    started_at: datetime
    ended_at: datetime | None
    samples: int  # samples of this recording consumed (0 if the run holds it but exposure is not recorded)
    fraction: float
    checkpoint_uri: str | None
    acknowledged: bool  # the run knowingly trained past denials that included this track


class ImpactReport(_Frozen):
    """Everything that contains, or learned from, one recording, and what the policy says of it now."""

    isrc: str
    checked_on: date
    generated_at: datetime
    track_ids: tuple[str, ...]
    decisions_now: tuple[CurrentDecision, ...]
    releases: tuple[ReleaseImpact, ...]
    shard_builds: tuple[ShardImpact, ...]
    shard_exclusions: tuple[ShardExclusion, ...]
    training_runs: tuple[TrainingImpact, ...]
    revocations: tuple[dict[str, Any], ...]
    deal_expiries: tuple[dict[str, Any], ...]

    @property
    def denied_now(self) -> bool:
        return any(not d.allowed for d in self.decisions_now)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def impact_report(con: duckdb.DuckDBPyConnection, isrc: str, *, on_date: date | None = None) -> ImpactReport:
    """Releases, shard builds (with this recording's row counts), training runs and today's decisions for an ISRC.

    Today's decisions are taken for every (purpose, territory, policy) under which the recording
    was released or decided, with the current deals and consents; if it never was, for every
    purpose of the default policy, Worldwide.
    """
    isrc = normalize_isrc(isrc)
    when = on_date or datetime.now(UTC).date()
    track_ids = [r[0] for r in con.execute("SELECT track_id FROM tracks WHERE isrc = ? ORDER BY track_id",
                                           [isrc]).fetchall()]
    keys = "(SELECT unnest(?::VARCHAR[]) AS track_id)"
    releases = [ReleaseImpact(**r) for r in _rows(con, f"""
        SELECT r.release_id, r.status, r.purpose, r.territory, rt.track_id, rt.decision_id AS frozen_decision_id,
               (SELECT arg_max(a.actor, a.recorded_at) FROM approvals a
                WHERE a.release_id = r.release_id AND a.action = 'approve') AS approved_by,
               ra.reason_codes AS alert_reason_codes
        FROM release_tracks rt JOIN {keys} k USING (track_id) JOIN releases r USING (release_id)
        LEFT JOIN release_alerts ra ON ra.release_id = rt.release_id AND ra.track_id = rt.track_id
        ORDER BY r.proposed_at, r.release_id, rt.track_id""", [track_ids])]
    builds = [ShardImpact(**r) for r in _rows(con, f"""
        SELECT b.build_id, b.release_id, b.manifest_uri, b.built_at, f.track_id, sum(f.row_count)::BIGINT AS rows,
               list(f.shard_index ORDER BY f.shard_index) AS shard_indexes
        FROM shard_file_tracks f JOIN {keys} k USING (track_id) JOIN shard_builds b USING (build_id)
        GROUP BY ALL ORDER BY b.built_at, b.build_id, f.track_id""", [track_ids])]
    exclusions = [ShardExclusion(**r) for r in _rows(con, f"""
        SELECT e.build_id, e.release_id, e.track_id, e.reason_code, e.message
        FROM shard_exclusions e JOIN {keys} k USING (track_id) ORDER BY e.recorded_at, e.build_id""", [track_ids])]
    runs = [TrainingImpact(**r) for r in _rows(con, f"""
        WITH held AS (
            SELECT r.run_id FROM training_runs r JOIN shard_builds b ON b.manifest_sha256 = r.manifest_sha256
            JOIN shard_file_tracks f ON f.build_id = b.build_id JOIN {keys} k ON k.track_id = f.track_id
            UNION SELECT e.run_id FROM training_exposure e JOIN {keys} k USING (track_id)
        )
        SELECT r.run_id, r.release_id, r.status, r.model, r.started_at, r.ended_at,
               coalesce((SELECT sum(e.samples) FROM training_exposure e WHERE e.run_id = r.run_id
                         AND e.track_id IN (SELECT track_id FROM {keys})), 0)::BIGINT AS samples,
               coalesce((SELECT sum(e.fraction) FROM training_exposure e WHERE e.run_id = r.run_id
                         AND e.track_id IN (SELECT track_id FROM {keys})), 0)::DOUBLE AS fraction,
               r.checkpoint_uri,
               coalesce(len(list_intersect(r.acknowledged_tracks, ?::VARCHAR[])) > 0, FALSE) AS acknowledged
        FROM training_runs r WHERE r.run_id IN (SELECT run_id FROM held) ORDER BY r.started_at, r.run_id""",
        [track_ids, track_ids, track_ids, track_ids, track_ids])]
    revocations = _rows(con, """
        SELECT v.revocation_id, v.party_id, v.consent_ids, v.refusal_consent_id, v.isrc, v.revoked_at,
               v.evidence_ref, v.actor
        FROM consent_revocations v
        WHERE v.party_id IN (SELECT c.party_id FROM contributors c JOIN tracks t USING (track_id) WHERE t.isrc = ?
                             UNION SELECT party_id FROM recording_contributors WHERE isrc = ?)
          AND (v.isrc IS NULL OR v.isrc = ?)
        ORDER BY v.recorded_at""", [isrc, isrc, isrc])
    expiries = _rows(con, """
        SELECT x.deal_id, x.previous_valid_to, x.valid_to, x.evidence_ref, x.reason, x.actor, x.recorded_at
        FROM deal_expiries x JOIN deal_recordings dr USING (deal_id) WHERE dr.isrc = ? ORDER BY x.recorded_at""",
        [isrc])
    return ImpactReport(
        isrc=isrc, checked_on=when, generated_at=datetime.now(UTC), track_ids=tuple(track_ids),
        decisions_now=tuple(_decisions_now(con, track_ids, when)), releases=tuple(releases),
        shard_builds=tuple(builds), shard_exclusions=tuple(exclusions), training_runs=tuple(runs),
        revocations=tuple(revocations), deal_expiries=tuple(expiries))


def _decisions_now(con: duckdb.DuckDBPyConnection, track_ids: list[str], when: date) -> list[CurrentDecision]:
    if not track_ids:
        return []
    keys = con.execute(
        "SELECT DISTINCT r.purpose, r.territory, r.policy_hash FROM releases r JOIN release_tracks rt USING (release_id) "
        "WHERE rt.track_id IN (SELECT unnest(?::VARCHAR[])) UNION "
        "SELECT DISTINCT purpose, territory, policy_hash FROM current_decisions "
        "WHERE track_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY ALL", [track_ids, track_ids]).fetchall()
    if not keys:
        default = load_policy()
        keys = [(purpose, "Worldwide", default.content_hash) for purpose in sorted(default.purposes)]
    out: list[CurrentDecision] = []
    for purpose, territory, policy_hash in keys:
        policy = policy_by_hash(con, policy_hash)
        if policy is None:
            default = load_policy()
            policy = default if default.content_hash == policy_hash else None
        if policy is None:
            continue
        evaluate_catalog_frame(con, policy, purpose=purpose, territory=territory, on_date=when, track_ids=track_ids)
        for track_id, row in sorted(catalog_decisions(con).items()):
            out.append(CurrentDecision(track_id=track_id, purpose=purpose, territory=territory,
                                       policy_hash=policy_hash, allowed=row["allowed"],
                                       reason_codes=tuple(row["reason_codes"]), explanation=row["explanation"],
                                       decision_id=row["decision_id"]))
    return out


def change_preview(con: duckdb.DuckDBPyConnection, isrcs: list[str], *, limit: int = 100) -> dict[str, Any]:
    """What a rights change touching ``isrcs`` reaches, before it is recorded: set-based, bounded lists.

    Releases (with how many of their tracks are concerned), shard builds (rows), training runs and
    their models (samples seen); every list holds at most ``limit`` rows, the counts are exact.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE _preview_tracks AS SELECT track_id, isrc FROM tracks "
                "WHERE isrc IN (SELECT unnest(?::VARCHAR[]))", [isrcs])
    releases = _rows(con, """
        SELECT r.release_id, r.status, r.purpose, r.territory, count(*) AS tracks, r.status = 'approved' AS approved
        FROM release_tracks rt JOIN _preview_tracks k USING (track_id) JOIN releases r USING (release_id)
        GROUP BY r.release_id, r.status, r.purpose, r.territory ORDER BY approved DESC, tracks DESC, r.release_id LIMIT ?""", [limit])
    builds = _rows(con, """
        SELECT b.build_id, b.release_id, b.manifest_uri, sum(f.row_count)::BIGINT AS rows, count(DISTINCT f.track_id) AS tracks
        FROM shard_file_tracks f JOIN _preview_tracks k USING (track_id) JOIN shard_builds b USING (build_id)
        GROUP BY ALL ORDER BY rows DESC, b.build_id LIMIT ?""", [limit])
    runs = _rows(con, """
        SELECT r.run_id, r.release_id, r.status, r.model, sum(e.samples)::BIGINT AS samples,
               sum(e.fraction)::DOUBLE AS fraction, count(DISTINCT e.track_id) AS tracks
        FROM training_exposure e JOIN _preview_tracks k USING (track_id) JOIN training_runs r USING (run_id)
        GROUP BY ALL ORDER BY samples DESC, r.run_id LIMIT ?""", [limit])
    counts = con.execute("""
        SELECT (SELECT count(*) FROM _preview_tracks),
               (SELECT count(DISTINCT release_id) FROM release_tracks JOIN _preview_tracks USING (track_id)),
               (SELECT count(DISTINCT release_id) FROM release_tracks JOIN _preview_tracks USING (track_id)
                JOIN releases USING (release_id) WHERE status = 'approved'),
               (SELECT count(DISTINCT build_id) FROM shard_file_tracks JOIN _preview_tracks USING (track_id)),
               (SELECT count(DISTINCT run_id) FROM training_exposure JOIN _preview_tracks USING (track_id))""").fetchone()
    con.execute("DROP TABLE IF EXISTS _preview_tracks")
    tracks, rel_count, approved, build_count, run_count = counts or (0, 0, 0, 0, 0)
    return {"isrcs": len(isrcs), "tracks": tracks, "release_count": rel_count, "approved_release_count": approved,
            "build_count": build_count, "run_count": run_count, "releases": releases, "shard_builds": builds,
            "training_runs": runs}
