"""Append-only audit log, each entry chained to the previous entry's hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from schemas.canonical import canonical_json, sha256_text

GENESIS = "0" * 64


def _entry_hash(seq: int, at: str, actor: str, action: str, subject: str, payload_sha256: str, prev: str) -> str:
    return sha256_text("|".join([str(seq), at, actor, action, subject, payload_sha256, prev]))


def record(con: duckdb.DuckDBPyConnection, *, actor: str, action: str, subject: str,
           payload: dict[str, Any] | None = None) -> str:
    """Append one entry inside the caller's transaction and return its hash."""
    payload_text = canonical_json(payload or {})
    payload_sha = sha256_text(payload_text)
    row = con.execute("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
    at = datetime.now(UTC).isoformat()
    entry = _entry_hash(seq, at, actor, action, subject, payload_sha, prev)
    con.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [seq, at, actor, action, subject, payload_text, payload_sha, prev, entry],
    )
    return entry


@dataclass(frozen=True)
class ChainReport:
    entries: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_chain(con: duckdb.DuckDBPyConnection) -> ChainReport:
    """Re-walk the chain; name the first entry whose content or link does not match."""
    prev = GENESIS
    count = 0
    rows = con.execute(
        "SELECT seq, actor, action, subject, payload, payload_sha256, prev_hash, entry_hash, recorded_at "
        "FROM audit_log ORDER BY seq"
    ).fetchall()
    for expected_seq, (seq, actor, action, subject, payload, payload_sha, prev_hash, entry_hash, at) in enumerate(rows, 1):
        count += 1
        if seq != expected_seq:
            return ChainReport(count, False, seq, f"sequence gap: expected {expected_seq}, found {seq}")
        if sha256_text(payload if isinstance(payload, str) else canonical_json(payload)) != payload_sha:
            return ChainReport(count, False, seq, "payload does not match its hash")
        if prev_hash != prev:
            return ChainReport(count, False, seq, "link to previous entry is broken")
        if _entry_hash(seq, at.astimezone(UTC).isoformat(), actor, action, subject, payload_sha, prev_hash) != entry_hash:
            return ChainReport(count, False, seq, "entry hash does not match its fields")
        prev = entry_hash
    return ChainReport(count, True)


def last_entry(con: duckdb.DuckDBPyConnection, *, subject: str | None = None,
               action: str | None = None) -> dict[str, Any]:
    """``{"audit_seq", "audit_entry_hash"}`` of the latest entry (about ``subject``/``action`` if given).

    Empty when there is none; meant for metadata that links a record to the chain.
    """
    row = con.execute("SELECT seq, entry_hash FROM audit_log WHERE (? IS NULL OR subject = ?) "
                      "AND (? IS NULL OR action = ?) ORDER BY seq DESC LIMIT 1",
                      [subject, subject, action, action]).fetchone()
    return {"audit_seq": row[0], "audit_entry_hash": row[1]} if row else {}
