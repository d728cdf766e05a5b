"""The write path stays the only one: no product module writes a ledger table with SQL of its own, and every
permission in the roles table guards a command that exists."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from store.database import apply_schema
from store.roles import PERMISSIONS
from store.sealing import sealed_tables

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "store", "catalog", "fingerprinting", "licensing", "shards", "training", "lineage", "assets",
            "dagster_project", "web")
# The write path itself, and the schema it applies.
WRITE_PATH = {"store/ledger.py", "store/sealing.py", "store/audit.py", "store/database.py"}
# Derived tables: rebuilt by commands through Writer.execute and checked by `audit verify` against their source.
DERIVED = {"current_decisions", "decision_counts"}
WRITE = re.compile(r"\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+\"?([a-z_][a-z0-9_]*)", re.IGNORECASE)


def _product_files() -> list[Path]:
    return [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]


def test_no_module_writes_a_ledger_table_outside_the_write_path() -> None:
    con = duckdb.connect()
    apply_schema(con)
    ledger_tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "deals" in sealed_tables(con) and "approvals" in sealed_tables(con)
    offenders = []
    for path in _product_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel in WRITE_PATH:
            continue
        for match in WRITE.finditer(path.read_text(encoding="utf-8")):
            table = match.group(1).lower()
            if table in ledger_tables and table not in DERIVED:
                offenders.append(f"{rel}: {match.group(0)}")
    assert not offenders, "ledger tables written outside store/ledger.py:\n" + "\n".join(offenders)


def test_every_permission_guards_a_command_and_every_command_has_a_permission() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in _product_files())
    unused = [action for action in PERMISSIONS if f'"{action}"' not in source and f"'{action}'" not in source]
    assert not unused, f"permissions no command checks: {unused}"
    named = set(re.findall(r'command\([^)]*?,\s*[^,()]+,\s*"([a-z_]+\.[a-z_]+)"', source))
    named |= set(re.findall(r'authorize\([^)]*?,\s*[^,()]+,\s*"([a-z_]+\.[a-z_]+)"', source))
    assert named, "no command found: the pattern is stale"
    assert not named - set(PERMISSIONS), f"commands without a permission rule: {sorted(named - set(PERMISSIONS))}"
