import numpy as np
import pytest

from schemas.shards import LongformConfig
from shards.exposure import ExposureRecorder, read_longform_exposure
from shards.longform import _decode, build_longform
from shards.longform_loader import LongformDataset, count_tokens, make_longform_loader
from store.database import connect
from tests.shards.ledger import isrc_for, make_release

SECONDS = [3.5, 7.0, 1.2, 5.0, 2.5, 6.2]
WINDOW = {"window_seconds": 2.0, "max_windows": 3}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lf")
    from tests.roles import write_test_roles

    write_test_roles(tmp)
    release = make_release(tmp, seconds=SECONDS)
    with connect(release.db_path) as con:
        build_longform(con, release.release_id, output_uri=str(tmp / "out"), actor="ml@x",
                       config=LongformConfig(sample_rate=16000, channels=1, rows_per_shard=4))
    return release, str(tmp / "out")


def _ds(built, **kw) -> LongformDataset:
    release, out = built
    return LongformDataset(out, ledger_path=release.db_path, **{**WINDOW, "batch_size": 2, **kw})


def test_items_are_whole_recordings_cut_into_padded_windows(built) -> None:
    release, _ = built
    ds = _ds(built, batch_size=1, shuffle=False)
    items = {b["track_id"][0]: b for b in ds}
    assert len(items) == 6
    long = items[release.track_ids[1]]  # 7.0 s: three full 2 s windows, the rest is past max_windows
    assert tuple(long["audio"].shape) == (1, 3, 1, 32000) and long["window_frames"][0].tolist() == [32000] * 3
    source, _, _ = _decode(str(release.audio[release.track_ids[1]]), 16000, 1)
    expect = source[:96000].astype(np.float32) / 32768.0
    assert np.allclose(long["audio"][0, :, 0].reshape(-1).numpy(), expect, atol=1 / 32768)
    assert long["audio_seconds"] == [6.0]
    short = items[release.track_ids[2]]  # 1.2 s: one window, zero-padded after 19 200 frames
    assert short["window_frames"][0].tolist() == [19200] and short["window_mask"][0].tolist() == [True]
    assert float(short["audio"][0, 0, 0, 19200:].abs().max()) == 0.0
    assert short["audio_seconds"] == [pytest.approx(1.2, abs=0.01)]
    caption = short["texts"][0][0]["text"]
    assert short["text_tokens"] == [count_tokens(caption)] and short["text_tokens"][0] > 5


def test_batches_are_bucketed_by_length_and_the_order_is_deterministic(built) -> None:
    ds = _ds(built, bucket_batches=3, seed=5)
    batches = [b for b in ds]
    assert sorted(s for b in batches for s in b["sample_id"]) == sorted(s for b in _ds(built) for s in b["sample_id"])
    # One bucket holds all six (window counts 2, 3, 1, 3, 2, 3): batches pair neighbours in length order.
    windows = sorted(tuple(sorted(b["window_mask"].sum(dim=1).tolist())) for b in batches)
    assert windows == [(1, 2), (2, 3), (3, 3)]
    again = [b["sample_id"] for b in _ds(built, bucket_batches=3, seed=5)]
    assert again == [b["sample_id"] for b in batches]
    orders = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        orders.add(tuple(s for b in ds for s in b["sample_id"]))
    assert len(orders) > 1


def test_ranks_are_disjoint_and_cover_everything(built) -> None:
    ranks = [[s for b in _ds(built, rank=r, world_size=2, seed=3) for s in b["sample_id"]] for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1]) and len(ranks[0]) + len(ranks[1]) == 6


def test_exact_resume_with_workers_and_exposure_in_seconds_and_tokens(built, tmp_path) -> None:
    full = [b["sample_id"] for b in make_longform_loader(_ds(built, seed=9), num_workers=2)]
    ds = _ds(built, seed=9)
    recorder = ExposureRecorder(tmp_path / "exp", run_id="r1", rank=0)
    seen = []
    for step, batch in enumerate(make_longform_loader(ds, num_workers=2)):
        ds.mark_consumed(batch["batch_index"])
        recorder.record(0, step, batch["sample_id"], isrcs=batch["isrc"], audio_seconds=batch["audio_seconds"],
                        text_tokens=batch["text_tokens"])
        seen.append(batch["sample_id"])
        if step == 1:
            break
    state = ds.state_dict()
    resumed = _ds(built, seed=9)
    resumed.load_state_dict(state)
    rest = []
    for step, batch in enumerate(make_longform_loader(resumed, num_workers=1), start=2):
        recorder.record(0, step, batch["sample_id"], isrcs=batch["isrc"], audio_seconds=batch["audio_seconds"],
                        text_tokens=batch["text_tokens"])
        rest.append(batch["sample_id"])
    assert seen + rest == full
    with pytest.raises(ValueError, match="seed"):
        _ds(built, seed=10).load_state_dict(state)

    exposure = {r["isrc"]: r for r in read_longform_exposure(tmp_path / "exp").to_pylist()}
    assert sorted(exposure) == sorted(isrc_for(i) for i in range(6))
    for i, seconds in enumerate(SECONDS):
        row = exposure[isrc_for(i)]
        assert row["samples"] == 1 and row["audio_seconds"] == pytest.approx(min(seconds, 6.0), abs=0.02)
        assert row["text_tokens"] > 5
