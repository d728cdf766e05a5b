"""The append-only audit log: each entry chained to the previous entry's hash, the head signed.

Entries are appended only by the write path (:mod:`store.ledger`), which also signs the head it
leaves (:mod:`store.signing`). This module reads and checks the chain and its signed heads.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict

from schemas.canonical import canonical_json, sha256_text
from store.signing import ALGORITHM, SigningKey, head_message, key_id_of, verify_signature

GENESIS = "0" * 64


def _entry_hash(seq: int, at: str, actor: str, action: str, subject: str, payload_sha256: str, prev: str) -> str:
    return sha256_text("|".join([str(seq), at, actor, action, subject, payload_sha256, prev]))


def head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """(sequence number, entry hash) of the last entry; (0, GENESIS) for an empty log."""
    row = con.execute("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), row[1]) if row else (0, GENESIS)


def append(con: duckdb.DuckDBPyConnection, *, seq: int, prev: str, actor: str, action: str, subject: str,
           payload: dict[str, Any]) -> str:
    """Write entry ``seq`` after ``prev`` inside the caller's transaction; return its hash (write path only)."""
    payload_text = canonical_json(payload)
    payload_sha = sha256_text(payload_text)
    at = datetime.now(UTC).isoformat()
    entry = _entry_hash(seq, at, actor, action, subject, payload_sha, prev)
    con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [seq, at, actor, action, subject, payload_text, payload_sha, prev, entry])
    return entry


def ledger_id(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT value FROM ledger_meta WHERE key = 'ledger_id'").fetchone()
    return row[0] if row else ""


def sign_head(con: duckdb.DuckDBPyConnection, key: SigningKey, seq: int, entry_hash: str) -> None:
    """Store the signature of head ``seq`` (inside the caller's transaction)."""
    con.execute("INSERT INTO audit_heads VALUES (?, ?, ?, ?, ?, ?)",
                [seq, entry_hash, key.key_id, key.public_b64, key.sign(head_message(ledger_id(con), seq, entry_hash)),
                 datetime.now(UTC)])


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


class Checkpoint(BaseModel):
    """A signed head an auditor stores outside the data directory (``linernotes audit checkpoint``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["linernotes-audit-checkpoint/1"] = "linernotes-audit-checkpoint/1"
    ledger_id: str
    seq: int
    entry_hash: str
    signed_at: datetime
    algorithm: Literal["ed25519"] = ALGORITHM
    key_id: str
    public_key: str
    signature: str

    def signature_ok(self) -> bool:
        return (key_id_of(_b64(self.public_key)) == self.key_id
                and verify_signature(self.public_key, head_message(self.ledger_id, self.seq, self.entry_hash),
                                     self.signature))


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def checkpoint(con: duckdb.DuckDBPyConnection) -> Checkpoint | None:
    """The latest signed head, or None when nothing was ever written through the write path."""
    row = con.execute("SELECT seq, entry_hash, signed_at, key_id, public_key, signature FROM audit_heads "
                      "ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return None
    return Checkpoint(ledger_id=ledger_id(con), seq=row[0], entry_hash=row[1], signed_at=row[2], key_id=row[3],
                      public_key=row[4], signature=row[5])


@dataclass(frozen=True)
class HeadProblem:
    seq: int | None
    problem: str


def verify_heads(con: duckdb.DuckDBPyConnection, *, trusted_keys: frozenset[str] | None = None) -> list[HeadProblem]:
    """Every stored signature valid and about the chain's own entries; the head of the log signed.

    ``trusted_keys`` (key ids) restricts which keys count, e.g. the one a checkpoint names.
    """
    problems: list[HeadProblem] = []
    ident = ledger_id(con)
    entries = dict(con.execute("SELECT seq, entry_hash FROM audit_log").fetchall())
    last_signed = 0
    for seq, entry_hash, key_id, public_key, signature in con.execute(
            "SELECT seq, entry_hash, key_id, public_key, signature FROM audit_heads ORDER BY seq").fetchall():
        if key_id_of(_b64(public_key)) != key_id or not verify_signature(
                public_key, head_message(ident, seq, entry_hash), signature):
            problems.append(HeadProblem(seq, "signature of the audit head does not verify"))
            continue
        if trusted_keys is not None and key_id not in trusted_keys:
            problems.append(HeadProblem(seq, f"audit head signed by key {key_id}, not the checkpoint's key"))
            continue
        if seq not in entries:
            problems.append(HeadProblem(seq, f"audit head #{seq} was signed but the log has no entry #{seq}: "
                                             "the audit log was truncated"))
            continue
        if entries[seq] != entry_hash:
            problems.append(HeadProblem(seq, f"audit entry #{seq} differs from the head signed for it"))
            continue
        last_signed = max(last_signed, seq)
    top = max(entries) if entries else 0
    if top > last_signed and con.execute("SELECT count(*) FROM audit_heads").fetchone()[0]:  # type: ignore[index]
        problems.append(HeadProblem(last_signed + 1, f"audit entries #{last_signed + 1}..#{top} carry no signed head: "
                                                     "appended outside the write path"))
    return problems


def verify_against(con: duckdb.DuckDBPyConnection, cp: Checkpoint) -> list[HeadProblem]:
    """Does the log still hold, unchanged, the prefix ``cp`` signed? (Only appended to since.)"""
    if not cp.signature_ok():
        return [HeadProblem(cp.seq, "the checkpoint's own signature does not verify")]
    problems: list[HeadProblem] = []
    if cp.ledger_id != ledger_id(con):
        problems.append(HeadProblem(None, f"the checkpoint is of ledger {cp.ledger_id}, this ledger is "
                                          f"{ledger_id(con) or 'unnamed'}"))
    row = con.execute("SELECT entry_hash FROM audit_log WHERE seq = ?", [cp.seq]).fetchone()
    if row is None:
        top = head(con)[0]
        problems.append(HeadProblem(cp.seq, f"the log ends at #{top}, before the checkpoint's #{cp.seq}: "
                                            "entries were removed since the checkpoint"))
    elif row[0] != cp.entry_hash:
        problems.append(HeadProblem(cp.seq, f"audit entry #{cp.seq} is not the one the checkpoint signed: "
                                            "the log was rewritten since"))
    problems += verify_heads(con, trusted_keys=frozenset({cp.key_id}))
    return problems


def last_entry(con: duckdb.DuckDBPyConnection, *, subject: str | None = None,
               action: str | None = None) -> dict[str, Any]:
    """``{"audit_seq", "audit_entry_hash"}`` of the latest entry (about ``subject``/``action`` if given).

    Empty when there is none; meant for metadata that links a record to the chain.
    """
    row = con.execute("SELECT seq, entry_hash FROM audit_log WHERE (? IS NULL OR subject = ?) "
                      "AND (? IS NULL OR action = ?) ORDER BY seq DESC LIMIT 1",
                      [subject, subject, action, action]).fetchone()
    return {"audit_seq": row[0], "audit_entry_hash": row[1]} if row else {}
