from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from fingerprinting.batch import fingerprint_many
from fingerprinting.chromaprint import FingerprintError, decode_items
from fingerprinting.index import FingerprintIndex, Match
from fingerprinting.ledger import (
    MATCH_THRESHOLD,
    SHORT_SPAN_THRESHOLD,
    index_delivery,
    is_match,
    match_catalog,
    optout_matches,
    register_optout,
    store_fingerprints,
)
from store.audit import verify_chain
from store.database import connect
from store.ledger import command
from tests.fingerprinting.conftest import RATE, encode, music


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("delivery")
    master = music(21, 40.0)
    return {
        "T1": encode(d / "t1.flac", master),
        "T2": encode(d / "t2.mp3", master * 0.5),  # same master, re-encoded, another ISRC
        "T3": encode(d / "t3.flac", music(22, 40.0)),
        "T4": encode(d / "t4.flac", music(23, 40.0)),
        "T5": d / "t5-empty.wav",
        "optout": encode(d / "claim.wav", music(23, 40.0)[:, 10 * RATE: 35 * RATE]),  # 25 s of T4
    }


def _seed(con, delivery: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    delivery["T5"].write_bytes(b"")
    now = datetime.now(UTC)
    with command(con, "ops", "catalog.ingest", "delivery:D1") as w:
        w.insert("tracks", [{"track_id": tid, "delivery_id": "D1", "isrc": f"GBAYE250000{i}", "title": f"title {tid}",
                             "source_path": str(delivery[tid]), "audio_sha256": "x", "ingested_at": now}
                            for i, tid in enumerate(["T1", "T2", "T3", "T4", "T5"])])


def test_fingerprints_optouts_and_duplicates(tmp_path: Path, delivery: dict[str, Path]) -> None:
    db = tmp_path / "ledger.duckdb"
    index_dir = tmp_path / "index"
    with connect(db) as con:
        _seed(con, delivery)
        ids = ["T1", "T2", "T3", "T4", "T5"]
        outcomes = fingerprint_many([delivery[t] for t in ids], max_seconds=None, workers=2)
        summary = store_fingerprints(con, zip(ids, outcomes, strict=True), "D1", actor="test")
        assert (summary.stored, summary.quarantined, summary.by_reason) == (4, 1, {"empty_file": 1})
        q = con.execute("SELECT source_ref, stage, reason_code, message FROM quarantine").fetchall()
        assert q[0][:3] == ("T5", "fingerprint", "empty_file") and "t5-empty.wav" in q[0][3]
        items = con.execute("SELECT items, fingerprint FROM fingerprints WHERE track_id = 'T3'").fetchone()
        assert len(items[0]) > 250 and decode_items(items[1])[0].tolist() == items[0]

        entry = register_optout(con, optout_id="OPT-1", claimant="Rights Holder Ltd", audio_path=delivery["optout"],
                                isrc="GB-AYE-25-00099", title="Claimed song", actor="rights@label")
        assert entry.isrc == "GBAYE2500099"
        with pytest.raises(FingerprintError):
            register_optout(con, optout_id="OPT-2", claimant="x", audio_path=delivery["T5"], actor="rights@label")

        with FingerprintIndex.open(index_dir) as idx:  # the per-delivery index step
            assert index_delivery(con, idx, "D1") == (4, 0)
            assert index_delivery(con, idx, "D1") == (0, 0)
            assert index_delivery(con, idx, "other") == (0, 0)
        assert sorted(FingerprintIndex.open(index_dir).refs()) == [f"track:T{i}" for i in range(1, 5)]

        first = match_catalog(con, index_dir, actor="test")
        assert first.index_added == 1  # only the opt-out was still missing
        assert first.tracks == 4 and first.optouts == 1
        assert (first.tracks_denied_by_optout, first.duplicate_clusters, first.tracks_in_clusters) == (1, 1, 2)
        hits = optout_matches(con, "T4")
        assert [h.matched_ref for h in hits] == ["OPT-1"]
        assert hits[0].score >= hits[0].threshold and hits[0].offset_s == pytest.approx(-10.0, abs=0.3)
        assert hits[0].span_s == pytest.approx(25.0, abs=3.0)  # items span ~2.6 s less than the audio
        assert optout_matches(con, "T3") == []
        clusters = con.execute("SELECT cluster_id, track_id, isrc FROM duplicate_clusters ORDER BY track_id").fetchall()
        assert [c[1] for c in clusters] == ["T1", "T2"] and clusters[0][0] == clusters[1][0]
        assert {c[2] for c in clusters} == {"GBAYE2500000", "GBAYE2500001"}
        rows_before = con.execute("SELECT * FROM audio_matches ORDER BY ALL").fetchall()

        second = match_catalog(con, index_dir, actor="test")
        assert second.index_added == 0 and second.index_removed == 0
        assert con.execute("SELECT * FROM audio_matches ORDER BY ALL").fetchall() == rows_before

        with command(con, "ops", "optout.register", "optout:OPT-1") as w:  # the claim is withdrawn
            w.supersede("optout_registry", "optout_id = ?", ["OPT-1"])
        third = match_catalog(con, index_dir, actor="test")
        assert third.index_removed == 1 and optout_matches(con, "T4") == []
        assert verify_chain(con).ok
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
        assert actions == ["catalog.ingest", "fingerprint.store", "optout.register", "fingerprint.match",
                           "fingerprint.match", "optout.register", "fingerprint.match"]


def test_refingerprinting_a_failed_track_drops_its_old_fingerprint(tmp_path: Path, delivery: dict[str, Path]) -> None:
    with connect(tmp_path / "ledger.duckdb") as con:
        _seed(con, delivery)
        good = list(fingerprint_many([delivery["T3"]]))
        store_fingerprints(con, [("T3", good[0])], "D1", actor="test")
        bad = list(fingerprint_many([delivery["T5"]]))
        store_fingerprints(con, [("T3", bad[0])], "D1", actor="test")
        store_fingerprints(con, [("T3", bad[0])], "D1", actor="test")
        assert con.execute("SELECT count(*) FROM fingerprints").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM quarantine WHERE source_ref = 'T3'").fetchone() == (1,)
        assert np.asarray(good[0].fingerprint.items).size > 0  # type: ignore[union-attr]


@pytest.mark.parametrize(("score", "span_s", "query_s", "ref_s", "expected"), [
    (0.95, 25.0, 30.0, 200.0, True),     # excerpt of a long track
    (0.95, 8.0, 30.0, 200.0, False),     # too little overlap to act on
    (0.69, 25.0, 30.0, 200.0, False),    # below the score threshold
    (0.95, 4.5, 200.0, 5.5, True),       # a 5.5 s jingle matched in full
    (0.95, 1.8, 200.0, 2.0, False),      # under the floor, however short the recording
    (0.906, 2.7, 3.4, 410.0, False),     # 2.7 s of a quiet tail (80% of a short query) is under the 3 s floor
    (0.906, 3.0, 3.4, 410.0, True),
    (0.80, 12.0, 30.0, 200.0, True),     # 0.7 is enough over 10 s or more ...
    (0.80, 4.5, 200.0, 5.5, False),      # ... not over a shorter overlap, where chance agreement is larger
    (0.86, 4.5, 200.0, 5.5, True),
])
def test_is_match_needs_score_and_enough_overlap(score: float, span_s: float, query_s: float, ref_s: float,
                                                 expected: bool) -> None:
    m = Match(ref="r", score=score, offset_s=0.0, span_s=span_s, bit_error_rate=(1 - score) / 2, votes=10,
              query_start_s=0.0, ref_start_s=0.0, ref_length_s=ref_s)
    assert is_match(m, query_s) is expected


def test_a_short_overlap_is_held_to_the_higher_threshold_and_says_so(tmp_path: Path,
                                                                      delivery: dict[str, Path]) -> None:
    short = encode(tmp_path / "short-claim.flac", music(22, 40.0)[:, 12 * RATE: 20 * RATE])  # 8 s of T3
    with connect(tmp_path / "ledger.duckdb") as con:
        _seed(con, delivery)
        ids = ["T1", "T2", "T3", "T4", "T5"]
        outcomes = fingerprint_many([delivery[t] for t in ids], max_seconds=None, workers=1, landmarks=True)
        store_fingerprints(con, zip(ids, outcomes, strict=True), "D1", actor="test")
        register_optout(con, optout_id="OPT-LONG", claimant="x", audio_path=delivery["optout"], actor="rights@label")
        register_optout(con, optout_id="OPT-SHORT", claimant="x", audio_path=short, actor="rights@label")
        summary = match_catalog(con, tmp_path / "index", actor="test")
        assert summary.short_span_threshold == SHORT_SPAN_THRESHOLD
        (short_hit,) = optout_matches(con, "T3")
        (long_hit,) = optout_matches(con, "T4")
    assert (short_hit.matched_ref, short_hit.method) == ("OPT-SHORT", "chromaprint")
    assert short_hit.span_s < 10.0 and short_hit.threshold == SHORT_SPAN_THRESHOLD <= short_hit.score
    assert (long_hit.matched_ref, long_hit.threshold) == ("OPT-LONG", MATCH_THRESHOLD)
