"""The denied-tracks reads page through the same list a full scan gives, by number, by next link and by reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from licensing.evaluate import evaluate_catalog
from licensing.policy import load_policy
from licensing.synthetic import generate_catalog
from store.database import connect
from store.roles import RoleBook
from web import reads

GEN = "UseForTrainingGenerativeAI"
ON = date(2026, 3, 1)
ROLES = RoleBook(users={"ops": ("admin",)})


def _full(con: duckdb.DuckDBPyConnection, reason: str | None) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT c.track_id FROM current_decisions c JOIN decisions d USING (decision_id) WHERE c.purpose = ? "
        "AND c.territory = 'DE' AND c.on_date = ? AND NOT c.allowed AND (? IS NULL OR list_contains(d.reason_codes, ?)) "
        "ORDER BY 1", [GEN, ON, reason, reason]).fetchall()]


def _check_pages(con: duckdb.DuckDBPyConnection) -> None:
    for reason in (None, "no_deal", "consent_missing"):
        every = _full(con, reason)
        assert len(every) > 3 * reads.PAGE
        pages = -(-len(every) // reads.PAGE)
        for number in (1, 2, pages // 2, pages, pages + 1):
            found, total, by_reason = reads.denied(con, GEN, "DE", page=number, reason=reason)
            assert total == len(every) and (reason is None or by_reason[reason] == total)
            assert [r["track_id"] for r in found] == every[(number - 1) * reads.PAGE:number * reads.PAGE], number
        for i in (0, len(every) // 3, len(every) - 5):
            found, _, _ = reads.denied(con, GEN, "DE", page=2, reason=reason, after=every[i])
            assert [r["track_id"] for r in found] == [t for t in every if t > every[i]][:reads.PAGE], i


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(tmp_path / "ledger.duckdb") as con:
        generate_catalog(con, tracks=4000, seed=5, on_date=ON)
        evaluate_catalog(con, load_policy(), purpose=GEN, territory="DE", on_date=ON, actor="ops", roles=ROLES)
        yield con


def test_denied_pages_match_a_full_scan(catalog: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads, "PAGE", 20)
    _check_pages(catalog)


def test_two_policies_on_one_date_are_listed_together(catalog: duckdb.DuckDBPyConnection,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Their ranges differ, so pages by number read the whole list: still the same pages as a full scan."""
    monkeypatch.setattr(reads, "PAGE", 20)
    stricter = load_policy().model_copy(update={"version": "stricter", "share_tolerance": 0.0})
    evaluate_catalog(catalog, stricter, purpose=GEN, territory="DE", on_date=ON, actor="ops", roles=ROLES)
    assert catalog.execute("SELECT count(DISTINCT policy_hash) FROM current_decisions").fetchone() == (2,)
    _check_pages(catalog)
