"""The DuckDB ledger: catalog, decisions, releases, lineage and audit in one file.

Every domain package keeps its tables in its own ``schema.sql``; :func:`connect` applies them
all (idempotently) so a fresh data directory is usable at once. Connections are short-lived
and retried on DuckDB's single-writer file lock, so a CLI command and a Dagster run can take
turns on the same file.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import random
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb

from store.sealing import CANONICAL_FORM, ensure_history_tables

SCHEMA_PACKAGES = ("store", "catalog", "fingerprinting", "licensing", "shards", "training", "lineage")
_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")
_applied: set[tuple[Path, int]] = set()


def schema_sql() -> str:
    parts: list[str] = []
    for package in SCHEMA_PACKAGES:
        try:
            resource = importlib.resources.files(package).joinpath("schema.sql")
        except ModuleNotFoundError:
            continue
        if resource.is_file():
            parts.append(f"-- {package}\n{resource.read_text(encoding='utf-8')}")
    return "\n".join(parts)


_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", re.S)
_COLUMN = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s+([A-Z][A-Z0-9_]*(?:\[\])?)", re.M)


def _add_new_columns(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """A table created by an older version gains the columns its definition has since (nullable)."""
    for table, body in _TABLE.findall(sql):
        for column, type_ in _COLUMN.findall(body):
            if column in ("primary", "unique", "check", "foreign"):
                continue
            con.execute(f'ALTER TABLE "{table}" ADD COLUMN IF NOT EXISTS "{column}" {type_}')


def apply_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table (idempotently), bring older ones up to date, and name the ledger once."""
    sql = schema_sql()
    con.execute(sql)
    _add_new_columns(con, sql)
    ensure_history_tables(con)
    con.execute("INSERT INTO ledger_meta VALUES ('ledger_id', ?), ('canonical_row_form', ?) "
                "ON CONFLICT (key) DO NOTHING", [str(uuid.uuid4()), CANONICAL_FORM])


def _open(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if not any(m in str(exc) for m in _LOCK_MARKERS) or time.monotonic() > deadline:
                raise
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.5)


@contextlib.contextmanager
def connect(path: Path, *, read_only: bool = False, timeout_s: float = 120.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the ledger, creating its tables on first use, and close it on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if read_only and not path.exists():
        read_only = False
    con = _open(path, read_only, timeout_s)
    try:
        applied = (path.resolve(), path.stat().st_ino)
        if not read_only and applied not in _applied:
            apply_schema(con)
            _applied.add(applied)
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One explicit transaction: committed when the block ends, rolled back (and re-raised) on any exception.

    A failed COMMIT (a constraint DuckDB checks at commit) is rolled back too, so the connection is
    never left inside an aborted transaction.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # already ended when COMMIT itself failed
            con.execute("ROLLBACK")
        raise
