from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fingerprinting import index as index_module
from fingerprinting.chromaprint import ITEM_SECONDS, SILENCE_ITEM, fingerprint_file
from fingerprinting.index import FingerprintIndex
from tests.fingerprinting.conftest import encode, music


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    d = tmp_path_factory.mktemp("catalog")
    return {f"song-{i}": fingerprint_file(encode(d / f"s{i}.flac", music(100 + i, 45.0)), max_seconds=None).items
            for i in range(4)}


def test_excerpt_finds_its_track_with_offset(tmp_path: Path, catalog: dict[str, np.ndarray]) -> None:
    idx = FingerprintIndex.open(tmp_path / "idx")
    for ref, items in catalog.items():
        idx.add(ref, items)
    excerpt = catalog["song-2"][120:250]
    matches = idx.query(excerpt)
    assert matches[0].ref == "song-2"
    assert matches[0].score == pytest.approx(1.0)
    assert matches[0].offset_s == pytest.approx(120 * ITEM_SECONDS)
    assert matches[0].span_s == pytest.approx(130 * ITEM_SECONDS)
    assert all(m.score < 0.5 for m in matches[1:])


def test_noisy_copy_matches_and_distinct_audio_does_not(tmp_path: Path, catalog: dict[str, np.ndarray]) -> None:
    idx = FingerprintIndex.open(tmp_path / "idx")
    for ref, items in list(catalog.items())[:3]:
        idx.add(ref, items)
    rng = np.random.default_rng(1)
    noisy = catalog["song-1"].copy()
    flips = rng.random((len(noisy), 32)) < 0.08  # 8% of bits wrong
    noisy ^= (flips * (1 << np.arange(32, dtype=np.uint64))).sum(axis=1).astype(np.uint32)
    top = idx.query(noisy)[0]
    assert top.ref == "song-1"
    assert top.bit_error_rate == pytest.approx(0.08, abs=0.02)
    assert idx.query(catalog["song-3"], min_score=0.5) == []


def test_silence_items_are_not_indexed(tmp_path: Path) -> None:
    idx = FingerprintIndex.open(tmp_path / "idx")
    idx.add("quiet", np.full(300, SILENCE_ITEM, dtype=np.uint32))
    assert idx.query(np.full(100, SILENCE_ITEM, dtype=np.uint32)) == []


def test_survives_restart_and_removal_is_incremental(tmp_path: Path, catalog: dict[str, np.ndarray]) -> None:
    root = tmp_path / "idx"
    with FingerprintIndex.open(root) as idx:
        idx.add("a", catalog["song-0"])
        idx.add("b", catalog["song-1"])
    idx = FingerprintIndex.open(root)
    assert idx.refs() == ["a", "b"]
    assert idx.query(catalog["song-1"])[0].ref == "b"
    assert idx.remove("b") and not idx.remove("b")
    idx.add("c", catalog["song-2"])
    assert idx.query(catalog["song-1"], min_score=0.5) == []
    assert idx.query(catalog["song-2"])[0].ref == "c"  # pending adds are searchable before commit
    reopened = FingerprintIndex.open(root)
    assert reopened.refs() == ["a", "b"]  # nothing was committed yet
    idx.commit()
    reopened = FingerprintIndex.open(root)
    assert reopened.refs() == ["a", "c"]
    assert reopened.query(catalog["song-1"], min_score=0.5) == []
    assert np.array_equal(reopened.items("c"), catalog["song-2"])


def test_replacing_a_ref_and_merging_segments(tmp_path: Path, catalog: dict[str, np.ndarray],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "MAX_SEGMENTS", 3)
    root = tmp_path / "idx"
    idx = FingerprintIndex.open(root)
    for i in range(6):
        idx.add(f"t{i}", catalog[f"song-{i % 4}"] ^ np.uint32(i * 0x01010101 if i >= 4 else 0))
        idx.commit()
    idx.add("t0", catalog["song-3"])  # t0 now holds other audio
    idx.commit()
    segments = [p for p in root.iterdir() if p.name.startswith("seg-")]
    assert len(segments) <= 3
    reopened = FingerprintIndex.open(root)
    assert len(reopened) == 6
    refs = {m.ref for m in reopened.query(catalog["song-3"], limit=10, min_score=0.9)}
    assert refs == {"t0", "t3"}
    assert "t0" not in {m.ref for m in reopened.query(catalog["song-0"], min_score=0.5)}


def _writer(root: str, refs: list[str], items: list[np.ndarray], barrier_dir: str) -> None:
    # Both writers open the index before either commits, then commit one ref at a time.
    idx = FingerprintIndex.open(root)
    Path(barrier_dir, f"ready-{refs[0]}").touch()
    while len(list(Path(barrier_dir).glob("ready-*"))) < 2:
        pass
    for ref, arr in zip(refs, items):
        idx.add(ref, arr)
        idx.commit()


def test_writers_in_two_processes_lose_nothing(tmp_path: Path, catalog: dict[str, np.ndarray]) -> None:
    import multiprocessing

    root = tmp_path / "idx"
    with FingerprintIndex.open(root) as idx:
        idx.add("seed", catalog["song-3"])
    songs = [catalog[f"song-{i}"] for i in range(3)]
    # Each writer indexes 8 refs; small shifted copies keep the segments distinct.
    jobs = {w: ([f"{w}-{k}" for k in range(8)], [np.roll(songs[k % 3], k) for k in range(8)]) for w in ("p", "q")}
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(root), refs, items, str(tmp_path))) for refs, items in jobs.values()]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    final = FingerprintIndex.open(root)
    expected = sorted(["seed", *jobs["p"][0], *jobs["q"][0]])
    assert final.refs() == expected
    doc_ids = [final._refs[r][0] for r in final.refs()]
    assert len(set(doc_ids)) == len(doc_ids)  # no two writers handed out the same document id
    assert final.query(catalog["song-3"])[0].ref == "seed"
    assert np.array_equal(final.items("q-5"), np.roll(songs[2], 5))
