from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from store.database import connect

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
DDEX = TESTDATA / "ddex"


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(tmp_path / "ledger.duckdb") as connection:
        yield connection
