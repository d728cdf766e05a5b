"""Dagster resources: the data directory and its ledger."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb

from store.database import connect
from store.home import Home


class LedgerResource(dg.ConfigurableResource):
    """The linernotes data directory (``LINERNOTES_HOME`` when unset) and the DuckDB ledger in it."""

    home: str | None = None

    def data_home(self) -> Home:
        return Home.from_env(self.home).ensure()

    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.data_home().db_path, read_only=read_only) as con:
            yield con
