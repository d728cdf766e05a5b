"""Whether a release may be turned into shards or served to training, read from the contract tables.

Both the shard writer and the loader ask this question, each at its own moment: a release can be
revoked, or a recording denied, after its shards were built. The answer is a value
(:class:`ReleaseGate`); :func:`admit` turns it into go / refuse, honouring an explicit
acknowledgement only for the refusals a person may knowingly override.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime

import duckdb
from pydantic import BaseModel, ConfigDict

from licensing.releases import ReleaseError, denied_since_approval
from schemas.shards import Acknowledgement, AcknowledgementRecord, ApprovalRef
from store import audit

RELEASE_UNKNOWN = "release_unknown"
RELEASE_NOT_APPROVED = "release_not_approved"
RELEASE_REVOKED = "release_revoked"
APPROVAL_MISSING = "approval_missing"
DENIED_SINCE_APPROVAL = "denied_since_approval"
RELEASE_CHANGED = "release_changed"

# A person may knowingly go past these (recorded); never past an unknown or unapproved release.
ACKNOWLEDGEABLE = frozenset({RELEASE_REVOKED, DENIED_SINCE_APPROVAL})


class DeniedTrack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    track_id: str
    isrc: str
    decision_id: str
    reason_codes: tuple[str, ...]
    decided_at: datetime


class ReleaseGate(BaseModel):
    """The standing of a release now: may its shards be built or served, and if not, why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    release_id: str
    status: str | None = None
    purpose: str | None = None
    territory: str | None = None
    on_date: date | None = None
    policy_hash: str | None = None
    content_sha256: str | None = None
    approval: ApprovalRef | None = None
    reasons: tuple[str, ...] = ()
    denied_tracks: tuple[DeniedTrack, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.reasons

    def explain(self) -> str:
        if self.ok:
            return f"release {self.release_id} is approved and unchanged"
        parts = [f"release {self.release_id} refused: {', '.join(self.reasons)}"]
        if self.status:
            parts.append(f"status={self.status}")
        if self.denied_tracks:
            listed = ", ".join(f"{d.track_id} ({d.isrc}, decision {d.decision_id})" for d in self.denied_tracks[:10])
            more = "" if len(self.denied_tracks) <= 10 else f" and {len(self.denied_tracks) - 10} more"
            parts.append(f"denied since approval: {listed}{more}")
        return "; ".join(parts)


class ReleaseRefused(Exception):
    """Raised by the writer and loader when a release may not be used; carries the gate."""

    def __init__(self, gate: ReleaseGate, message: str | None = None) -> None:
        super().__init__(message or gate.explain())
        self.gate = gate


def check_release(con: duckdb.DuckDBPyConnection, release_id: str,
                  *, expected_content_sha256: str | None = None,
                  contained_track_ids: Collection[str] | None = None) -> ReleaseGate:
    """Read the release, its latest approval and any deny decided after each track's release decision.

    With ``contained_track_ids`` (the tracks a set of shards actually holds, from its manifest),
    only denials of those tracks count: shards rebuilt without a now-denied recording are usable.
    """
    row = con.execute(
        "SELECT status, purpose, territory, on_date, policy_hash, content_sha256 FROM releases WHERE release_id = ?",
        [release_id],
    ).fetchone()
    if row is None:
        return ReleaseGate(release_id=release_id, reasons=(RELEASE_UNKNOWN,))
    status, purpose, territory, on_date, policy_hash, content_sha = row
    reasons: list[str] = []
    approval_row = con.execute(
        "SELECT actor, action, comment, recorded_at FROM approvals WHERE release_id = ? "
        "ORDER BY recorded_at DESC LIMIT 1",
        [release_id],
    ).fetchone()
    approval = None
    if approval_row is not None and approval_row[1] == "approve":
        approval = ApprovalRef(actor=approval_row[0], comment=approval_row[2], recorded_at=approval_row[3])
    if status == "revoked":
        reasons.append(RELEASE_REVOKED)
    elif status != "approved":
        reasons.append(RELEASE_NOT_APPROVED)
    if approval is None and not (status == "revoked" and _ever_approved(con, release_id)):
        reasons.append(APPROVAL_MISSING)
    if approval is None and status == "revoked":
        approval = _last_approve(con, release_id)
    if expected_content_sha256 is not None and expected_content_sha256 != content_sha:
        reasons.append(RELEASE_CHANGED)
    denied = _denied_since(con, release_id, purpose)
    if contained_track_ids is not None:
        held = set(contained_track_ids)
        denied = [d for d in denied if d.track_id in held]
    if denied:
        reasons.append(DENIED_SINCE_APPROVAL)
    return ReleaseGate(
        release_id=release_id, status=status, purpose=purpose, territory=territory, on_date=on_date,
        policy_hash=policy_hash, content_sha256=content_sha, approval=approval,
        reasons=tuple(reasons), denied_tracks=tuple(denied),
    )


def _ever_approved(con: duckdb.DuckDBPyConnection, release_id: str) -> bool:
    return _last_approve(con, release_id) is not None


def _last_approve(con: duckdb.DuckDBPyConnection, release_id: str) -> ApprovalRef | None:
    row = con.execute(
        "SELECT actor, comment, recorded_at FROM approvals WHERE release_id = ? AND action = 'approve' "
        "ORDER BY recorded_at DESC LIMIT 1",
        [release_id],
    ).fetchone()
    return None if row is None else ApprovalRef(actor=row[0], comment=row[1], recorded_at=row[2])


def _denied_since(con: duckdb.DuckDBPyConnection, release_id: str, purpose: str) -> list[DeniedTrack]:
    # The latest decision for the track and purpose wins: a deny later re-allowed no longer blocks.
    rows = con.execute(
        """
        WITH baseline AS (
            SELECT rt.track_id, rt.isrc,
                   COALESCE(orig.decided_at, r.proposed_at) AS since
            FROM release_tracks rt
            JOIN releases r ON r.release_id = rt.release_id
            LEFT JOIN decisions orig ON orig.decision_id = rt.decision_id
            WHERE rt.release_id = ?
        ), latest AS (
            SELECT d.*, row_number() OVER (PARTITION BY d.track_id ORDER BY d.decided_at DESC, d.decision_id DESC) AS n
            FROM decisions d JOIN baseline b ON d.track_id = b.track_id
            WHERE d.purpose = ? AND d.decided_at > b.since
        )
        SELECT l.track_id, b.isrc, l.decision_id, l.reason_codes, l.decided_at
        FROM latest l JOIN baseline b USING (track_id)
        WHERE l.n = 1 AND NOT l.allowed
        ORDER BY l.track_id
        """,
        [release_id, purpose],
    ).fetchall()
    recorded = [DeniedTrack(track_id=r[0], isrc=r[1], decision_id=r[2], reason_codes=tuple(r[3] or ()),
                            decided_at=r[4]) for r in rows]
    return recorded + _denied_now(con, release_id, {d.track_id for d in recorded})


def _denied_now(con: duckdb.DuckDBPyConnection, release_id: str, known: set[str]) -> list[DeniedTrack]:
    """Tracks the release's policy denies on current rights data, though no deny was recorded yet.

    A consent withdrawn or a deal ended by an import is seen here at once, before any re-evaluation
    writes a decision for it.
    """

    try:
        live = denied_since_approval(con, release_id)
    except (ReleaseError, ValueError):  # no stored policy to re-decide with: the recorded decisions stand
        return []
    now = datetime.now(UTC)
    return [DeniedTrack(track_id=d.track_id, isrc=d.isrc, decision_id=d.decision_id or "not yet recorded",
                        reason_codes=d.reason_codes, decided_at=now)
            for d in live if d.track_id not in known]


def admit(gate: ReleaseGate, acknowledge: Acknowledgement | dict[str, str] | None, *,
          context: str) -> AcknowledgementRecord | None:
    """Go (returning the acknowledgement record when one was needed) or raise :class:`ReleaseRefused`.

    ``acknowledge`` may be an :class:`Acknowledgement` or a mapping ``{"actor": ..., "reason": ...}``.
    """
    if isinstance(acknowledge, dict):
        acknowledge = Acknowledgement.model_validate(acknowledge)
    if gate.ok:
        return None
    hard = [r for r in gate.reasons if r not in ACKNOWLEDGEABLE]
    if hard or acknowledge is None:
        raise ReleaseRefused(gate)
    return AcknowledgementRecord(
        actor=acknowledge.actor, reason=acknowledge.reason, context=context,  # type: ignore[arg-type]
        overridden=gate.reasons, skipped_track_ids=tuple(d.track_id for d in gate.denied_tracks),
        recorded_at=datetime.now(UTC),
    )


def record_acknowledgement(con: duckdb.DuckDBPyConnection, gate: ReleaseGate, ack: AcknowledgementRecord,
                           *, subject: str) -> None:
    """Write the acknowledgement to ``shard_acknowledgements`` and the audit log."""
    con.execute(
        "INSERT INTO shard_acknowledgements VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [gate.release_id, ack.context, subject, ack.actor, ack.reason, list(ack.overridden),
         list(ack.skipped_track_ids), ack.recorded_at],
    )
    audit.record(con, actor=ack.actor, action=f"shards.acknowledge_{ack.context}", subject=gate.release_id,
                 payload={"subject": subject, "reason": ack.reason, "overridden": list(ack.overridden),
                          "skipped_track_ids": list(ack.skipped_track_ids)})
