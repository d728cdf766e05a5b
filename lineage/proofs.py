"""Proofs an auditor can re-check from a shard manifest alone: a recording is absent, a sample is present.

Sample IDs are ``<track_id>:<crop>``, and a manifest commits to them through Merkle roots over the
sorted IDs (RFC 9162 tree shape, see :mod:`shards.merkle`), per shard and for the whole set. All
samples of one track therefore sit in one contiguous range of the sorted leaves, between
``<track_id>:`` and ``<track_id>;`` (``;`` follows ``:`` in byte order). Absence of a recording is
shown three ways, each checkable with nothing but the manifest:

1. its ISRC is in no shard's ISRC list;
2. none of its track IDs is in any shard's track-ID list;
3. for each track ID, two adjacent leaves of the dataset tree bracket the whole range its samples
   would occupy, each with an inclusion path to the manifest's dataset root.

Presence of a sample is an inclusion path to its shard's root and to the dataset root. Every proof
names the SHA-256 of the manifest it was made against; the training run records the same hash, and
the audit log records it at shard build and training start.
"""

from __future__ import annotations

import hashlib
import io
import json
from bisect import bisect_left
from collections.abc import Sequence
from typing import Literal

import duckdb
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from catalog.ingest import track_id_for
from schemas.identifiers import normalize_isrc
from schemas.shards import ShardManifest
from shards.merkle import InclusionProof, merkle_root, prove_inclusion, verify_inclusion
from shards.verify import manifest_location, shard_location
from store.objects import ObjectStore
from store.paths import ledger_path

ABSENCE_KIND = "linernotes.proof.absence/1"
INCLUSION_KIND = "linernotes.proof.inclusion/1"


class ProofError(LookupError):
    """The proof cannot be made: unknown run, unreadable manifest, or the claim is false."""


class RangeExclusion(BaseModel):
    """No leaf lies in ``[low, high)``: ``left`` and ``right`` are adjacent leaves around that range."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    track_id: str
    low: str
    high: str
    left: InclusionProof | None
    right: InclusionProof | None


class AbsenceProof(BaseModel):
    """A recording (ISRC) contributed no sample to the shard set a manifest describes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["linernotes.proof.absence/1"] = ABSENCE_KIND
    isrc: str
    track_ids: tuple[str, ...]
    manifest_uri: str
    manifest_sha256: str
    release_id: str
    dataset_root: str
    dataset_size: int
    run_id: str | None = None
    ranges: tuple[RangeExclusion, ...] | None = None
    note: str = ""


class InclusionClaim(BaseModel):
    """A sample is leaf ``shard_proof.index`` of its shard and ``dataset_proof.index`` of the whole set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["linernotes.proof.inclusion/1"] = INCLUSION_KIND
    sample_id: str
    manifest_uri: str
    manifest_sha256: str
    release_id: str
    shard_index: int
    shard_name: str
    shard_root: str
    shard_proof: InclusionProof
    dataset_root: str
    dataset_proof: InclusionProof
    run_id: str | None = None


class ProofCheck(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    kind: str
    problems: tuple[str, ...] = ()


def track_range(track_id: str) -> tuple[str, str]:
    """The half-open range of sample IDs a track's samples occupy."""
    return f"{track_id}:", f"{track_id};"


def _key(sample_id: str) -> bytes:
    return sample_id.encode("utf-8")


def prove_range_absent(ordered: Sequence[str], track_id: str) -> RangeExclusion:
    """Adjacent-leaf proof that no sample of ``track_id`` is among the sorted IDs; ProofError if one is."""
    low, high = track_range(track_id)
    keys = [_key(s) for s in ordered]
    pos = bisect_left(keys, _key(low))
    if pos < len(keys) and keys[pos] < _key(high):
        raise ProofError(f"sample {ordered[pos]} of track {track_id} is in the set")

    def proof(i: int) -> InclusionProof | None:
        return prove_inclusion(ordered, ordered[i]) if 0 <= i < len(ordered) else None

    return RangeExclusion(track_id=track_id, low=low, high=high, left=proof(pos - 1), right=proof(pos))


def verify_range_absent(r: RangeExclusion, root: str, size: int) -> bool:
    """True when the neighbours are proven under ``root``, adjacent, and bracket ``[low, high)``."""
    if (r.low, r.high) != track_range(r.track_id):
        return False
    if size == 0:
        return r.left is None and r.right is None and root == hashlib.sha256(b"").hexdigest()
    for side in (r.left, r.right):
        if side is not None and (side.size != size or not verify_inclusion(side, root)):
            return False
    if r.left is not None and not _key(r.left.sample_id) < _key(r.low):
        return False
    if r.right is not None and not _key(r.high) <= _key(r.right.sample_id):
        return False
    if r.left is None and r.right is None:
        return False
    if r.left is None:
        return r.right is not None and r.right.index == 0
    if r.right is None:
        return r.left.index == size - 1
    return r.right.index == r.left.index + 1


def _manifest(manifest_bytes: bytes) -> ShardManifest:
    return ShardManifest.model_validate_json(manifest_bytes)


def shard_sample_ids(manifest_uri: str, manifest: ShardManifest, store: ObjectStore) -> list[list[str]]:
    """The sample IDs of every shard, read from the Parquet ``sample_id`` column only."""


    out = []
    for entry in manifest.shards:
        data = store.get(shard_location(manifest_uri, entry))
        out.append(pq.ParquetFile(io.BytesIO(data)).read(columns=["sample_id"]).column("sample_id").to_pylist())
    return out


def prove_absent(manifest_bytes: bytes, *, manifest_uri: str, isrc: str, track_ids: Sequence[str],
                 shard_ids: Sequence[Sequence[str]] | None, run_id: str | None = None) -> AbsenceProof:
    """Absence proof for ``isrc`` (whose catalog track IDs are ``track_ids``) against one manifest.

    ``shard_ids`` are the shards' sample IDs; without them (shards deleted or unreachable) the
    proof rests on the manifest's ISRC and track-ID lists alone and says so. Raises ProofError
    when the recording is in fact present.
    """
    manifest = _manifest(manifest_bytes)
    for entry in manifest.shards:
        if isrc in entry.isrcs or set(track_ids) & set(entry.track_ids):
            raise ProofError(f"{isrc} is in shard {entry.name} of {manifest_uri}")
    ranges = None
    note = "ISRC and track-ID lists of every shard checked"
    if shard_ids is not None:
        ordered = sorted((s for ids in shard_ids for s in ids), key=_key)
        if merkle_root(ordered) != manifest.merkle_root:
            raise ProofError(f"the shards' sample IDs do not match the manifest's dataset root ({manifest_uri})")
        ranges = tuple(prove_range_absent(ordered, t) for t in sorted(set(track_ids)))
        note += "; Merkle range exclusion against the dataset root for every track ID"
    else:
        note += "; shard files unreadable, so no Merkle range exclusion"
    return AbsenceProof(isrc=isrc, track_ids=tuple(sorted(set(track_ids))), manifest_uri=manifest_uri,
                        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(), release_id=manifest.release_id,
                        dataset_root=manifest.merkle_root, dataset_size=manifest.total_rows, run_id=run_id,
                        ranges=ranges, note=note)


def prove_present(manifest_bytes: bytes, *, manifest_uri: str, sample_id: str,
                  shard_ids: Sequence[Sequence[str]], run_id: str | None = None) -> InclusionClaim:
    """Inclusion paths for ``sample_id`` to its shard's root and the dataset root; ProofError if absent."""
    manifest = _manifest(manifest_bytes)
    for entry, ids in zip(manifest.shards, shard_ids, strict=True):
        if sample_id in ids:
            everything = [s for group in shard_ids for s in group]
            return InclusionClaim(
                sample_id=sample_id, manifest_uri=manifest_uri,
                manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(), release_id=manifest.release_id,
                shard_index=entry.index, shard_name=entry.name, shard_root=entry.merkle_root,
                shard_proof=prove_inclusion(ids, sample_id), dataset_root=manifest.merkle_root,
                dataset_proof=prove_inclusion(everything, sample_id), run_id=run_id)
    raise ProofError(f"sample {sample_id} is not in {manifest_uri}")


def check_proof(proof: AbsenceProof | InclusionClaim, manifest_bytes: bytes) -> ProofCheck:
    """Re-check a proof against the manifest it names; every failed condition is listed."""
    problems: list[str] = []
    sha = hashlib.sha256(manifest_bytes).hexdigest()
    if sha != proof.manifest_sha256:
        problems.append(f"manifest hash {sha} is not the one the proof was made against ({proof.manifest_sha256})")
    manifest = _manifest(manifest_bytes)
    if proof.dataset_root != manifest.merkle_root:
        problems.append("dataset root differs from the manifest's")
    if isinstance(proof, AbsenceProof):
        if proof.dataset_size != manifest.total_rows:
            problems.append("dataset size differs from the manifest's total rows")
        for entry in manifest.shards:
            if proof.isrc in entry.isrcs:
                problems.append(f"ISRC {proof.isrc} is listed in shard {entry.name}")
            listed = set(proof.track_ids) & set(entry.track_ids)
            if listed:
                problems.append(f"track {sorted(listed)[0]} is listed in shard {entry.name}")
        for r in proof.ranges or ():
            if r.track_id not in proof.track_ids:
                problems.append(f"range for unrelated track {r.track_id}")
            elif not verify_range_absent(r, manifest.merkle_root, manifest.total_rows):
                problems.append(f"range exclusion for {r.track_id} does not verify against the dataset root")
        if proof.ranges is not None and {r.track_id for r in proof.ranges} != set(proof.track_ids):
            problems.append("not every track ID has a range exclusion")
    else:
        entries = {e.index: e for e in manifest.shards}
        entry = entries.get(proof.shard_index)
        if entry is None or entry.name != proof.shard_name or entry.merkle_root != proof.shard_root:
            problems.append(f"shard {proof.shard_index} ({proof.shard_name}) is not in the manifest as claimed")
        elif proof.shard_proof.sample_id != proof.sample_id or not verify_inclusion(proof.shard_proof, entry.merkle_root):
            problems.append("inclusion path does not lead to the shard's root")
        if (proof.dataset_proof.sample_id != proof.sample_id or proof.dataset_proof.size != manifest.total_rows
                or not verify_inclusion(proof.dataset_proof, manifest.merkle_root)):
            problems.append("inclusion path does not lead to the dataset root")
    return ProofCheck(ok=not problems, kind=proof.kind, problems=tuple(problems))


def load_proof(text: str | bytes) -> AbsenceProof | InclusionClaim:
    """Parse a proof document of either kind."""

    kind = json.loads(text).get("kind")
    if kind == ABSENCE_KIND:
        return AbsenceProof.model_validate_json(text)
    if kind == INCLUSION_KIND:
        return InclusionClaim.model_validate_json(text)
    raise ValueError(f"not a linernotes proof (kind {kind!r})")


def run_manifest(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[str, str]:
    """(where the manifest a training run recorded is now, its SHA-256); ProofError for an unknown run."""
    row = con.execute("SELECT manifest_uri, manifest_sha256 FROM training_runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None or not row[0]:
        raise ProofError(f"training run {run_id} does not exist or read no manifest")
    return ledger_path(con, row[0]), row[1]


def track_ids_for(con: duckdb.DuckDBPyConnection | None, isrc: str) -> list[str]:
    """The catalog's track IDs for an ISRC plus the one ingest derives from it."""

    ids = {track_id_for(isrc)}
    if con is not None:
        ids |= {r[0] for r in con.execute("SELECT track_id FROM tracks WHERE isrc = ?", [isrc]).fetchall()}
    return sorted(ids)


def prove(con: duckdb.DuckDBPyConnection | None, *, isrc: str | None = None, sample_id: str | None = None,
          run_id: str | None = None, manifest_uri: str | None = None,
          store: ObjectStore | None = None) -> AbsenceProof | InclusionClaim:
    """Absence of ``isrc`` or presence of ``sample_id`` in a run's (or a manifest's) shard set.

    For a run, the manifest read must still hash to what the run recorded.
    """

    store = store or ObjectStore()
    expected_sha = None
    if run_id is not None:
        if con is None:
            raise ProofError("a run is looked up in the ledger: give the data directory or a manifest")
        manifest_uri, expected_sha = run_manifest(con, run_id)
    if manifest_uri is None:
        raise ProofError("name a training run or a manifest")
    manifest_uri = manifest_location(manifest_uri)
    try:
        manifest_bytes = store.get(manifest_uri)
    except FileNotFoundError as exc:
        raise ProofError(f"manifest {manifest_uri} not found") from exc
    if expected_sha and hashlib.sha256(manifest_bytes).hexdigest() != expected_sha:
        raise ProofError(f"manifest {manifest_uri} no longer hashes to what run {run_id} recorded")
    manifest = _manifest(manifest_bytes)
    try:
        shard_ids: list[list[str]] | None = shard_sample_ids(manifest_uri, manifest, store)
    except (OSError, ValueError):
        shard_ids = None
    if isrc is not None:
        isrc = normalize_isrc(isrc)
        return prove_absent(manifest_bytes, manifest_uri=manifest_uri, isrc=isrc,
                            track_ids=track_ids_for(con, isrc), shard_ids=shard_ids, run_id=run_id)
    if sample_id is None:
        raise ProofError("name an ISRC to prove absent or a sample to prove present")
    if shard_ids is None:
        raise ProofError(f"the shards of {manifest_uri} cannot be read, so no inclusion path can be built")
    return prove_present(manifest_bytes, manifest_uri=manifest_uri, sample_id=sample_id, shard_ids=shard_ids,
                         run_id=run_id)
