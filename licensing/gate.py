"""The release gate: may a release be built into shards, served to a loader or trained on, now?

One rule for every use, answered as a :class:`~schemas.gate.GateDecision`. A release may be used
when it is approved (an approval on record, not revoked), unchanged (when the caller knows the
content hash it was built from), its policy is stored, and none of its recordings is denied now:
the release's tracks are re-decided with the release's own policy on current rights data, for the
later of today and the release date, so a consent withdrawn or a deal ended is seen at once.

``contained_track_ids`` (the tracks a set of shards holds) narrows which denials count: shards
rebuilt without a now-denied recording are usable. A build (``use="build"``) is not stopped by a
denied recording; it leaves it out, listed in ``denied_tracks``. Callers add checks of their own
(training: the manifest is missing, or its shards fail verification) as further reasons on the
same decision. An acknowledgement goes past a revoked release or recordings denied since approval,
never past anything else; the caller records it through the write path.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import duckdb

from licensing.evaluate import catalog_decisions, evaluate_catalog_frame
from licensing.policy import policy_by_hash
from schemas.gate import (
    ACKNOWLEDGEABLE,
    Acknowledged,
    Acknowledgement,
    ApprovalRef,
    DeniedTrack,
    GateDecision,
    GateReason,
    GateUse,
)
from schemas.policy import Policy

__all__ = ["ReleaseRefused", "decide", "denied_tracks", "refusal_code"]

_LISTED = 10
_USES = {"show": "used", "build": "built into shards", "load": "served", "train": "trained on"}


class ReleaseRefused(Exception):
    """Raised at a command's boundary (shard writer, loader) when the gate says no; carries the decision."""

    def __init__(self, decision: GateDecision) -> None:
        super().__init__(f"release {decision.release_id} refused ({', '.join(decision.reason_codes)}): "
                         f"{decision.message}")
        self.decision = decision


@dataclass(frozen=True)
class _Release:
    release_id: str
    status: str
    purpose: str
    territory: str
    on_date: date
    policy_hash: str
    content_sha256: str
    tracks: tuple[tuple[str, str], ...]  # (track_id, isrc)


def _today() -> date:
    return datetime.now(UTC).date()


def _read_release(con: duckdb.DuckDBPyConnection, release_id: str) -> _Release | None:
    row = con.execute("SELECT status, purpose, territory, on_date, policy_hash, content_sha256 FROM releases "
                      "WHERE release_id = ?", [release_id]).fetchone()
    if row is None:
        return None
    tracks = con.execute("SELECT track_id, isrc FROM release_tracks WHERE release_id = ? ORDER BY track_id",
                         [release_id]).fetchall()
    return _Release(release_id, *row, tracks=tuple((t, i) for t, i in tracks))


def _approval(con: duckdb.DuckDBPyConnection, release_id: str, status: str) -> ApprovalRef | None:
    """The approval the release rests on: the latest decision if it is an approve (for a revoked release,
    the last approve before the revocation)."""
    rows = con.execute("SELECT actor, action, comment, recorded_at FROM approvals WHERE release_id = ? "
                       "ORDER BY recorded_at DESC", [release_id]).fetchall()
    for actor, action, comment, recorded_at in rows:
        if action == "approve":
            return ApprovalRef(actor=actor, comment=comment, recorded_at=recorded_at)
        if status != "revoked" or action != "revoke":
            return None
    return None


def _redecide(con: duckdb.DuckDBPyConnection, release: _Release, policy: Policy, when: date,
              track_ids: Collection[str] | None) -> tuple[DeniedTrack, ...]:
    tracks = [(t, i) for t, i in release.tracks if track_ids is None or t in track_ids]
    if not tracks:
        return ()
    evaluate_catalog_frame(con, policy, purpose=release.purpose, territory=release.territory, on_date=when,
                           track_ids=[t for t, _ in tracks])
    now = catalog_decisions(con)
    denied: list[DeniedTrack] = []
    for track_id, isrc in tracks:
        row = now.get(track_id)
        if row is None:
            denied.append(DeniedTrack(track_id=track_id, isrc=isrc, reason_codes=("track_missing",),
                                      explanation="denied: the track is no longer in the catalog"))
        elif not row["allowed"]:
            denied.append(DeniedTrack(track_id=track_id, isrc=isrc, reason_codes=tuple(row["reason_codes"] or ()),
                                      explanation=row["explanation"], decision_id=row["decision_id"]))
    return tuple(denied)


def _policy(con: duckdb.DuckDBPyConnection, policy_hash: str) -> tuple[Policy | None, str]:
    try:
        policy = policy_by_hash(con, policy_hash)
    except ValueError as exc:  # stored, but no longer a valid policy
        return None, f"policy {policy_hash} is stored but unreadable ({exc.__class__.__name__})"
    return policy, "" if policy is not None else f"policy {policy_hash} is not stored"


def denied_tracks(con: duckdb.DuckDBPyConnection, release_id: str, *, on_date: date | None = None,
                  track_ids: Collection[str] | None = None) -> tuple[DeniedTrack, ...] | None:
    """The release's tracks (or those of ``track_ids``) its own policy denies on ``on_date`` with current rights
    data; the default date is the later of today and the release date. None when the release or its policy is
    unknown, so nothing can be re-decided."""
    release = _read_release(con, release_id)
    if release is None:
        return None
    policy, _ = _policy(con, release.policy_hash)
    if policy is None:
        return None
    return _redecide(con, release, policy, on_date or max(_today(), release.on_date), track_ids)


def _denied_text(denied: Sequence[DeniedTrack]) -> str:
    listed = ", ".join(f"{d.track_id} ({d.isrc}: {'/'.join(d.reason_codes) or 'denied'})" for d in denied[:_LISTED])
    more = f" and {len(denied) - _LISTED} more" if len(denied) > _LISTED else ""
    return listed + more


def decide(con: duckdb.DuckDBPyConnection, release_id: str, *, use: GateUse = "show",
           contained_track_ids: Collection[str] | None = None, expected_content_sha256: str | None = None,
           acknowledge: Acknowledgement | None = None, findings: Sequence[tuple[GateReason, str]] = (),
           manifest_uri: str | None = None, manifest_sha256: str | None = None,
           on_date: date | None = None) -> GateDecision:
    """May ``release_id`` be used for ``use`` now? Never raises for "no"; reads only.

    ``findings`` are the caller's own reasons (with what it found), added to the release's;
    ``acknowledge`` is accepted when every reason found is acknowledgeable.
    """
    release = _read_release(con, release_id)
    if release is None:
        return GateDecision(release_id=release_id, use=use, allowed=False, reason_codes=(GateReason.RELEASE_UNKNOWN,),
                            message=f"release {release_id!r} does not exist", checked_on=on_date or _today(),
                            manifest_uri=manifest_uri, manifest_sha256=manifest_sha256)
    when = on_date or max(_today(), release.on_date)
    reasons: list[GateReason] = []
    problems: list[str] = []
    approval = _approval(con, release_id, release.status)
    if release.status == "revoked":
        reasons.append(GateReason.RELEASE_REVOKED)
        problems.append(f"release {release_id} was revoked")
    elif release.status != "approved":
        reasons.append(GateReason.RELEASE_NOT_APPROVED)
        problems.append(f"release {release_id} is {release.status}, not approved")
    if approval is None:
        reasons.append(GateReason.APPROVAL_MISSING)
        problems.append("no approval of it is on record")
    if expected_content_sha256 is not None and expected_content_sha256 != release.content_sha256:
        reasons.append(GateReason.RELEASE_CHANGED)
        problems.append(f"its content changed since the shards were built (built from {expected_content_sha256[:12]}, "
                        f"now {release.content_sha256[:12]})")
    policy, policy_problem = _policy(con, release.policy_hash)
    denied: tuple[DeniedTrack, ...] = ()
    if policy is None:
        reasons.append(GateReason.POLICY_UNKNOWN)
        problems.append(f"{policy_problem}: its tracks cannot be re-decided")
    else:
        held = frozenset(contained_track_ids) if contained_track_ids is not None else None
        denied = _redecide(con, release, policy, when, held)
    for reason, text in findings:
        reasons.append(reason)
        problems.append(text)
    if denied and use != "build":
        reasons.append(GateReason.DENIED_SINCE_APPROVAL)
        problems.append(f"{len(denied)} track(s) denied since the release was approved: {_denied_text(denied)}; "
                        "rebuild the shards (a new build leaves them out), or acknowledge explicitly to go on "
                        "without them")
    acknowledged = None
    # A revoked release may be built or served on the record (to finish work in flight), never trained on.
    may_pass = ACKNOWLEDGEABLE - {GateReason.RELEASE_REVOKED} if use == "train" else ACKNOWLEDGEABLE
    if reasons and acknowledge is not None and set(reasons) <= may_pass:
        acknowledged = Acknowledged(actor=acknowledge.actor, reason=acknowledge.reason, overridden=tuple(reasons),
                                    track_ids=tuple(d.track_id for d in denied))
        problems.append(f"acknowledged by {acknowledge.actor}: {acknowledge.reason}")
    elif reasons and acknowledge is not None:
        hard = ", ".join(r for r in reasons if r not in may_pass)
        problems.append(f"an acknowledgement cannot go past {hard}")
    if denied and use == "build":
        problems.append(f"{len(denied)} track(s) denied since approval are left out of this build: "
                        f"{_denied_text(denied)}")
    allowed = not reasons or acknowledged is not None
    if not problems:
        message = f"release {release_id} is approved and may be {_USES[use]}"
    else:
        message = "; ".join(problems)
    return GateDecision(
        release_id=release_id, use=use, allowed=allowed, reason_codes=tuple(reasons), message=message,
        checked_on=when, status=release.status, purpose=release.purpose, territory=release.territory,
        on_date=release.on_date, policy_hash=release.policy_hash, content_sha256=release.content_sha256,
        approval=approval, denied_tracks=denied, manifest_uri=manifest_uri, manifest_sha256=manifest_sha256,
        acknowledgement=acknowledged)


def refusal_code(decision: GateDecision) -> str:
    """The code a refusal is recorded under: the first reason that stands."""
    return str(decision.blocking[0]) if decision.blocking else "allowed"
