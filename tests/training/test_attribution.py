"""The attribution statement: exact totals, ownership shares, unattributed remainders, exports."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from store.database import connect
from store.ledger import command
from store.sealing import verify_sealed
from tests.training.ledger_fixture import RELEASE, TRACKS, seed_ledger
from training import attribution


def exposure_table(rows: list[tuple[str, int, int, int, str]]) -> pa.Table:
    run_ids, ranks, epochs, steps, sample_ids = zip(*rows) if rows else ((), (), (), (), ())
    return pa.table({"run_id": pa.array(run_ids, pa.string()), "rank": pa.array(ranks, pa.int32()),
                     "epoch": pa.array(epochs, pa.int32()), "step": pa.array(steps, pa.int64()),
                     "sample_id": pa.array(sample_ids, pa.string())})


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 10**9),
       shares=st.lists(st.decimals(min_value=0, max_value=100, places=2), min_size=0, max_size=6))
def test_apportion_sums_exactly_and_stays_within_one_unit(total: int, shares: list[Decimal]) -> None:
    weights = attribution._holder_weights([(f"p{i}", float(s)) for i, s in enumerate(shares)])
    parts = attribution._apportion(total, weights)
    assert sum(parts.values()) == total
    weight_sum = sum(weights.values(), Fraction(0))
    for key, part in parts.items():
        assert abs(part - total * weights[key] / weight_sum) < 1


def test_statement_applies_shares_and_sums_to_samples_consumed(tmp_path) -> None:
    db = tmp_path / "ledger.duckdb"
    seed_ledger(db)
    a1, a2, a3 = (t.track_id for t in TRACKS)
    rows = []
    # Two ranks, two epochs; a1 seen 5 times, a2 3 times, a3 1 time; a row from another run is ignored.
    for i, (track, crop) in enumerate([(a1, 0), (a1, 1), (a1, 2), (a2, 0), (a2, 1), (a1, 3), (a1, 0), (a2, 2), (a3, 0)]):
        rows.append(("run_x", i % 2, i // 5, i // 2 + 1, f"{track}:{crop:04d}"))
    rows.append(("run_other", 0, 0, 1, f"{a3}:0001"))
    with connect(db) as con:
        statement = attribution.build_statement(con, run_id="run_x", release_id=RELEASE, manifest_sha256=None,
                                                exposure=exposure_table(rows))
    assert statement.total_samples == 9
    assert (statement.epochs, statement.ranks) == (2, 2)
    assert {t.track_id: t.samples for t in statement.tracks} == {a1: 5, a2: 3, a3: 1}
    holders = {h.party_id: h for h in statement.rights_holders}
    # a1 is split 50/50 alpha/beta, a2 is all alpha, a3 is 33.33% gamma and the rest unattributed.
    assert holders["pty_alpha"].samples_milli == 2500 + 3000
    assert holders["pty_beta"].samples_milli == 2500
    assert holders["pty_gamma"].samples_milli == 333
    assert holders["unattributed"].samples_milli == 667
    assert (holders["pty_alpha"].tracks, holders["pty_alpha"].name) == (2, "Alpha Records")
    assert sum(h.samples_milli for h in statement.rights_holders) == 9 * 1000
    assert abs(sum(h.fraction for h in statement.rights_holders) - 1) < 1e-12

    paths = attribution.write_statement(statement, tmp_path / "out")
    with paths["holders_csv"].open() as handle:
        csv_rows = list(csv.DictReader(handle))
    assert sum(Decimal(r["samples"]) for r in csv_rows) == Decimal(9)
    assert [r["party_id"] for r in csv_rows][0] == "pty_alpha"
    with paths["tracks_csv"].open() as handle:
        assert sum(int(r["samples"]) for r in csv.DictReader(handle)) == 9
    assert json.loads(paths["json"].read_text())["total_samples"] == 9

    with connect(db) as con:
        for _ in range(2):  # re-recording replaces (the replaced rows kept in history), never doubles
            with command(con, "ml@label", "train.start", "run_x") as w:
                attribution.record_statement(w, statement)
        assert con.execute("SELECT sum(samples) FROM training_exposure WHERE run_id='run_x'").fetchone()[0] == 9
        assert con.execute("SELECT sum(samples_milli) FROM training_attribution").fetchone()[0] == 9000
        assert con.execute("SELECT count(*) FROM training_exposure__history").fetchone()[0] == 3
        assert verify_sealed(con)[0] == []


def test_empty_exposure_gives_an_empty_statement(tmp_path) -> None:
    db = tmp_path / "ledger.duckdb"
    seed_ledger(db)
    with connect(db) as con:
        statement = attribution.build_statement(con, run_id="run_x", release_id=RELEASE, manifest_sha256=None,
                                                exposure=exposure_table([]))
    assert statement.total_samples == 0 and statement.tracks == () and statement.rights_holders == ()
