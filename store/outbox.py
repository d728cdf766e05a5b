"""Writes from other processes and machines: content-hashed batches applied by the one ledger writer.

The DuckDB ledger has exactly one writer at a time. A worker that cannot (or should not) hold
the ledger, a fingerprinting process on another machine for instance, writes its results as a
*batch* to an outbox on the object store (a local directory or ``s3://`` prefix)::

    <outbox>/data/<batch_id>/<table>-<sha256>.parquet   rows for one ledger table
    <outbox>/batches/<batch_id>.json                    header: tables, hashes, intended audit entries

The header is written last and is the commit point: a batch without one is invisible. The batch
id is the SHA-256 of the worker and its unit-of-work key (or of the content when there is no
key), so a worker that retries writes the same batch again rather than a second one; data files
are named by their own hash, so a rewrite never changes a file an older header points to. :func:`apply_outbox`, run by the single writer, applies pending batches
in order (``created_at``, then id), each in one transaction that inserts the rows, appends the
intended audit entries to the hash chain and records the batch id, so a batch is applied exactly
once and the audit chain stays linear. A batch that fails validation (hash mismatch, unknown
table or column, constraint violation) is recorded as rejected with a reason code and never
half-applied.

Readers on other machines use :func:`publish_snapshot` / :func:`load_snapshot`: Parquet copies of
chosen tables with a manifest, loaded into an in-memory DuckDB with the same table names.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.canonical import canonical_json, sha256_text
from store import audit
from store.database import transaction
from store.objects import ObjectStore, join

WRITER_ACTOR = "linernotes-writer"
# Tables the outbox must never write directly: the audit chain and its own bookkeeping.
PROTECTED_TABLES = frozenset({"audit_log", "outbox_batches"})
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class AuditIntent(BaseModel):
    """An audit entry the worker asks the writer to append when its batch is applied."""

    model_config = _FROZEN

    actor: str = Field(min_length=1)
    action: str = Field(min_length=1)
    subject: str
    payload: dict[str, Any] = Field(default_factory=dict)


class BatchTable(BaseModel):
    """Rows for one ledger table: where they are, their hash and count, and the key they replace on."""

    model_config = _FROZEN

    table: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=0)
    replace_on: tuple[str, ...] = ()


class BatchHeader(BaseModel):
    """The commit record of one batch."""

    model_config = _FROZEN

    schema_version: Literal[1] = 1
    batch_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    worker: str = Field(min_length=1)
    key: str | None = None
    created_at: datetime
    tables: tuple[BatchTable, ...]
    audit: tuple[AuditIntent, ...] = ()

    def content_id(self) -> str:
        """The id this header must carry: of (worker, key) when keyed, else of its content."""

        if self.key is not None:
            return sha256_text(canonical_json({"worker": self.worker, "key": self.key}))
        body = self.model_dump(mode="json", exclude={"batch_id", "created_at"})
        return sha256_text(canonical_json(body))


@dataclass
class ApplyReport:
    """What one pass of the writer did."""

    applied: list[str] = field(default_factory=list)
    already_applied: int = 0
    rejected: list[tuple[str, str, str]] = field(default_factory=list)
    rows_by_table: dict[str, int] = field(default_factory=dict)
    audit_entries: int = 0


class BatchRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_batch(
    outbox_uri: str,
    *,
    worker: str,
    tables: Mapping[str, pa.Table],
    audit: Sequence[AuditIntent] = (),
    replace_on: Mapping[str, Sequence[str]] | None = None,
    key: str | None = None,
    store: ObjectStore | None = None,
) -> BatchHeader:
    """Write rows for ledger tables plus their audit entries as one batch; return its header.

    ``replace_on`` names, per table, the key columns whose existing rows the batch replaces
    (for results a worker may recompute); otherwise rows are appended. ``key`` names the unit
    of work (e.g. ``"<run>/<delivery>"``): a retry with the same worker and key is the same
    batch, applied at most once, even if its rows differ (timestamps, say). Without a key the
    batch id is the hash of the content.
    """
    store = store or ObjectStore()
    replace_on = replace_on or {}
    blobs: dict[str, bytes] = {name: _parquet_bytes(table) for name, table in sorted(tables.items())}
    hashes = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    entries = [BatchTable(table=name, name=f"{name}-{hashes[name][:16]}.parquet", sha256=hashes[name], rows=tables[name].num_rows,
                          replace_on=tuple(replace_on.get(name, ()))) for name in blobs]
    draft = BatchHeader(batch_id="0" * 64, worker=worker, key=key, created_at=datetime.now(UTC),
                        tables=tuple(entries), audit=tuple(audit))
    header = draft.model_copy(update={"batch_id": draft.content_id()})
    for entry in entries:
        store.put(join(outbox_uri, "data", header.batch_id, entry.name), blobs[entry.table])
    store.put(join(outbox_uri, "batches", f"{header.batch_id}.json"),
              header.model_dump_json(indent=None).encode("utf-8"))
    return header


def pending_headers(outbox_uri: str, store: ObjectStore | None = None) -> list[tuple[str, BatchHeader | None, str]]:
    """Every header in the outbox as (uri, parsed header or None, problem), in apply order."""
    store = store or ObjectStore()
    found: list[tuple[str, BatchHeader | None, str]] = []
    for uri in store.list(join(outbox_uri, "batches")):
        if not uri.endswith(".json"):
            continue
        try:
            found.append((uri, BatchHeader.model_validate_json(store.get(uri)), ""))
        except (ValidationError, ValueError) as exc:
            found.append((uri, None, str(exc).splitlines()[0]))
    far_future = datetime.max.replace(tzinfo=UTC)
    found.sort(key=lambda item: (item[1].created_at if item[1] else far_future, item[1].batch_id if item[1] else item[0]))
    return found


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' "
                       "AND table_name = ?", [table]).fetchall()
    return {r[0] for r in rows}


def _load_rows(store: ObjectStore, outbox_uri: str, header: BatchHeader, entry: BatchTable) -> pa.Table:
    uri = join(outbox_uri, "data", header.batch_id, entry.name)
    try:
        blob = store.get(uri)
    except FileNotFoundError as exc:
        raise BatchRejected("missing_data", f"{entry.table}: {uri} is missing") from exc
    if hashlib.sha256(blob).hexdigest() != entry.sha256:
        raise BatchRejected("hash_mismatch", f"{entry.table}: {uri} does not match its header's sha256")
    rows = pq.read_table(io.BytesIO(blob))
    if rows.num_rows != entry.rows:
        raise BatchRejected("row_count_mismatch", f"{entry.table}: {rows.num_rows} rows, header says {entry.rows}")
    return rows


def _apply_one(con: duckdb.DuckDBPyConnection, store: ObjectStore, outbox_uri: str, header: BatchHeader,
               actor: str) -> dict[str, int]:

    if header.content_id() != header.batch_id:
        raise BatchRejected("batch_id_mismatch", "the header's content does not hash to its batch id")
    loaded: list[tuple[BatchTable, pa.Table]] = []
    for entry in header.tables:
        if entry.table in PROTECTED_TABLES:
            raise BatchRejected("protected_table", f"{entry.table} cannot be written through the outbox")
        columns = _table_columns(con, entry.table)
        if not columns:
            raise BatchRejected("unknown_table", f"the ledger has no table {entry.table!r}")
        rows = _load_rows(store, outbox_uri, header, entry)
        unknown = sorted(set(rows.column_names) - columns) + sorted(set(entry.replace_on) - set(rows.column_names))
        if unknown:
            raise BatchRejected("unknown_column", f"{entry.table}: unknown or missing columns {unknown}")
        loaded.append((entry, rows))
    counts: dict[str, int] = {}
    views = [f"_outbox_rows_{index}" for index in range(len(loaded))]
    for view, (_, rows) in zip(views, loaded):
        con.register(view, rows)
    try:
        with transaction(con):
            for view, (entry, rows) in zip(views, loaded):
                if entry.replace_on:
                    match = " AND ".join(f't."{c}" IS NOT DISTINCT FROM r."{c}"' for c in entry.replace_on)
                    con.execute(f'DELETE FROM "{entry.table}" t WHERE EXISTS (SELECT 1 FROM {view} r WHERE {match})')
                con.execute(f'INSERT INTO "{entry.table}" BY NAME SELECT * FROM {view}')
                counts[entry.table] = counts.get(entry.table, 0) + rows.num_rows
            for intent in header.audit:
                audit.record(con, actor=intent.actor, action=intent.action, subject=intent.subject,
                             payload={**intent.payload, "outbox_batch": header.batch_id})
            audit.record(con, actor=actor, action="outbox.applied", subject=header.batch_id,
                         payload={"worker": header.worker, "rows": counts, "audit_entries": len(header.audit)})
            con.execute("INSERT INTO outbox_batches VALUES (?, ?, ?, ?, 'applied', NULL, NULL, ?, ?)",
                        [header.batch_id, header.worker, header.created_at, datetime.now(UTC), json.dumps(counts),
                         len(header.audit)])
    except duckdb.ConstraintException as exc:
        raise BatchRejected("constraint_violation", str(exc).splitlines()[0]) from exc
    except duckdb.ConversionException as exc:
        raise BatchRejected("type_mismatch", str(exc).splitlines()[0]) from exc
    finally:
        for view in views:
            con.unregister(view)
    return counts


def _reject(con: duckdb.DuckDBPyConnection, batch_id: str, worker: str, created_at: datetime | None,
            code: str, message: str, actor: str) -> None:

    with transaction(con):
        con.execute("INSERT INTO outbox_batches VALUES (?, ?, ?, ?, 'rejected', ?, ?, NULL, 0)",
                    [batch_id, worker, created_at, datetime.now(UTC), code, message])
        audit.record(con, actor=actor, action="outbox.rejected", subject=batch_id,
                     payload={"worker": worker, "reason_code": code, "message": message})


def apply_outbox(con: duckdb.DuckDBPyConnection, outbox_uri: str, *, store: ObjectStore | None = None,
                 actor: str = WRITER_ACTOR, limit: int | None = None) -> ApplyReport:
    """Apply every pending batch in order, each exactly once; record rejected ones with a reason code."""
    store = store or ObjectStore()
    report = ApplyReport()
    done = {r[0] for r in con.execute("SELECT batch_id FROM outbox_batches").fetchall()}
    for uri, header, problem in pending_headers(outbox_uri, store):
        if limit is not None and len(report.applied) + len(report.rejected) >= limit:
            break
        batch_id = header.batch_id if header else uri.rsplit("/", 1)[-1].removesuffix(".json")
        if batch_id in done:
            report.already_applied += 1
            continue
        if header is None:
            _reject(con, batch_id, "unknown", None, "invalid_header", problem, actor)
            report.rejected.append((batch_id, "invalid_header", problem))
            done.add(batch_id)
            continue
        try:
            counts = _apply_one(con, store, outbox_uri, header, actor)
        except BatchRejected as exc:
            _reject(con, batch_id, header.worker, header.created_at, exc.code, str(exc), actor)
            report.rejected.append((batch_id, exc.code, str(exc)))
            done.add(batch_id)
            continue
        done.add(batch_id)
        report.applied.append(batch_id)
        report.audit_entries += len(header.audit) + 1
        for table, rows in counts.items():
            report.rows_by_table[table] = report.rows_by_table.get(table, 0) + rows
    return report


class SnapshotManifest(BaseModel):
    """A published, read-only copy of ledger tables for readers on other machines."""

    model_config = _FROZEN

    schema_version: Literal[1] = 1
    published_at: datetime
    audit_head: str | None
    audit_entries: int
    tables: dict[str, BatchTable]


def publish_snapshot(con: duckdb.DuckDBPyConnection, snapshot_uri: str, tables: Sequence[str], *,
                     store: ObjectStore | None = None) -> SnapshotManifest:
    """Write the named tables as Parquet under ``snapshot_uri`` with a manifest (written last)."""
    store = store or ObjectStore()
    entries: dict[str, BatchTable] = {}
    for table in tables:
        if not _table_columns(con, table):
            raise ValueError(f"the ledger has no table {table!r}")
        rows = con.sql(f'SELECT * FROM "{table}"').to_arrow_table()
        blob = _parquet_bytes(rows)
        store.put(join(snapshot_uri, f"{table}.parquet"), blob)
        entries[table] = BatchTable(table=table, name=f"{table}.parquet", sha256=hashlib.sha256(blob).hexdigest(),
                                    rows=rows.num_rows)
    head = con.execute("SELECT entry_hash, seq FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    manifest = SnapshotManifest(published_at=datetime.now(UTC), audit_head=head[0] if head else None,
                                audit_entries=int(head[1]) if head else 0, tables=entries)
    store.put(join(snapshot_uri, "manifest.json"), manifest.model_dump_json(indent=2).encode("utf-8"))
    return manifest


def load_snapshot(snapshot_uri: str, *, store: ObjectStore | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding a published snapshot's tables, each checked against the manifest."""
    store = store or ObjectStore()
    manifest = SnapshotManifest.model_validate_json(store.get(join(snapshot_uri, "manifest.json")))
    con = duckdb.connect(":memory:")
    for table, entry in manifest.tables.items():
        blob = store.get(join(snapshot_uri, entry.name))
        if hashlib.sha256(blob).hexdigest() != entry.sha256:
            con.close()
            raise ValueError(f"snapshot table {table} does not match its manifest hash")
        con.register("_snapshot_rows", pq.read_table(io.BytesIO(blob)))
        con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM _snapshot_rows')
        con.unregister("_snapshot_rows")
    return con
