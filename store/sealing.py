"""Sealed rows: every ledger row carries the hash of its content and the audit entry that wrote it.

A table is *sealed* when it has the columns ``row_sha256`` and ``audit_seq``. The write path
(:mod:`store.ledger`) fills them: ``row_sha256`` is the SHA-256 of the row's canonical content
(:meth:`SealedTable.content_sql`) and ``audit_seq`` the sequence number of the audit entry the
command appends, whose payload commits to the rows it wrote (``seal``) and the rows it replaced
(``superseded``): their count, the SHA-256 of their sorted row hashes and, for small commands,
the row hashes themselves. A row is never updated or deleted in place: the old version moves to
``<table>__history`` with the ``superseded_seq`` of the command that replaced it.

:func:`verify_sealed` re-hashes every row and re-derives every command's digest from the rows
bound to it, so a row inserted, edited or deleted with plain SQL is named, and an attacker who
also recomputes the row hash still breaks the digest the hash-chained audit entry holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb

SEAL_COLUMNS = ("row_sha256", "audit_seq")
HISTORY_SUFFIX = "__history"
SUPERSEDED_COLUMN = "superseded_seq"
# Commands that write this many rows or fewer list each row hash in their audit entry, so a
# forged or deleted row is named exactly; larger ones commit to the count and digest only.
LISTED_ROWS = 200
CANONICAL_FORM = "duckdb-json-v1"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class SealedTable:
    """A sealed ledger table: its content columns (everything but the seal) with their types."""

    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    key: tuple[str, ...]
    defaults: tuple[str | None, ...] = ()

    @property
    def history(self) -> str:
        return self.name + HISTORY_SUFFIX

    def _value(self, column: str, type_: str, alias: str) -> str:
        ref = f'{alias}"{column}"'
        if type_.startswith("TIMESTAMP"):
            return f"epoch_us({ref})"  # independent of the session's time zone
        if type_ == "JSON":
            return f"CAST({ref} AS VARCHAR)"  # the stored text, byte for byte
        return ref

    def content_sql(self, alias: str = "") -> str:
        """The canonical content of a row: DuckDB's JSON of the typed columns, timestamps as epoch µs."""
        prefix = f"{alias}." if alias else ""
        fields = ", ".join(f"'{c}': {self._value(c, t, prefix)}" for c, t in zip(self.columns, self.types))
        return f"CAST(to_json({{{fields}}}) AS VARCHAR)"

    def hash_sql(self, alias: str = "") -> str:
        return f"sha256('{self.name}|' || {self.content_sql(alias)})"

    def cast_select(self, alias: str, present: Iterable[str]) -> str:
        """``CAST(alias.c AS type) AS c`` for each content column; columns not ``present`` get their default."""
        have = set(present)
        defaults = self.defaults or (None,) * len(self.columns)
        return ", ".join(
            f'CAST({alias}."{c}" AS {t}) AS "{c}"' if c in have else f'CAST({d or "NULL"} AS {t}) AS "{c}"'
            for c, t, d in zip(self.columns, self.types, defaults))

    def describe(self, row: dict[str, Any]) -> str:
        return ", ".join(f"{k}={row.get(k)}" for k in self.key)


def sealed_tables(con: duckdb.DuckDBPyConnection) -> dict[str, SealedTable]:
    """Every sealed table of the ledger, by name (discovered from the columns, not listed by hand)."""
    rows = con.execute(
        "SELECT table_name, column_name, data_type, column_default FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal "
        "ORDER BY table_name, column_index").fetchall()
    columns: dict[str, list[tuple[str, str, str | None]]] = {}
    for table, column, type_, default in rows:
        columns.setdefault(table, []).append((column, type_, default))
    keys: dict[str, tuple[str, ...]] = {}
    for table, key in con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND constraint_type = 'PRIMARY KEY'").fetchall():
        keys[table] = tuple(key)
    found: dict[str, SealedTable] = {}
    for table, cols in columns.items():
        names = [c for c, _, _ in cols]
        if table.endswith(HISTORY_SUFFIX) or not all(s in names for s in SEAL_COLUMNS):
            continue
        content = [(c, t, d) for c, t, d in cols if c not in SEAL_COLUMNS]
        key = keys.get(table) or tuple(c for c, _, _ in content[:3])
        found[table] = SealedTable(table, tuple(c for c, _, _ in content), tuple(t for _, t, _ in content), key,
                                   tuple(d for _, _, d in content))
    return found


def ensure_history_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``<table>__history`` for every sealed table, and add columns a table gained since."""
    existing = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}
    for table in sealed_tables(con).values():
        if table.history not in existing:
            con.execute(f'CREATE TABLE "{table.history}" AS SELECT *, CAST(NULL AS BIGINT) AS {SUPERSEDED_COLUMN} '
                        f'FROM "{table.name}" WHERE false')
            continue
        have = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                          "AND database_name = current_database()", [table.history]).fetchall()}
        for column, type_ in zip(table.columns + SEAL_COLUMNS, table.types + ("VARCHAR", "BIGINT")):
            if column not in have:
                con.execute(f'ALTER TABLE "{table.history}" ADD COLUMN "{column}" {type_}')


def check_identifier(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a ledger table or column name: {name!r}")
    return name


def digest_sql(source: str) -> str:
    """Count and digest (SHA-256 of the sorted row hashes, comma-joined) of the rows ``source`` selects."""
    return (f"SELECT count(*), sha256(coalesce(string_agg(row_sha256, ',' ORDER BY row_sha256), '')), "
            f"CASE WHEN count(*) <= {LISTED_ROWS} THEN list(row_sha256 ORDER BY row_sha256) END FROM ({source})")


def bound_rows_sql(table: SealedTable, seq_column: str = "audit_seq") -> str:
    """The live and replaced rows of ``table`` whose ``seq_column`` is ``$seq``."""
    if seq_column == SUPERSEDED_COLUMN:
        return f'SELECT row_sha256 FROM "{table.history}" WHERE {SUPERSEDED_COLUMN} = $seq'
    return (f'SELECT row_sha256 FROM "{table.name}" WHERE audit_seq = $seq UNION ALL '
            f'SELECT row_sha256 FROM "{table.history}" WHERE audit_seq = $seq')


def summarize(con: duckdb.DuckDBPyConnection, table: SealedTable, seq: int, *, superseded: bool = False
              ) -> dict[str, Any] | None:
    """What an audit entry commits to for ``table``: rows, digest and (small commands) the row hashes."""
    source = bound_rows_sql(table, SUPERSEDED_COLUMN if superseded else "audit_seq")
    count, digest, listed = con.execute(digest_sql(source), {"seq": seq}).fetchone()  # type: ignore[misc]
    if not count:
        return None
    out: dict[str, Any] = {"rows": int(count), "sha256": digest}
    if listed is not None:
        out["row_sha256"] = list(listed)
    return out


@dataclass(frozen=True)
class SealFinding:
    """A row (or a command's rows) that does not match what the audit chain recorded."""

    table: str
    subject: str
    problem: str
    audit_seq: int | None
    expected: str | None = None
    actual: str | None = None


def _commitments(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, dict[int, dict[str, Any]]],
                                                          dict[str, dict[int, dict[str, Any]]],
                                                          dict[int, str]]:
    seals: dict[str, dict[int, dict[str, Any]]] = {}
    replaced: dict[str, dict[int, dict[str, Any]]] = {}
    labels: dict[int, str] = {}
    for seq, action, subject, seal, superseded in con.execute(
            "SELECT seq, action, subject, json_extract(payload, '$.seal'), json_extract(payload, '$.superseded') "
            "FROM audit_log WHERE json_exists(payload, '$.seal') OR json_exists(payload, '$.superseded') "
            "ORDER BY seq").fetchall():
        labels[seq] = f"audit entry #{seq} ({action} {subject})"
        for target, text in ((seals, seal), (replaced, superseded)):
            for table, commitment in (json.loads(text) if isinstance(text, str) else (text or {})).items():
                target.setdefault(table, {})[seq] = commitment
    return seals, replaced, labels


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def verify_sealed(con: duckdb.DuckDBPyConnection) -> tuple[list[SealFinding], dict[str, int]]:
    """Re-hash every sealed row and re-derive every command's digest; findings in audit order, and counts."""
    seals, replaced, labels = _commitments(con)
    known = {r[0] for r in con.execute("SELECT seq FROM audit_log").fetchall()}
    findings: list[SealFinding] = []
    checked: dict[str, int] = {}
    for name, table in sorted(sealed_tables(con).items()):
        both = (f'SELECT *, NULL::BIGINT AS {SUPERSEDED_COLUMN}, \'live\' AS _where FROM "{table.name}" '
                f'UNION ALL BY NAME SELECT *, \'history\' AS _where FROM "{table.history}"')
        keys = ", ".join(f'"{k}"' for k in table.key)
        checked[name] = con.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]  # type: ignore[index]
        for row in _rows(con, f"SELECT {keys}, audit_seq, _where FROM ({both}) WHERE row_sha256 IS NULL "
                              f"OR audit_seq IS NULL ORDER BY audit_seq NULLS FIRST, {keys} LIMIT 20"):
            findings.append(SealFinding(name, table.describe(row), "row carries no seal: inserted outside the "
                                        "write path (or written before rows were sealed)", row["audit_seq"]))
        for row in _rows(con, f"SELECT {keys}, audit_seq, row_sha256, {table.hash_sql()} AS actual, _where "
                              f"FROM ({both}) WHERE row_sha256 IS NOT NULL AND row_sha256 <> {table.hash_sql()} "
                              f"ORDER BY audit_seq, {keys} LIMIT 20"):
            where = " (a replaced version)" if row["_where"] == "history" else ""
            findings.append(SealFinding(name, table.describe(row) + where, "row content no longer matches its seal: "
                                        "edited outside the write path", row["audit_seq"],
                                        expected=row["row_sha256"], actual=row["actual"]))
        for kind, column, commitments in (("written", "audit_seq", seals.get(name, {})),
                                          ("replaced", SUPERSEDED_COLUMN, replaced.get(name, {}))):
            source = f'SELECT * FROM "{table.history}"' if column == SUPERSEDED_COLUMN else both
            groups = {seq: (n, d, listed) for seq, n, d, listed in con.execute(
                f"SELECT {column}, count(*), sha256(coalesce(string_agg(row_sha256, ',' ORDER BY row_sha256), '')), "
                f"CASE WHEN count(*) <= {LISTED_ROWS} THEN list(row_sha256 ORDER BY row_sha256) END "
                f"FROM ({source}) WHERE {column} IS NOT NULL AND row_sha256 IS NOT NULL GROUP BY {column}").fetchall()}
            for seq in sorted(set(groups) | set(commitments)):
                findings.extend(_compare(con, table, kind, column, seq, groups.get(seq), commitments.get(seq),
                                         labels.get(seq), seq in known))
    findings.sort(key=lambda f: (f.audit_seq if f.audit_seq is not None else -1, f.table))
    return findings, checked


def _compare(con: duckdb.DuckDBPyConnection, table: SealedTable, kind: str, column: str, seq: int,
             actual: tuple[int, str, list[str] | None] | None, expected: dict[str, Any] | None,
             label: str | None, exists: bool) -> list[SealFinding]:
    if expected is None:
        why = (f"bound to audit entry #{seq}, which {'records no ' + table.name + ' rows ' + kind if exists else 'does not exist'}"
               if actual else "")
        rows = _rows(con, f'SELECT {", ".join(chr(34) + k + chr(34) for k in table.key)} FROM '
                          f'(SELECT * FROM "{table.name}" UNION ALL BY NAME SELECT * FROM "{table.history}") '
                          f"WHERE {column} = ? LIMIT 5", [seq])
        subject = "; ".join(table.describe(r) for r in rows) or f"{actual[0] if actual else 0} row(s)"
        return [SealFinding(table.name, subject, f"row {kind} outside the write path: {why}", seq)]
    count, digest = (actual[0], actual[1]) if actual else (0, "")
    if actual is not None and count == expected.get("rows") and digest == expected.get("sha256"):
        return []
    listed = expected.get("row_sha256")
    where = label or f"audit entry #{seq}"
    if listed is not None and actual is not None and actual[2] is not None:
        extra = sorted(set(actual[2]) - set(listed))
        missing = sorted(set(listed) - set(actual[2]))
        out: list[SealFinding] = []
        if extra:
            rows = _rows(con, f'SELECT {", ".join(chr(34) + k + chr(34) for k in table.key)} FROM '
                              f'(SELECT * FROM "{table.name}" UNION ALL BY NAME SELECT * FROM "{table.history}") '
                              f"WHERE row_sha256 IN (SELECT unnest(?::VARCHAR[]))", [extra])
            for r in rows:
                out.append(SealFinding(table.name, table.describe(r), f"row {kind} outside the write path: "
                                       f"{where} does not list it", seq))
        for sha in missing:
            out.append(SealFinding(table.name, f"row sha256 {sha[:16]}…", f"row deleted outside the write path: "
                                   f"{where} {kind} it", seq))
        if out:
            return out
    return [SealFinding(table.name, where, f"rows {kind} by this command differ from what it recorded: "
                        f"{expected.get('rows')} recorded, {count} found (inserted or deleted outside the write path)",
                        seq, expected=expected.get("sha256"), actual=digest or None)]
