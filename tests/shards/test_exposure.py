import json

import pytest

from shards.exposure import ExposureRecorder, read_exposure


def test_records_per_rank_and_epoch_and_reads_back_as_table(tmp_path) -> None:
    r0 = ExposureRecorder(tmp_path, run_id="run-1", rank=0)
    r1 = ExposureRecorder(tmp_path, run_id="run-1", rank=1)
    r0.record(0, 1, ["a:0000", "a:0001"])
    r1.record(0, 1, ["b:0000"])
    r0.record(1, 2, ["c:0000"])
    table = read_exposure(tmp_path).sort_by([("rank", "ascending"), ("step", "ascending"), ("sample_id", "ascending")])
    assert table.column_names == ["run_id", "rank", "epoch", "step", "sample_id"]
    assert table.to_pylist() == [
        {"run_id": "run-1", "rank": 0, "epoch": 0, "step": 1, "sample_id": "a:0000"},
        {"run_id": "run-1", "rank": 0, "epoch": 0, "step": 1, "sample_id": "a:0001"},
        {"run_id": "run-1", "rank": 0, "epoch": 1, "step": 2, "sample_id": "c:0000"},
        {"run_id": "run-1", "rank": 1, "epoch": 0, "step": 1, "sample_id": "b:0000"},
    ]
    assert (tmp_path / "run=run-1" / "rank=0" / "epoch=00001.jsonl").exists()


def test_rollback_after_crash_drops_later_steps_and_refuses_replays(tmp_path) -> None:
    rec = ExposureRecorder(tmp_path, run_id="r", rank=0)
    for step in range(1, 6):
        rec.record(0 if step < 4 else 1, step, [f"s:{step:04d}"])
    # A new process after a crash: the checkpoint was taken at step 3.
    resumed = ExposureRecorder(tmp_path, run_id="r", rank=0)
    assert resumed.last_step == 5
    with pytest.raises(ValueError):
        resumed.record(1, 4, ["s:0004"])
    assert resumed.rollback_to(3) == 2
    resumed.record(1, 4, ["s:0004"])
    steps = sorted(read_exposure(tmp_path).column("step").to_pylist())
    assert steps == [1, 2, 3, 4]


def test_torn_last_line_is_ignored_and_cut_on_reopen(tmp_path) -> None:
    rec = ExposureRecorder(tmp_path, run_id="r", rank=0)
    rec.record(0, 1, ["a:0000"])
    path = tmp_path / "run=r" / "rank=0" / "epoch=00000.jsonl"
    with open(path, "ab") as handle:
        handle.write(b'{"run_id":"r","rank":0,"epoch":0,"step":2,"sample_ids":["b:00')
    assert read_exposure(tmp_path).column("sample_id").to_pylist() == ["a:0000"]
    again = ExposureRecorder(tmp_path, run_id="r", rank=0)
    assert again.last_step == 1
    again.record(0, 2, ["b:0000"])
    lines = path.read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == [1, 2]


def test_rejects_unsafe_run_ids(tmp_path) -> None:
    with pytest.raises(ValueError):
        ExposureRecorder(tmp_path, run_id="../x", rank=0)
