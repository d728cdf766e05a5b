"""One real pipeline ledger per test session; tests that tamper restore what they touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.lineage.pipeline import Pipeline, build_pipeline


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A ledger with a delivery, decisions, an approved and a rejected release, shards and a trained model."""
    return build_pipeline(tmp_path_factory.mktemp("lineage"))


@pytest.fixture()
def ledger_copy(pipeline: Pipeline, tmp_path: Path) -> Path:
    """A private copy of the pipeline's data directory (ledger, roles, shards, runs, audio); its ledger file.

    The ledger records locations relative to its directory, so the copy reads and checks its own files.
    """
    home = tmp_path / "home"
    shutil.copytree(pipeline.home, home)
    return home / pipeline.db_path.name
