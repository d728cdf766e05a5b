"""One real pipeline ledger per test session; tests that tamper restore what they touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lineage.pipeline import Pipeline, build_pipeline


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A ledger with a delivery, decisions, an approved and a rejected release, shards and a trained model."""
    return build_pipeline(tmp_path_factory.mktemp("lineage"))


@pytest.fixture()
def ledger_copy(pipeline: Pipeline, tmp_path: Path) -> Path:
    """A private copy of the pipeline's ledger file (its files stay shared with the session)."""
    import shutil

    target = tmp_path / "linernotes.duckdb"
    shutil.copy2(pipeline.db_path, target)
    (tmp_path / "roles.yaml").write_text((pipeline.home / "roles.yaml").read_text())
    return target
