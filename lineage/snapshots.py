"""Frozen trace snapshots: a model's bill of materials, a release's track list.

What a completed training run learned from never changes, nor does the track set (and the decision
behind each track) of a proposed release. Tracing those from the ledger means joining ten thousand
exposure rows to decisions, rights and consents on every query; a snapshot does it once and stores
the result as one file beside the ledger: a header line (a JSON object: kind, subject, schema
version, summary figures), then a JSON array of the tracks in trace order, one track per line, so
a trace can hand the array on as it is, or its first N lines, without parsing it. The file is
plain text so an auditor can read it with any tool; uncompressed it costs one read and one SHA-256
per trace (compressed, decompressing took longer than the rest of the query).

The ledger row (``trace_snapshots``) records the file's location (relative to the data directory)
and SHA-256, sealed by the ``trace.snapshot`` command whose audit entry records them again, so a
changed file or a rewritten row is found by ``linernotes audit verify`` like any shard or
checkpoint. Every read re-hashes the file; a file that does not match is not used.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from schemas.canonical import canonical_json
from store.ledger import command
from store.objects import ObjectStore, join
from store.paths import ledger_path, ledger_ref
from store.roles import Principal, RoleBook

SCHEMA_VERSION = 1
AUDIT_ACTION = "trace.snapshot"
SnapshotKind = Literal["model", "release"]
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class SnapshotRecord(BaseModel):
    """One stored snapshot as the ledger records it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SnapshotKind
    subject: str
    schema_version: int
    uri: str = Field(description="Relative to the data directory, or a URI")
    sha256: str
    bytes: int
    track_count: int
    built_by: str
    built_at: datetime

    def describe(self) -> dict[str, Any]:
        """The JSON-ready summary a trace carries to say where its frozen part came from."""
        return {"uri": self.uri, "sha256": self.sha256, "schema_version": self.schema_version,
                "tracks": self.track_count, "built_by": self.built_by,
                "built_at": self.built_at.astimezone(UTC).isoformat()}


@dataclass(frozen=True)
class Snapshot:
    """A snapshot read back and verified: its record, header and the tracks' JSON array text."""

    record: SnapshotRecord
    header: dict[str, Any]
    data: bytes
    start: int

    def tracks_json(self, limit: int | None = None) -> memoryview | bytes:
        """The tracks as a JSON array (UTF-8, a view without copying), or only the first ``limit`` of them."""
        view = memoryview(self.data)
        end = len(self.data) - 1 if self.data.endswith(b"\n") else len(self.data)
        if limit is None or limit >= self.record.track_count:
            return view[self.start:end]
        if limit <= 0:
            return b"[]"
        pos = self.start
        for _ in range(limit):
            cut = self.data.find(b",\n", pos)
            if cut < 0:
                return view[self.start:end]
            pos = cut + 2
        return self.data[self.start:cut] + b"]"


def audit_subject(kind: str, subject: str) -> str:
    return f"{kind}:{subject}"


def default_root(con: duckdb.DuckDBPyConnection) -> str:
    """``objects/traces`` beside the ledger file (the data directory's object area)."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    if not row or not row[0]:
        raise ValueError("an in-memory ledger has no data directory: pass root= for trace snapshots")
    return str(Path(row[0]).resolve().parent / "objects" / "traces")


def encode(header: dict[str, Any], tracks: Sequence[str]) -> bytes:
    """The stored bytes: the header line, then the tracks' JSON array with one compact track per line.

    Compact JSON never holds a raw newline, so a line break only ever separates two tracks.
    """
    return (canonical_json(header) + "\n[" + ",\n".join(tracks) + "]\n").encode("utf-8")


def decode(data: bytes) -> tuple[dict[str, Any], int]:
    """The header of stored bytes and the offset where the tracks' JSON array starts."""
    cut = data.find(b"\n")
    if cut < 0 or data[cut + 1:cut + 2] != b"[":
        raise ValueError("not a trace snapshot: no header line followed by a JSON array")
    header = json.loads(data[:cut])
    if not isinstance(header, dict):
        raise ValueError("not a trace snapshot: the header is not a JSON object")
    return header, cut + 1


def write(con: duckdb.DuckDBPyConnection, *, kind: SnapshotKind, subject: str, header: dict[str, Any],
          tracks: Sequence[str], actor: Principal | str, root: str | None = None,
          store: ObjectStore | None = None, roles: RoleBook | None = None) -> SnapshotRecord:
    """Store a snapshot file and record it in ``trace_snapshots`` (replacing an older one): one
    ``trace.snapshot`` command, its role checked before the file is written."""
    store = store or ObjectStore()
    header = {"kind": kind, "subject": subject, "schema_version": SCHEMA_VERSION, "track_count": len(tracks),
              **header}
    data = encode(header, tracks)
    sha = hashlib.sha256(data).hexdigest()
    with command(con, actor, AUDIT_ACTION, audit_subject(kind, subject), roles=roles) as w:
        location = join(root or default_root(con), kind, f"{_SAFE.sub('_', subject)}-{sha[:16]}.json")
        store.put(location, data)
        record = SnapshotRecord(kind=kind, subject=subject, schema_version=SCHEMA_VERSION,
                                uri=ledger_ref(con, location), sha256=sha, bytes=len(data), track_count=len(tracks),
                                built_by=w.actor, built_at=datetime.now(UTC))
        w.upsert("trace_snapshots", [record.model_dump()], key=("kind", "subject"))
        w.payload.update({"kind": kind, "subject": subject, "uri": record.uri, "sha256": sha, "bytes": len(data),
                          "tracks": len(tracks), "schema_version": SCHEMA_VERSION})
    return record


def lookup(con: duckdb.DuckDBPyConnection, kind: SnapshotKind, subject: str) -> SnapshotRecord | None:
    """The ledger's record of a snapshot, or None."""
    row = con.execute("SELECT kind, subject, schema_version, uri, sha256, bytes, track_count, built_by, built_at "
                      "FROM trace_snapshots WHERE kind = ? AND subject = ?", [kind, subject]).fetchone()
    if row is None:
        return None
    names = ("kind", "subject", "schema_version", "uri", "sha256", "bytes", "track_count", "built_by", "built_at")
    return SnapshotRecord(**dict(zip(names, row, strict=True)))


def read(con: duckdb.DuckDBPyConnection, record: SnapshotRecord, *,
         store: ObjectStore | None = None) -> tuple[Snapshot | None, str | None]:
    """(snapshot, None) when the file matches its record, else (None, why it cannot be used)."""
    store = store or ObjectStore()
    location = ledger_path(con, record.uri)
    try:
        data = store.get(location)
    except FileNotFoundError:
        return None, f"snapshot file {location} is missing"
    except Exception as exc:  # noqa: BLE001 - an unreadable snapshot means tracing live, not failing
        return None, f"snapshot file {location} is unreadable: {type(exc).__name__}: {exc}"
    actual = hashlib.sha256(data).hexdigest()
    if actual != record.sha256:
        return None, f"snapshot file {location} does not match its recorded SHA-256 ({record.sha256}, found {actual})"
    try:
        header, start = decode(data)
    except ValueError as exc:
        return None, f"snapshot file {location} cannot be decoded: {exc}"
    if (header.get("kind"), header.get("subject"), header.get("schema_version"), header.get("track_count")) != (
            record.kind, record.subject, SCHEMA_VERSION, record.track_count):
        return None, f"snapshot file {location} is not the {record.kind} snapshot of {record.subject}"
    return Snapshot(record=record, header=header, data=data, start=start), None
