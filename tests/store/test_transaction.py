"""store.database.transaction: all-or-nothing writes, and a connection that stays usable after a failure."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from store.database import connect, transaction


def test_a_block_that_finishes_commits_and_one_that_raises_leaves_nothing(tmp_path: Path) -> None:
    with connect(tmp_path / "l.duckdb") as con:
        con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
        with transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(RuntimeError, match="half way"), transaction(con):
            con.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("half way")
        assert con.execute("SELECT k FROM t ORDER BY k").fetchall() == [(1,)]
    with connect(tmp_path / "l.duckdb") as con:  # committed means on disk
        assert con.execute("SELECT k FROM t").fetchall() == [(1,)]


def test_a_constraint_failure_rolls_back_and_the_connection_goes_on(tmp_path: Path) -> None:
    with connect(tmp_path / "l.duckdb") as con:
        con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
        con.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(duckdb.ConstraintException), transaction(con):
            con.execute("INSERT INTO t VALUES (2)")
            con.execute("INSERT INTO t VALUES (1)")
        # No transaction is left open: the next one begins and commits normally.
        with transaction(con):
            con.execute("INSERT INTO t VALUES (3)")
        assert con.execute("SELECT k FROM t ORDER BY k").fetchall() == [(1,), (3,)]
