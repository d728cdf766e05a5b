"""The gate in front of every training run: approved release, verified shards, no newly denied tracks.

The gate returns a :class:`GateDecision` value; recording a refusal or an acknowledgement is a
separate step so the decision can be shown before anything is written.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import duckdb

from schemas.canonical import canonical_json
from schemas.runs import Acknowledgement, GateDecision
from shards import gate as standing_gate
from shards.verify import manifest_location
from store import audit
from training import manifests

MANIFEST_MISSING = "manifest_missing"
SHARD_VERIFICATION_FAILED = "shard_verification_failed"


def check_release(
    con: duckdb.DuckDBPyConnection,
    release_id: str,
    *,
    manifest_uri: str | None = None,
    acknowledge: str | None = None,
    actor: str = "",
) -> GateDecision:
    """Decide whether a run may train on ``release_id``; never raises for "no".

    The release's standing is the shard loader's own rule (:func:`shards.gate.check_release`), so
    the run and the processes it starts cannot disagree. Only recordings denied after approval can
    be overridden, by a non-empty ``acknowledge`` reason (the loader then leaves them out); an
    unknown, unapproved, revoked or changed release, or a shard that fails verification, always refuses.
    """

    codes: list[str] = []
    problems: list[str] = []

    uri = manifest_uri or manifests.latest_manifest_uri(con, release_id)
    uri = manifest_location(uri) if uri else None
    manifest = manifests.load(uri) if uri else None
    standing = standing_gate.check_release(
        con, release_id, expected_content_sha256=manifest.release_content_sha256 if manifest else None,
        contained_track_ids=manifest.track_ids() if manifest else None)
    if standing_gate.RELEASE_UNKNOWN in standing.reasons:
        return GateDecision(release_id=release_id, allowed=False, reason_codes=(standing_gate.RELEASE_UNKNOWN,),
                            message=f"release {release_id!r} does not exist", manifest_uri=uri)
    hard = [r for r in standing.reasons if r != standing_gate.DENIED_SINCE_APPROVAL]
    if hard:
        codes.extend(hard)
        problems.append(f"release {release_id!r} is {standing.status!r}, not usable for training "
                        f"({', '.join(hard)})")

    manifest_sha = None
    if uri is None:
        codes.append(MANIFEST_MISSING)
        problems.append(f"no shards have been built for release {release_id!r}")
    elif manifest is None:
        codes.append(SHARD_VERIFICATION_FAILED)
        problems.append(f"manifest {uri} cannot be read as a shard manifest")
    elif manifest.release_id != release_id:
        codes.append(SHARD_VERIFICATION_FAILED)
        problems.append(f"manifest {uri} belongs to release {manifest.release_id!r}, not {release_id!r}")
    else:
        ok, detail = manifests.verify(uri)
        if ok:
            manifest_sha = manifests.manifest_sha256(uri)
        else:
            codes.append(SHARD_VERIFICATION_FAILED)
            problems.append(f"shards of {uri} fail verification: {detail}")

    denied = standing.denied_tracks
    denied_ids = tuple(d.track_id for d in denied)
    acknowledgement = None
    if denied:
        listed = ", ".join(f"{d.track_id} ({'/'.join(d.reason_codes) or 'denied'})" for d in denied[:5])
        more = f" and {len(denied) - 5} more" if len(denied) > 5 else ""
        if acknowledge and acknowledge.strip():
            acknowledgement = Acknowledgement(actor=actor, reason=acknowledge.strip(), track_ids=denied_ids)
        else:
            codes.append(standing_gate.DENIED_SINCE_APPROVAL)
            problems.append(
                f"{len(denied)} track(s) denied since the release was approved: {listed}{more}; "
                "rebuild the shards (a new build leaves them out), or acknowledge explicitly "
                "(--acknowledge-denied REASON) to train on the rest"
            )
    allowed = not codes
    message = "; ".join(problems) if problems else f"release {release_id!r} may be trained on"
    return GateDecision(
        release_id=release_id, allowed=allowed, reason_codes=tuple(codes), message=message,
        manifest_uri=uri, manifest_sha256=manifest_sha, policy_hash=standing.policy_hash, purpose=standing.purpose,
        denied_track_ids=denied_ids, acknowledgement=acknowledgement,
    )


def record_refusal(con: duckdb.DuckDBPyConnection, decision: GateDecision, *, run_id: str, actor: str) -> str:
    """Write a refused start to ``training_refusals`` and the audit log; return the refusal id."""
    refusal_id = f"ref_{uuid.uuid4().hex[:16]}"
    details = decision.model_dump(mode="json")
    con.execute(
        "INSERT INTO training_refusals VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [refusal_id, run_id, decision.release_id, actor, list(decision.reason_codes), decision.message,
         canonical_json(details), datetime.now(UTC)],
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
