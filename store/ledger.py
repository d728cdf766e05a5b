"""The one write path: a command checks the actor's role, writes sealed rows and appends its audit entry,
all in one transaction, and signs the head it leaves.

Every change to the record goes through :func:`command`::

    with command(con, actor, "release.approve", release_id, roles=roles) as w:
        w.update("releases", "release_id = ?", [release_id], {"status": "approved"})
        w.insert("approvals", [{"release_id": release_id, "actor": w.actor, ...}])
        w.payload["comment"] = comment

The role check comes first: a refusal is itself recorded (``<action>.refused``) and raises
:class:`~store.roles.RoleRefused`; nothing else is written. Inside, the :class:`Writer` is the only
way to touch a sealed table (see :mod:`store.sealing`): rows are inserted with their content hash
and the command's audit sequence number, and a row is never changed in place: the version it
replaces moves to ``<table>__history``. When the block ends the audit entry is appended with what
the command sealed and superseded, and the new head is signed; an exception rolls everything back.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from schemas.canonical import canonical_json
from store import audit
from store.database import transaction
from store.roles import (
    PERMISSIONS,
    Principal,
    RoleBook,
    RoleRefused,
    RolesError,
    as_principal,
    data_root,
    load_roles,
    roles_path_for,
)
from store.sealing import SUPERSEDED_COLUMN, SealedTable, check_identifier, sealed_tables, summarize
from store.signing import load_key

_WRITE_TARGET = re.compile(r"^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|DELETE\s+FROM|UPDATE|CREATE\s+(?:OR\s+REPLACE\s+)?"
                           r"(?:TEMP\s+|TEMPORARY\s+)?TABLE(?:\s+IF\s+NOT\s+EXISTS)?)\s+\"?([A-Za-z_][A-Za-z0-9_]*)",
                           re.IGNORECASE)
_active: set[int] = set()
_stage_ids = itertools.count()


class LedgerError(RuntimeError):
    """A programming error on the write path (nested command, write to a sealed table by raw SQL)."""


@dataclass
class Writer:
    """The handle a command writes through; ``payload`` is merged into the command's audit entry."""

    con: duckdb.DuckDBPyConnection
    seq: int
    principal: Principal
    action: str
    subject: str
    tables: dict[str, SealedTable]
    payload: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    written: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)
    entry_hash: str | None = None

    @property
    def actor(self) -> str:
        return self.principal.name

    def _table(self, name: str) -> SealedTable:
        table = self.tables.get(check_identifier(name))
        if table is None:
            raise LedgerError(f"{name} is not a sealed ledger table")
        return table

    def _columns_of(self, query: str, params: Any) -> list[str]:
        return [d[0] for d in self.con.execute(f"SELECT * FROM ({query}) LIMIT 0", params).description]

    def insert_query(self, table: str, query: str, params: Any = None) -> int:
        """Insert the rows ``query`` selects (columns by name; missing ones are NULL), sealed."""
        t = self._table(table)
        present = self._columns_of(query, params)
        unknown = sorted(set(present) - set(t.columns))
        if unknown:
            raise LedgerError(f"{table} has no column(s) {unknown}")
        cols = ", ".join(f'"{c}"' for c in t.columns)
        sql = (f'INSERT INTO "{t.name}" ({cols}, row_sha256, audit_seq) '
               f"SELECT {cols}, {t.hash_sql('c')}, {int(self.seq)} FROM "
               f"(SELECT {t.cast_select('q', present)} FROM ({query}) q) c")
        count = self.con.execute(sql, params).fetchall()[0][0]
        if count:
            self.written.add(t.name)
        return int(count)

    @contextlib.contextmanager
    def _staged(self, table: SealedTable, rows: Sequence[Mapping[str, Any]] | pa.Table) -> Iterator[str]:
        if not isinstance(rows, pa.Table):
            json_cols = {c for c, ty in zip(table.columns, table.types) if ty == "JSON"}
            rows = pa.Table.from_pylist([
                {k: (canonical_json(v) if k in json_cols and v is not None and not isinstance(v, str) else v)
                 for k, v in row.items()} for row in rows])
        name = f"_ln_stage_{next(_stage_ids)}"
        self.con.execute("SELECT 1").fetchall()  # a caller's unfinished result would block register()
        self.con.register(name, rows)
        try:
            yield name
        finally:
            self.con.unregister(name)

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]] | pa.Table) -> int:
        """Insert rows (dicts or an Arrow table, columns by name), sealed; return how many."""
        if len(rows) == 0:
            return 0
        t = self._table(table)
        with self._staged(t, rows) as staged:
            return self.insert_query(table, f"SELECT * FROM {staged}")

    def supersede(self, table: str, where: str, params: Any = None) -> int:
        """Move the rows ``where`` selects to the table's history (replaced by this command); return how many."""
        t = self._table(table)
        moved = self.con.execute(f'INSERT INTO "{t.history}" BY NAME SELECT *, {int(self.seq)} AS {SUPERSEDED_COLUMN} '
                                 f'FROM "{t.name}" WHERE {where}', params).fetchall()[0][0]
        if moved:
            self.con.execute(f'DELETE FROM "{t.name}" WHERE {where}', params)
            self.replaced.add(t.name)
        return int(moved)

    def update(self, table: str, where: str, params: Sequence[Any] | None, changes: Mapping[str, Any]) -> int:
        """A new version of each row ``where`` selects, with ``changes`` applied; the old one goes to history."""
        t = self._table(table)
        types = dict(zip(t.columns, t.types))
        for column in changes:
            if column not in types:
                raise LedgerError(f"{table} has no column {column!r}")
        staged = f"_ln_update_{next(_stage_ids)}"
        replace = ", ".join(f'CAST(? AS {types[c]}) AS "{c}"' for c in changes)
        values = [canonical_json(v) if types[c] == "JSON" and v is not None and not isinstance(v, str) else v
                  for c, v in changes.items()]
        self.con.execute(f'CREATE OR REPLACE TEMP TABLE {staged} AS SELECT * EXCLUDE (row_sha256, audit_seq) '
                         f'REPLACE ({replace}) FROM "{t.name}" WHERE {where}', [*values, *(params or [])])
        try:
            self.supersede(table, where, list(params or []))
            return self.insert_query(table, f"SELECT * FROM {staged}")
        finally:
            self.con.execute(f"DROP TABLE IF EXISTS {staged}")

    def upsert(self, table: str, rows: Sequence[Mapping[str, Any]] | pa.Table, key: Sequence[str]) -> tuple[int, int]:
        """Insert rows, replacing (to history) those with the same ``key`` and other content; identical rows
        are left as they are. Returns (rows written, rows unchanged)."""
        if len(rows) == 0:
            return 0, 0
        t = self._table(table)
        on = " AND ".join(f't."{check_identifier(k)}" IS NOT DISTINCT FROM s."{k}"' for k in key)
        on_live = " AND ".join(f'"{t.name}"."{k}" IS NOT DISTINCT FROM s."{k}"' for k in key)
        with self._staged(t, rows) as staged:
            present = self._columns_of(f"SELECT * FROM {staged}", None)
            cand = f"_ln_upsert_{next(_stage_ids)}"
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {cand} AS SELECT c.*, {t.hash_sql('c')} AS row_sha256 "
                             f"FROM (SELECT {t.cast_select('q', present)} FROM {staged} q) c")
        try:
            same = self.con.execute(f'SELECT count(*) FROM {cand} s WHERE EXISTS (SELECT 1 FROM "{t.name}" t '
                                    f"WHERE {on} AND t.row_sha256 = s.row_sha256)").fetchall()[0][0]
            self.supersede(table, f"EXISTS (SELECT 1 FROM {cand} s WHERE {on_live} "
                                  f'AND s.row_sha256 IS DISTINCT FROM "{t.name}".row_sha256)')
            written = self.insert_query(table, f'SELECT * EXCLUDE (row_sha256) FROM {cand} s WHERE NOT EXISTS '
                                               f'(SELECT 1 FROM "{t.name}" t WHERE {on})')
        finally:
            self.con.execute(f"DROP TABLE IF EXISTS {cand}")
        return written, int(same)

    def unchanged(self, table: str, row: Mapping[str, Any], key: Sequence[str]) -> bool:
        """Whether the live row with ``row``'s key already has exactly this content."""
        t = self._table(table)
        on = " AND ".join(f't."{check_identifier(k)}" IS NOT DISTINCT FROM s."{k}"' for k in key)
        with self._staged(t, [row]) as staged:
            present = self._columns_of(f"SELECT * FROM {staged}", None)
            hit = self.con.execute(f'SELECT count(*) FROM (SELECT {t.cast_select("q", present)} FROM {staged} q) s '
                                   f'JOIN "{t.name}" t ON {on} WHERE t.row_sha256 = {t.hash_sql("s")}').fetchall()
        return bool(hit[0][0])

    def execute(self, sql: str, params: Any = None) -> duckdb.DuckDBPyConnection:
        """Raw SQL for derived and temporary tables only; a sealed table is written through the methods above."""
        match = _WRITE_TARGET.match(sql)
        if match and (match.group(1) in self.tables or match.group(1).endswith("__history")):
            raise LedgerError(f"{match.group(1)} is sealed: write it through insert/update/supersede/upsert")
        return self.con.execute(sql, params)

    def note(self, action: str, subject: str, payload: dict[str, Any]) -> None:
        """A further audit entry by the same principal, appended after the command's own."""
        self.notes.append((action, subject, payload))


def _roles(con: duckdb.DuckDBPyConnection, roles: RoleBook | None) -> RoleBook:
    return roles if roles is not None else load_roles(roles_path_for(con))


def record_refusal(con: duckdb.DuckDBPyConnection, actor: Principal | str, action: str, subject: str, *,
                   code: str, message: str, details: dict[str, Any] | None = None) -> int:
    """Append ``<action>.refused`` (who tried what, and why not) in its own transaction; return its seq."""
    principal = as_principal(actor)
    with _entry(con) as (seq, prev):
        payload = {"code": code, "message": message, "principal": principal.audit(), **(details or {})}
        entry = audit.append(con, seq=seq, prev=prev, actor=principal.name, action=f"{action}.refused",
                             subject=subject, payload=payload)
        _sign(con, seq, entry)
    return seq


@contextlib.contextmanager
def _entry(con: duckdb.DuckDBPyConnection) -> Iterator[tuple[int, str]]:
    if id(con) in _active:
        raise LedgerError("a command is already open on this connection: compose commands through their writers")
    _active.add(id(con))
    try:
        with transaction(con):
            seq, prev = audit.head(con)
            yield seq + 1, prev
    finally:
        _active.discard(id(con))


def _sign(con: duckdb.DuckDBPyConnection, seq: int, entry_hash: str) -> None:
    audit.sign_head(con, load_key(data_root(con)), seq, entry_hash)


def authorize(con: duckdb.DuckDBPyConnection, actor: Principal | str, action: str, subject: str, *,
              roles: RoleBook | None = None) -> RoleBook:
    """Return the role book if ``actor`` may perform ``action``; otherwise record the refusal and raise.

    A missing or broken roles file refuses everything (deny by default); so does an action with no
    rule, and a name the roles file does not list.
    """
    principal = as_principal(actor)
    allowed = PERMISSIONS.get(action)
    code, message, book = "", "", RoleBook()
    if allowed is None:
        code, message = "unknown_action", f"no permission rule for action {action!r}"
    else:
        try:
            book = _roles(con, roles)
        except RolesError as exc:
            code, message = "roles_unavailable", str(exc)
        else:
            held = set(book.roles_of(principal.name))
            service = principal.via if principal.method == "service_for" else principal.name
            if principal.method in ("service", "service_for") and not (
                    service in book.users and book.users[service].service):
                code = "unknown_service"
                message = f"{service} is not a service account in {book.source or 'the roles given'} (service: true)"
            elif principal.name not in book.users:
                code = "unknown_user"
                message = f"{principal.name} is not a user in {book.source or 'the roles given'}"
            elif "admin" not in held and not held & allowed:
                needed = " or ".join(sorted(allowed)) or "admin"
                code = "role_missing"
                message = (f"{principal.name} may not {action} (needs {needed}; has "
                           f"{', '.join(sorted(held)) or 'no role'}; roles from {book.source or 'argument'})")
    if code:
        record_refusal(con, principal, action, subject, code=code, message=message)
        raise RoleRefused(code, message)
    return book


@contextlib.contextmanager
def command(con: duckdb.DuckDBPyConnection, actor: Principal | str, action: str, subject: str, *,
            roles: RoleBook | None = None, payload: dict[str, Any] | None = None,
            record_as: str | None = None) -> Iterator[Writer]:
    """Check the role, then yield a :class:`Writer` inside one transaction; append and sign the audit entry.

    ``action`` is the permission checked; the audit entry is recorded under ``record_as`` when given
    (``rights.import.rejected``, say), else under ``action``.
    """
    principal = as_principal(actor)
    book = authorize(con, principal, action, subject, roles=roles)
    with _entry(con) as (seq, prev):
        writer = Writer(con=con, seq=seq, principal=principal, action=action, subject=subject,
                        tables=sealed_tables(con), payload=dict(payload or {}))
        yield writer
        body: dict[str, Any] = {**writer.payload, "principal": principal.audit()}
        if book.sha256:
            body["roles_sha256"] = book.sha256
        seal = {n: s for n in sorted(writer.written) if (s := summarize(con, writer.tables[n], seq))}
        gone = {n: s for n in sorted(writer.replaced) if (s := summarize(con, writer.tables[n], seq, superseded=True))}
        if seal:
            body["seal"] = seal
        if gone:
            body["superseded"] = gone
        entry = audit.append(con, seq=seq, prev=prev, actor=principal.name, action=record_as or action,
                             subject=writer.subject, payload=body)
        writer.entry_hash = entry
        last = (seq, entry)
        for offset, (note_action, note_subject, note_payload) in enumerate(writer.notes, start=1):
            entry = audit.append(con, seq=seq + offset, prev=last[1], actor=principal.name, action=note_action,
                                 subject=note_subject, payload={**note_payload, "principal": principal.audit(),
                                                                "part_of": seq})
            last = (seq + offset, entry)
        _sign(con, *last)
