"""Writes from other processes and machines: content-hashed batches, each applied as one domain command.

The DuckDB ledger has exactly one writer at a time. A worker that cannot (or should not) hold
the ledger, a fingerprinting process on another machine for instance, writes its results as a
*batch* to an outbox on the object store (a local directory or ``s3://`` prefix)::

    <outbox>/data/<batch_id>/<table>-<sha256>.parquet   rows, one file per table
    <outbox>/batches/<batch_id>.json                    header: the command asked for, tables, hashes

The header is written last and is the commit point: a batch without one is invisible. The batch
id is the SHA-256 of the worker and its unit-of-work key (or of the content when there is no
key), so a worker that retries writes the same batch again rather than a second one; data files
are named by their own hash, so a rewrite never changes a file an older header points to.

A batch names the domain command it asks for (``fingerprint.store``, say). :func:`apply_outbox`,
run by the single writer, applies pending batches in order (``created_at``, then id), each through
the write path: the command is looked up in an explicit allow-list of handlers the caller passes,
the applying account's role is checked for it, and the handler writes the rows through the
command's :class:`~store.ledger.Writer` (sealed, audited, in one transaction, together with the
batch id in ``outbox_batches``, so a batch is applied exactly once). A batch asking for a command
not on the list (``release.approve``, say), or failing validation (hash mismatch, a handler's
check), is recorded as rejected with a reason code and never half-applied. Workers never write
audit entries or ledger tables themselves.

Readers on other machines use :func:`publish_snapshot` / :func:`load_snapshot`: Parquet copies of
chosen tables with a manifest, loaded into an in-memory DuckDB with the same table names.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.canonical import canonical_json, sha256_text
from store.ledger import Writer, authorize, command
from store.objects import ObjectStore, join
from store.roles import Principal, RoleBook, RoleRefused, as_principal

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class BatchTable(BaseModel):
    """Rows for one table of a batch: where they are, their hash and count."""

    model_config = _FROZEN

    table: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=0)


class BatchHeader(BaseModel):
    """The commit record of one batch: the command it asks for and its tables."""

    model_config = _FROZEN

    schema_version: Literal[2] = 2
    batch_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    worker: str = Field(min_length=1)
    command: str = Field(min_length=1, description="The domain command the batch asks the writer to run")
    key: str | None = None
    created_at: datetime
    tables: tuple[BatchTable, ...]
    detail: dict[str, Any] = Field(default_factory=dict)

    def content_id(self) -> str:
        """The id this header must carry: of (worker, key) when keyed, else of its content."""
        if self.key is not None:
            return sha256_text(canonical_json({"worker": self.worker, "key": self.key}))
        body = self.model_dump(mode="json", exclude={"batch_id", "created_at"})
        return sha256_text(canonical_json(body))


# A handler writes one batch's rows through the command's writer; it raises BatchRejected to refuse it.
BatchHandler = Callable[[Writer, Mapping[str, pa.Table], BatchHeader], dict[str, Any]]


@dataclass
class ApplyReport:
    """What one pass of the writer did."""

    applied: list[str] = field(default_factory=list)
    already_applied: int = 0
    rejected: list[tuple[str, str, str]] = field(default_factory=list)
    rows_by_table: dict[str, int] = field(default_factory=dict)


class BatchRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_batch(outbox_uri: str, *, worker: str, command: str, tables: Mapping[str, pa.Table],
                key: str | None = None, detail: Mapping[str, Any] | None = None,
                store: ObjectStore | None = None) -> BatchHeader:
    """Write rows for the domain command ``command`` as one batch; return its header.

    ``key`` names the unit of work (e.g. ``"<run>/<delivery>"``): a retry with the same worker and key
    is the same batch, applied at most once, even if its rows differ (timestamps, say). Without a
    key the batch id is the hash of the content.
    """
    store = store or ObjectStore()
    blobs: dict[str, bytes] = {name: _parquet_bytes(table) for name, table in sorted(tables.items())}
    hashes = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    entries = [BatchTable(table=name, name=f"{name}-{hashes[name][:16]}.parquet", sha256=hashes[name],
                          rows=tables[name].num_rows) for name in blobs]
    draft = BatchHeader(batch_id="0" * 64, worker=worker, command=command, key=key, created_at=datetime.now(UTC),
                        tables=tuple(entries), detail=dict(detail or {}))
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
               handler: BatchHandler, actor: Principal, roles: RoleBook | None) -> dict[str, int]:
    if header.content_id() != header.batch_id:
        raise BatchRejected("batch_id_mismatch", "the header's content does not hash to its batch id")
    tables = {entry.table: _load_rows(store, outbox_uri, header, entry) for entry in header.tables}
    try:
        with command(con, actor, header.command, f"outbox:{header.batch_id}", roles=roles) as w:
            detail = handler(w, tables, header)
            counts = {t: r.num_rows for t, r in tables.items()}
            w.insert("outbox_batches", [{"batch_id": header.batch_id, "worker": header.worker,
                                         "created_at": header.created_at, "applied_at": datetime.now(UTC),
                                         "status": "applied", "reason_code": None, "message": None,
                                         "rows_by_table": canonical_json(counts), "audit_entries": 1}])
            w.payload.update({"outbox_batch": header.batch_id, "worker": header.worker, "key": header.key,
                              "detail": header.detail,
                              "rows": counts, **detail})
    except RoleRefused as exc:
        raise BatchRejected(exc.code, exc.message) from exc
    except (duckdb.ConstraintException, duckdb.ConversionException, duckdb.BinderException) as exc:
        raise BatchRejected("invalid_rows", str(exc).splitlines()[0]) from exc
    return counts


def _reject(con: duckdb.DuckDBPyConnection, batch_id: str, worker: str, created_at: datetime | None,
            code: str, message: str, actor: Principal, roles: RoleBook | None) -> None:
    with command(con, actor, "outbox.apply", f"outbox:{batch_id}", roles=roles, record_as="outbox.rejected") as w:
        w.insert("outbox_batches", [{"batch_id": batch_id, "worker": worker, "created_at": created_at,
                                     "applied_at": datetime.now(UTC), "status": "rejected", "reason_code": code,
                                     "message": message, "rows_by_table": None, "audit_entries": 0}])
        w.payload.update({"rejected": True, "worker": worker, "reason_code": code, "message": message})


def apply_outbox(con: duckdb.DuckDBPyConnection, outbox_uri: str, *, handlers: Mapping[str, BatchHandler],
                 actor: Principal | str, store: ObjectStore | None = None, roles: RoleBook | None = None,
                 limit: int | None = None) -> ApplyReport:
    """Apply every pending batch in order, each exactly once and each as its domain command; batches asking for a
    command ``handlers`` does not list, or failing a check, are recorded as rejected with a reason code."""
    store = store or ObjectStore()
    principal = as_principal(actor)
    authorize(con, principal, "outbox.apply", outbox_uri, roles=roles)  # refused and audited before anything
    report = ApplyReport()
    done = {r[0] for r in con.execute("SELECT batch_id FROM outbox_batches").fetchall()}
    for uri, header, problem in pending_headers(outbox_uri, store):
        if limit is not None and len(report.applied) + len(report.rejected) >= limit:
            break
        batch_id = header.batch_id if header else uri.rsplit("/", 1)[-1].removesuffix(".json")
        if batch_id in done:
            report.already_applied += 1
            continue
        try:
            if header is None:
                raise BatchRejected("invalid_header", problem)
            handler = handlers.get(header.command)
            if handler is None:
                raise BatchRejected("command_not_allowed", f"the outbox accepts only {sorted(handlers)}; this batch "
                                                           f"asks for {header.command!r}")
            counts = _apply_one(con, store, outbox_uri, header, handler, principal, roles)
        except BatchRejected as exc:
            _reject(con, batch_id, header.worker if header else "unknown", header.created_at if header else None,
                    exc.code, str(exc), principal, roles)
            report.rejected.append((batch_id, exc.code, str(exc)))
            done.add(batch_id)
            continue
        done.add(batch_id)
        report.applied.append(batch_id)
        for table, rows in counts.items():
            report.rows_by_table[table] = report.rows_by_table.get(table, 0) + rows
    return report


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' "
                       "AND table_name = ?", [table]).fetchall()
    return {r[0] for r in rows}


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
