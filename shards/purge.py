"""Purge on revocation: rewrite a release's shards without the recordings no longer allowed, bytes gone.

For every live build of the release (the latest build recorded at each manifest location), the
shards holding a revoked recording are rewritten without its rows, the manifest is replaced by one
with the new Merkle root and a :class:`~schemas.shards.PurgeRecord`, and the old shard files are
erased (on S3 every stored version of the key, so a versioned bucket keeps no copy). Shards that
held none of them stay as they are. Beside the manifest goes a proof: for each removed sample ID an
inclusion proof in the old root and an exclusion proof against the new one, which anyone can check
with :func:`verify_purge_proof` and the two roots alone. One ``shards.purge`` command records the
new build, the purge and what was deleted; loaders of the old build are refused from then on
(``build_purged``).

Revoked means: the whole release when it was revoked, else every recording its own policy denies
now on current rights data (the release gate's re-decision).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from licensing.gate import denied_tracks
from schemas.shards import ExcludedTrack, PurgeRecord, ShardEntry, ShardManifest
from shards.merkle import (
    ExclusionProof,
    InclusionProof,
    merkle_root,
    prove_exclusion,
    prove_inclusion,
    verify_exclusion,
    verify_inclusion,
)
from shards.verify import manifest_location, shard_location
from shards.writer import _record, _row_groups, write_parquet
from store.ledger import Writer, command
from store.objects import ObjectStore, join
from store.paths import ledger_path, ledger_ref
from store.roles import Principal, RoleBook

__all__ = ["PurgeProof", "PurgeResult", "purge_release", "purged_build", "verify_purge_proof"]

PURGED_REASON = "purged_on_revocation"


class RemovedSample(BaseModel):
    """One sample ID that was in the old build and is provably not in the new one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str
    was_in_old: InclusionProof
    absent_from_new: ExclusionProof


class PurgeProof(BaseModel):
    """What a purge removed, checkable against the two Merkle roots alone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    release_id: str
    old_merkle_root: str
    new_merkle_root: str
    old_manifest_sha256: str
    new_manifest_sha256: str
    track_ids: tuple[str, ...]
    isrcs: tuple[str, ...]
    removed: tuple[RemovedSample, ...]
    deleted: tuple[str, ...] = Field(description="Old shard files erased (relative to the data directory or s3://)")
    purged_by: str
    purged_at: datetime


class PurgeResult(BaseModel):
    """One build a purge rewrote (or left alone, with the reason)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest_uri: str
    status: Literal["purged", "clean", "missing", "altered"]
    old_merkle_root: str | None = None
    new_merkle_root: str | None = None
    new_build_id: str | None = None
    new_manifest_sha256: str | None = None
    track_ids: tuple[str, ...] = ()
    samples_removed: int = 0
    shards_rewritten: int = 0
    deleted: tuple[str, ...] = ()
    proof_uri: str | None = None
    proof: PurgeProof | None = None


def verify_purge_proof(proof: PurgeProof) -> bool:
    """True when every removed sample is proven in the old root and proven absent from the new one."""
    return bool(proof.removed) and all(
        s.was_in_old.sample_id == s.sample_id and verify_inclusion(s.was_in_old, proof.old_merkle_root)
        and s.absent_from_new.sample_id == s.sample_id and verify_exclusion(s.absent_from_new, proof.new_merkle_root)
        for s in proof.removed)


def purged_build(con: duckdb.DuckDBPyConnection, release_id: str, merkle_root_: str,
                 manifest_sha256: str) -> str | None:
    """When a purge replaced the build with this root (or these manifest bytes), what replaced it; else None."""
    row = con.execute("SELECT new_merkle_root, purged_at FROM shard_purges WHERE release_id = ? AND "
                      "(old_merkle_root = ? OR old_manifest_sha256 = ?) ORDER BY purged_at DESC LIMIT 1",
                      [release_id, merkle_root_, manifest_sha256]).fetchone()
    return None if row is None else f"purged on {row[1]:%Y-%m-%d %H:%M} UTC, replaced by root {row[0][:16]}"


def _live_builds(con: duckdb.DuckDBPyConnection, release_id: str) -> list[tuple[str, str, str]]:
    """(build_id, manifest URI, manifest sha256) of the latest build at each manifest location."""
    rows = con.execute(
        "SELECT build_id, manifest_uri, manifest_sha256 FROM (SELECT *, row_number() OVER "
        "(PARTITION BY manifest_uri ORDER BY built_at DESC, audit_seq DESC) AS n FROM shard_builds "
        "WHERE release_id = ?) WHERE n = 1 ORDER BY manifest_uri", [release_id]).fetchall()
    return [(b, ledger_path(con, m), s) for b, m, s in rows]


def _revoked(con: duckdb.DuckDBPyConnection, release_id: str, held: Collection[str]) -> dict[str, tuple[str, ...]]:
    """Track ID -> reason codes of the held recordings that may no longer be used."""
    status = con.execute("SELECT status FROM releases WHERE release_id = ?", [release_id]).fetchone()
    if status is None:
        raise KeyError(f"release {release_id!r} does not exist")
    if status[0] == "revoked":
        return {t: ("release_revoked",) for t in held}
    denied = denied_tracks(con, release_id, track_ids=held) or ()
    return {d.track_id: tuple(d.reason_codes) or ("denied",) for d in denied}


def purge_release(con: duckdb.DuckDBPyConnection, release_id: str, *, actor: Principal | str,
                  store: ObjectStore | None = None, roles: RoleBook | None = None) -> list[PurgeResult]:
    """Rewrite every live shard build of the release without its revoked recordings; one ``shards.purge``
    command (role checked before anything is touched) records the new builds, the purges and the files erased."""
    store = store or ObjectStore()
    with command(con, actor, "shards.purge", release_id, roles=roles) as w:
        results = [_purge_one(w, release_id, build_id, uri, sha, store)
                   for build_id, uri, sha in _live_builds(con, release_id)]
        w.payload.update({"builds": [r.model_dump(mode="json", include={"manifest_uri", "status", "old_merkle_root",
                                                                       "new_merkle_root", "new_build_id",
                                                                       "new_manifest_sha256", "track_ids",
                                                                       "samples_removed", "deleted", "proof_uri"})
                                     for r in results]})
    return results


def _purge_one(w: Writer, release_id: str, build_id: str, manifest_uri: str, recorded_sha: str,
               store: ObjectStore) -> PurgeResult:
    con = w.con
    manifest_uri = manifest_location(manifest_uri)
    ref = ledger_ref(con, manifest_uri)
    try:
        raw = store.get(manifest_uri)
    except FileNotFoundError:
        return PurgeResult(manifest_uri=ref, status="missing")
    old_sha = hashlib.sha256(raw).hexdigest()
    if old_sha != recorded_sha:
        return PurgeResult(manifest_uri=ref, status="altered")
    manifest = ShardManifest.model_validate_json(raw)
    revoked = _revoked(con, release_id, manifest.track_ids())
    if not revoked:
        return PurgeResult(manifest_uri=ref, status="clean", old_merkle_root=manifest.merkle_root)

    now = datetime.now(UTC)
    old_ids: list[str] = []
    entries: list[ShardEntry] = []
    per_shard: list[dict[str, tuple[str, int]]] = []
    replaced: list[str] = []
    removed_ids: list[str] = []
    isrc_of: dict[str, str] = {}
    for entry in manifest.shards:
        uri = shard_location(manifest_uri, entry)
        if not set(entry.track_ids) & revoked.keys():
            with store.open(uri) as handle:
                table = pq.read_table(handle, columns=["sample_id", "track_id", "isrc"])
            old_ids.extend(table.column("sample_id").to_pylist())
            entries.append(entry)
            per_shard.append(_counts(table))
            continue
        table = pq.read_table(io.BytesIO(store.get(uri)))
        ids = table.column("sample_id").to_pylist()
        old_ids.extend(ids)
        gone = pc.is_in(table.column("track_id"), value_set=pa.array(sorted(revoked), pa.string()))
        for sample_id, track_id, isrc, drop in zip(ids, table.column("track_id").to_pylist(),
                                                     table.column("isrc").to_pylist(), gone.to_pylist()):
            if drop:
                removed_ids.append(sample_id)
                isrc_of[track_id] = isrc
        kept = table.filter(pc.invert(gone))
        replaced.append(uri)
        if kept.num_rows:
            entry = _rewrite(store, manifest_uri, entry, kept, manifest)
            entries.append(entry)
            per_shard.append(_counts(kept))

    gone_ids = set(removed_ids)
    new_ids = [s for s in old_ids if s not in gone_ids]
    new_root = merkle_root(new_ids)
    removed_tracks = tuple(sorted(isrc_of))
    proof_name = f"purge-{new_root[:16]}.json"
    record = PurgeRecord(previous_merkle_root=manifest.merkle_root, previous_manifest_sha256=old_sha,
                         track_ids=removed_tracks, isrcs=tuple(sorted(set(isrc_of.values()))),
                         samples_removed=len(removed_ids), proof_name=proof_name, purged_by=w.actor, purged_at=now)
    excluded = manifest.excluded + tuple(
        ExcludedTrack(track_id=t, isrc=isrc_of[t], reason_code=PURGED_REASON,
                      message=f"purged on revocation ({'/'.join(revoked[t])}) by {w.actor}; bytes erased")
        for t in removed_tracks)
    new_manifest = manifest.model_copy(update={
        "shards": tuple(entries), "total_rows": len(new_ids), "merkle_root": new_root,
        "track_count": len({t for e in entries for t in e.track_ids}), "excluded": excluded,
        "purges": manifest.purges + (record,), "built_by": w.actor, "built_at": now})
    new_bytes = ShardManifest.model_validate(new_manifest.model_dump()).model_dump_json(indent=2).encode("utf-8")
    new_sha = hashlib.sha256(new_bytes).hexdigest()

    store.sync([e.uri for e in entries if e.uri not in {x.uri for x in manifest.shards}])
    store.put(manifest_uri, new_bytes)
    store.erase(manifest_uri, keep_current=True)
    deleted = []
    for uri in replaced:
        store.erase(uri)
        deleted.append(ledger_ref(con, uri))

    proof = PurgeProof(
        release_id=release_id, old_merkle_root=manifest.merkle_root, new_merkle_root=new_root,
        old_manifest_sha256=old_sha, new_manifest_sha256=new_sha, track_ids=removed_tracks,
        isrcs=record.isrcs, deleted=tuple(deleted), purged_by=w.actor, purged_at=now,
        removed=tuple(RemovedSample(sample_id=s, was_in_old=prove_inclusion(old_ids, s),
                                    absent_from_new=prove_exclusion(new_ids, s)) for s in sorted(removed_ids)))
    proof_bytes = proof.model_dump_json(indent=2).encode("utf-8")
    proof_uri = join(manifest_uri.rsplit("/", 1)[0], proof_name)
    store.put(proof_uri, proof_bytes)

    new_build_id = _record(w, ShardManifest.model_validate_json(new_bytes), manifest_uri=manifest_uri,
                           manifest_sha256=new_sha, output_uri=manifest_uri.rsplit("/", 1)[0],
                           per_shard_tracks=per_shard, decision=None)
    for key in ("build_id", "manifest_uri", "manifest_sha256", "shards", "rows", "merkle_root", "excluded",
                "output_uri"):
        w.payload.pop(key, None)
    w.insert("shard_purges", [{
        "release_id": release_id, "old_build_id": build_id, "new_build_id": new_build_id,
        "old_manifest_sha256": old_sha, "new_manifest_sha256": new_sha, "old_merkle_root": manifest.merkle_root,
        "new_merkle_root": new_root, "track_ids": list(removed_tracks), "isrcs": list(record.isrcs),
        "samples_removed": len(removed_ids), "deleted_uris": deleted, "proof_uri": ledger_ref(con, proof_uri),
        "proof_sha256": hashlib.sha256(proof_bytes).hexdigest(), "purged_by": w.actor, "purged_at": now}])
    return PurgeResult(manifest_uri=ref, status="purged", old_merkle_root=manifest.merkle_root,
                       new_merkle_root=new_root, new_build_id=new_build_id, new_manifest_sha256=new_sha,
                       track_ids=removed_tracks, samples_removed=len(removed_ids),
                       shards_rewritten=len(replaced), deleted=tuple(deleted), proof_uri=ledger_ref(con, proof_uri),
                       proof=proof)


def _counts(table: pa.Table) -> dict[str, tuple[str, int]]:
    counts: dict[str, tuple[str, int]] = {}
    for track_id, isrc in zip(table.column("track_id").to_pylist(), table.column("isrc").to_pylist()):
        counts[track_id] = (isrc, counts.get(track_id, (isrc, 0))[1] + 1)
    return counts


def _rewrite(store: ObjectStore, manifest_uri: str, entry: ShardEntry, kept: pa.Table,
             manifest: ShardManifest) -> ShardEntry:
    """The shard without the purged rows, under its new content-hash name."""
    config = manifest.config
    data = write_parquet(kept, config)
    sha = hashlib.sha256(data).hexdigest()
    name = f"shard-{entry.index:05d}-{sha[:16]}.parquet"
    uri = join(manifest_uri.rsplit("/", 1)[0], name)
    store.put(uri, data, fsync=False)
    ids = kept.column("sample_id").to_pylist()
    counts = _counts(kept)
    return ShardEntry(index=entry.index, name=name, uri=uri, sha256=sha, bytes=len(data), rows=len(ids),
                      row_groups=_row_groups(len(ids), config.rows_per_row_group),
                      isrcs=tuple(sorted({isrc for isrc, _ in counts.values()})), track_ids=tuple(sorted(counts)),
                      first_sample_id=ids[0], last_sample_id=ids[-1], merkle_root=merkle_root(ids))
