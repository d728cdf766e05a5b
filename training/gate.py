"""The gate in front of every training run: the release gate plus the shard manifest the run will read.

The release's standing is :func:`licensing.gate.decide`, the same rule the shard writer and the
loader (inside the training processes) apply, so the run and the processes it starts cannot
disagree. Training adds its own reasons on the same decision: no manifest (``manifest_missing``)
or a manifest whose shards fail verification (``shard_verification_failed``).
"""

from __future__ import annotations

import duckdb

from licensing.gate import decide
from schemas.gate import Acknowledgement, GateDecision, GateReason
from schemas.shards import ShardManifest
from shards.verify import manifest_location
from store.roles import Principal, as_principal
from training import manifests


def _manifest_findings(release_id: str, uri: str | None,
                       manifest: ShardManifest | None) -> tuple[list[tuple[GateReason, str]], str | None]:
    if uri is None:
        return [(GateReason.MANIFEST_MISSING, f"no shards have been built for release {release_id!r}")], None
    if manifest is None:
        return [(GateReason.SHARD_VERIFICATION_FAILED, f"manifest {uri} cannot be read as a shard manifest")], None
    if manifest.release_id != release_id:
        return [(GateReason.SHARD_VERIFICATION_FAILED,
                 f"manifest {uri} belongs to release {manifest.release_id!r}, not {release_id!r}")], None
    ok, detail = manifests.verify(uri)
    if not ok:
        return [(GateReason.SHARD_VERIFICATION_FAILED, f"shards of {uri} fail verification: {detail}")], None
    return [], manifests.manifest_sha256(uri)


def check_release(con: duckdb.DuckDBPyConnection, release_id: str, *, manifest_uri: str | None = None,
                  acknowledge: str | None = None, actor: Principal | str = "") -> GateDecision:
    """Decide whether a run may train on ``release_id`` (reading ``manifest_uri``, default the latest build).

    Never raises for "no". A non-empty ``acknowledge`` is ``actor``'s reason to go past a revoked
    release or recordings denied since approval (the loader then leaves those out); nothing else
    can be acknowledged.
    """
    uri = manifest_uri or manifests.latest_manifest_uri(con, release_id)
    uri = manifest_location(uri) if uri else None
    manifest = manifests.load(uri) if uri else None
    findings, manifest_sha = _manifest_findings(release_id, uri, manifest)
    own = manifest if manifest is not None and manifest.release_id == release_id else None
    reason = (acknowledge or "").strip()
    ack = Acknowledgement(actor=as_principal(actor).name, reason=reason) if reason else None
    return decide(con, release_id, use="train", contained_track_ids=own.track_ids() if own else None,
                  expected_content_sha256=own.release_content_sha256 if own else None, acknowledge=ack,
                  findings=findings, manifest_uri=uri, manifest_sha256=manifest_sha)
