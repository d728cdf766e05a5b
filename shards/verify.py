"""Re-check a shard set against its manifest: every byte, every sample ID, nothing extra."""

from __future__ import annotations

import hashlib
import io
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.shards import ShardEntry, ShardManifest
from shards.merkle import merkle_root
from shards.writer import MANIFEST_NAME, SHARD_NAME
from store.objects import ObjectStore, join, parent
from store.paths import ledger_path

ShardStatus = Literal["ok", "missing", "altered", "bad_content"]


class ShardCheck(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    status: ShardStatus
    expected_sha256: str
    actual_sha256: str | None = None
    expected_bytes: int
    actual_bytes: int | None = None
    merkle_root: str | None = None
    problems: tuple[str, ...] = ()


class VerifyReport(BaseModel):
    """What ``verify_manifest`` found: per-shard results and the missing, extra and altered names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest_uri: str
    release_id: str | None
    ok: bool
    shards: tuple[ShardCheck, ...] = ()
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    altered: tuple[str, ...] = ()
    merkle_root: str | None = None
    expected_merkle_root: str | None = None
    problems: tuple[str, ...] = ()


def shard_location(manifest_uri: str, entry: ShardEntry) -> str:
    """Shards are found beside their manifest, so a copied directory verifies where it lands."""
    return join(parent(manifest_uri), entry.name)


def manifest_location(uri: str) -> str:
    return uri if uri.endswith(".json") else join(uri, MANIFEST_NAME)


class BuildRef(BaseModel):
    """Where a release's most recent shard build is now (resolved against the data directory), and the hash
    its manifest was recorded with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest_uri: str
    manifest_sha256: str


def latest_build(con: duckdb.DuckDBPyConnection, release_id: str,
                 layout: Literal["crops", "longform"] = "crops") -> BuildRef | None:
    """The release's most recent shard build of ``layout``, or None when there is none."""
    row = con.execute("SELECT manifest_uri, manifest_sha256 FROM shard_builds WHERE release_id = ? AND "
                      "coalesce(json_extract_string(config, '$.layout'), 'crops') = ? "
                      "ORDER BY built_at DESC LIMIT 1", [release_id, layout]).fetchone()
    return BuildRef(manifest_uri=ledger_path(con, row[0]), manifest_sha256=row[1]) if row else None


def verify_manifest(manifest_uri: str, *, store: ObjectStore | None = None) -> VerifyReport:
    """Re-hash every shard, recompute its Merkle root from its sample IDs, and list stray shard files."""
    store = store or ObjectStore()
    manifest_uri = manifest_location(manifest_uri)
    try:
        manifest = ShardManifest.model_validate_json(store.get(manifest_uri))
    except FileNotFoundError:
        return VerifyReport(manifest_uri=manifest_uri, release_id=None, ok=False, problems=("manifest not found",))
    except ValidationError as exc:
        return VerifyReport(manifest_uri=manifest_uri, release_id=None, ok=False,
                            problems=(f"manifest does not match the schema: {exc.error_count()} errors",))

    checks: list[ShardCheck] = []
    all_ids: list[str] = []
    for entry in manifest.shards:
        check, ids = _check_shard(store, manifest_uri, manifest, entry)
        checks.append(check)
        all_ids.extend(ids)

    listed = {e.name for e in manifest.shards}
    present = {u.rsplit("/", 1)[-1] for u in store.list(parent(manifest_uri))}
    extra = sorted(n for n in present if SHARD_NAME.match(n) and n not in listed)
    problems: list[str] = []
    if sum(e.rows for e in manifest.shards) != manifest.total_rows:
        problems.append("total_rows differs from the sum of shard rows")
    root = None
    if all(c.status == "ok" for c in checks):
        root = merkle_root(all_ids)
        if root != manifest.merkle_root:
            problems.append("dataset Merkle root differs from the manifest")
    missing = tuple(c.name for c in checks if c.status == "missing")
    altered = tuple(c.name for c in checks if c.status in ("altered", "bad_content"))
    ok = not missing and not altered and not extra and not problems
    return VerifyReport(manifest_uri=manifest_uri, release_id=manifest.release_id, ok=ok, shards=tuple(checks),
                        missing=missing, extra=tuple(extra), altered=altered, merkle_root=root,
                        expected_merkle_root=manifest.merkle_root, problems=tuple(problems))


def _check_shard(store: ObjectStore, manifest_uri: str, manifest: ShardManifest,
                 entry: ShardEntry) -> tuple[ShardCheck, list[str]]:
    uri = shard_location(manifest_uri, entry)
    base = {"name": entry.name, "expected_sha256": entry.sha256, "expected_bytes": entry.bytes}
    try:
        data = store.get(uri)
    except FileNotFoundError:
        return ShardCheck(status="missing", **base), []
    sha = hashlib.sha256(data).hexdigest()
    if sha != entry.sha256 or len(data) != entry.bytes:
        return ShardCheck(status="altered", actual_sha256=sha, actual_bytes=len(data), **base), []
    problems: list[str] = []
    parquet = pq.ParquetFile(io.BytesIO(data))
    meta = parquet.schema_arrow.metadata or {}
    if meta.get(b"linernotes.release_id", b"").decode() != manifest.release_id:
        problems.append("shard metadata names another release")
    ids = parquet.read(columns=["sample_id"]).column("sample_id").to_pylist()
    root = merkle_root(ids)
    if len(ids) != entry.rows:
        problems.append(f"{len(ids)} rows, manifest says {entry.rows}")
    if root != entry.merkle_root:
        problems.append("Merkle root of sample IDs differs from the manifest")
    status: ShardStatus = "bad_content" if problems else "ok"
    return ShardCheck(status=status, actual_sha256=sha, actual_bytes=len(data), merkle_root=root,
                      problems=tuple(problems), **base), ids


class DecisionAudit(BaseModel):
    """Whether every row of a shard set rests on an allow decision for its release's purpose."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest_uri: str
    release_id: str
    purpose: str | None
    rows: int
    ok: bool
    not_allowed: tuple[str, ...] = ()
    wrong_purpose: tuple[str, ...] = ()
    unknown_decision: tuple[str, ...] = ()
    other_release: tuple[str, ...] = ()


def audit_decisions(con: duckdb.DuckDBPyConnection, manifest_uri: str, *,
                    store: ObjectStore | None = None, limit: int = 100) -> DecisionAudit:
    """Join every shard row's ``decision_id`` to ``decisions``; list (up to ``limit``) sample IDs that fail."""
    store = store or ObjectStore()
    manifest_uri = manifest_location(manifest_uri)
    manifest = ShardManifest.model_validate_json(store.get(manifest_uri))
    tables = []
    for entry in manifest.shards:
        with store.open(shard_location(manifest_uri, entry)) as handle:
            tables.append(pq.ParquetFile(handle).read(columns=["sample_id", "decision_id", "release_id"]))
    rows = pa.concat_tables(tables) if tables else pa.table(
        {"sample_id": pa.array([], pa.string()), "decision_id": pa.array([], pa.string()),
         "release_id": pa.array([], pa.string())})
    purpose_row = con.execute("SELECT purpose FROM releases WHERE release_id = ?", [manifest.release_id]).fetchone()
    purpose = purpose_row[0] if purpose_row else None
    # A cursor of its own: register() refuses a connection with a caller's unfinished result.
    cur = con.cursor()
    cur.register("_shard_rows", rows)
    try:
        def ids(condition: str, params: list[object]) -> tuple[str, ...]:
            found = cur.execute(
                "SELECT s.sample_id FROM _shard_rows s LEFT JOIN decisions d ON d.decision_id = s.decision_id "
                f"WHERE {condition} ORDER BY s.sample_id LIMIT {int(limit)}", params).fetchall()
            return tuple(r[0] for r in found)

        unknown = ids("d.decision_id IS NULL", [])
        not_allowed = ids("d.decision_id IS NOT NULL AND NOT d.allowed", [])
        wrong = ids("d.decision_id IS NOT NULL AND d.purpose IS DISTINCT FROM ?", [purpose])
        other = ids("s.release_id IS DISTINCT FROM ?", [manifest.release_id])
    finally:
        cur.unregister("_shard_rows")
        cur.close()
    ok = purpose is not None and not (unknown or not_allowed or wrong or other)
    return DecisionAudit(manifest_uri=manifest_uri, release_id=manifest.release_id, purpose=purpose,
                         rows=rows.num_rows, ok=ok, not_allowed=not_allowed, wrong_purpose=wrong,
                         unknown_decision=unknown, other_release=other)
