"""The gate in front of every training run: approved release, verified shards, no newly denied tracks.

The gate returns a :class:`GateDecision` value; recording a refusal or an acknowledgement is a
separate step so the decision can be shown before anything is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb

from lineage import audit
from schemas.runs import Acknowledgement, GateDecision, RefusalCode
from training import manifests

Verifier = Callable[[str], Any]


def _approved_at(con: duckdb.DuckDBPyConnection, release_id: str) -> datetime | None:
    row = con.execute(
        "SELECT max(recorded_at) FROM approvals WHERE release_id = ? AND action = 'approve'", [release_id]
    ).fetchone()
    return row[0] if row else None


def denied_since_approval(con: duckdb.DuckDBPyConnection, release_id: str) -> list[tuple[str, list[str]]]:
    """Tracks of the release whose latest decision after approval (same purpose and territory) is a deny."""
    release = con.execute(
        "SELECT purpose, territory FROM releases WHERE release_id = ?", [release_id]
    ).fetchone()
    approved_at = _approved_at(con, release_id)
    if release is None or approved_at is None:
        return []
    rows = con.execute(
        """
        WITH latest AS (
            SELECT d.track_id, d.allowed, d.reason_codes,
                   row_number() OVER (PARTITION BY d.track_id ORDER BY d.decided_at DESC) AS rn
            FROM decisions d
            JOIN release_tracks rt ON rt.track_id = d.track_id AND rt.release_id = ?
            WHERE d.purpose = ? AND d.territory = ? AND d.decided_at > ?
        )
        SELECT track_id, reason_codes FROM latest WHERE rn = 1 AND NOT allowed ORDER BY track_id
        """,
        [release_id, release[0], release[1], approved_at],
    ).fetchall()
    return [(track_id, list(codes or [])) for track_id, codes in rows]


def check_release(
    con: duckdb.DuckDBPyConnection,
    release_id: str,
    *,
    manifest_uri: str | None = None,
    acknowledge: str | None = None,
    actor: str = "",
    verify: Verifier | None = None,
) -> GateDecision:
    """Decide whether a run may train on ``release_id``; never raises for "no".

    Only tracks denied after approval can be overridden, by a non-empty ``acknowledge`` reason;
    an unapproved release or a shard that fails verification always refuses.
    """
    codes: list[RefusalCode] = []
    problems: list[str] = []
    release = con.execute(
        "SELECT status, purpose, policy_hash FROM releases WHERE release_id = ?", [release_id]
    ).fetchone()
    if release is None:
        return GateDecision(release_id=release_id, allowed=False, reason_codes=("release_unknown",),
                            message=f"release {release_id!r} does not exist")
    status, purpose, policy_hash = release
    if status != "approved" or _approved_at(con, release_id) is None:
        codes.append("release_not_approved")
        problems.append(f"release {release_id!r} is {status!r}, not approved by the rights team")

    uri = manifest_uri or manifests.latest_manifest_uri(con, release_id)
    manifest_sha = None
    if uri is None:
        codes.append("manifest_missing")
        problems.append(f"no shards have been built for release {release_id!r}")
    else:
        ok, detail = manifests.verify(uri, verify)
        if not ok:
            codes.append("shard_verification_failed")
            problems.append(f"shards of {uri} fail verification: {detail}")
        else:
            manifest_sha = manifests.manifest_sha256(uri)
            declared = manifests.manifest_release(uri)
            if declared is not None and declared != release_id:
                codes.append("shard_verification_failed")
                problems.append(f"manifest {uri} belongs to release {declared!r}, not {release_id!r}")

    denied = denied_since_approval(con, release_id)
    denied_ids = tuple(track_id for track_id, _ in denied)
    acknowledgement = None
    if denied:
        listed = ", ".join(f"{t} ({'/'.join(c) or 'denied'})" for t, c in denied[:5])
        more = f" and {len(denied) - 5} more" if len(denied) > 5 else ""
        if acknowledge and acknowledge.strip():
            acknowledgement = Acknowledgement(actor=actor, reason=acknowledge.strip(), track_ids=denied_ids)
        else:
            codes.append("track_denied_since_approval")
            problems.append(
                f"{len(denied)} track(s) denied since the release was approved: {listed}{more}; "
                "re-release without them, or acknowledge explicitly (--acknowledge-denied REASON)"
            )
    allowed = not codes
    message = "; ".join(problems) if problems else f"release {release_id!r} may be trained on"
    return GateDecision(
        release_id=release_id, allowed=allowed, reason_codes=tuple(codes), message=message,
        manifest_uri=uri, manifest_sha256=manifest_sha, policy_hash=policy_hash, purpose=purpose,
        denied_track_ids=denied_ids, acknowledgement=acknowledgement,
    )


def record_refusal(con: duckdb.DuckDBPyConnection, decision: GateDecision, *, run_id: str, actor: str) -> str:
    """Write a refused start to ``training_refusals`` and the audit log; return the refusal id."""
    refusal_id = f"ref_{uuid.uuid4().hex[:16]}"
    details = decision.model_dump(mode="json")
    con.execute(
        "INSERT INTO training_refusals VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [refusal_id, run_id, decision.release_id, actor, list(decision.reason_codes), decision.message,
         audit.canonical_json(details), datetime.now(UTC)],
    )
    audit.record(con, actor=actor, action="training.refused", subject=run_id,
                 payload={"refusal_id": refusal_id, **details})
    return refusal_id


def record_acknowledgement(con: duckdb.DuckDBPyConnection, decision: GateDecision, *, run_id: str) -> None:
    """Audit that a caller chose to train despite tracks denied after approval."""
    ack = decision.acknowledgement
    if ack is None:
        return
    audit.record(con, actor=ack.actor, action="training.acknowledged_denied", subject=run_id,
                 payload={"release_id": decision.release_id, "reason": ack.reason, "track_ids": list(ack.track_ids)})
