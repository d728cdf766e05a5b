from __future__ import annotations

from pathlib import Path

from fingerprinting.batch import fingerprint_many
from fingerprinting.chromaprint import fingerprint_file
from tests.fingerprinting.conftest import encode, music


def test_batch_keeps_order_and_survives_bad_files(tmp_path: Path, song: Path) -> None:
    other = encode(tmp_path / "other.mp3", music(11, 15.0))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"\x00\x01not audio" * 100)
    paths = [song, empty, other, junk, tmp_path / "gone.flac"]
    outcomes = list(fingerprint_many(paths, workers=2, max_seconds=30))
    assert [o.path for o in outcomes] == paths
    assert [o.ok for o in outcomes] == [True, False, True, False, False]
    assert [o.reason_code for o in outcomes if not o.ok] == ["empty_file", "not_audio", "missing_file"]
    assert all(o.message and str(o.path) in o.message for o in outcomes if not o.ok)
    # Worker processes give the same answer as a direct call.
    assert outcomes[2].fingerprint == fingerprint_file(other, max_seconds=30)
    assert outcomes[0].fingerprint is not None and outcomes[0].fingerprint.seconds_used == 30.0


def test_empty_batch_yields_nothing() -> None:
    assert list(fingerprint_many([])) == []


def test_a_worker_killed_mid_batch_costs_no_file(tmp_path: Path) -> None:
    import os
    import signal
    import time

    from fingerprinting import batch

    paths = [encode(tmp_path / f"s{i}.flac", music(40 + i, 90.0)) for i in range(8)]
    expected = [fingerprint_file(p, max_seconds=None) for p in paths]
    batch._shutdown_pool()
    outcomes = fingerprint_many(paths, workers=2, max_seconds=None)
    first = next(outcomes)
    assert batch._pool is not None
    victim = next(iter(batch._pool[1]._processes))  # a live worker, most likely mid-file
    os.kill(victim, signal.SIGKILL)
    time.sleep(0.1)
    rest = list(outcomes)
    assert [o.ok for o in [first, *rest]] == [True] * 8, [o.message for o in rest if not o.ok]
    assert [o.fingerprint for o in [first, *rest]] == expected
    # The next batch starts a healthy pool again.
    assert all(o.ok for o in fingerprint_many(paths[:2], workers=2, max_seconds=10))


def _batch_in_child(paths: list[str]) -> None:
    assert all(o.ok for o in fingerprint_many(paths, workers=2, max_seconds=10))


def test_a_multiprocessing_child_that_used_the_pool_exits(tmp_path: Path) -> None:
    # Dagster's multiprocess executor runs each step in such a child; its exit joins its children.
    import multiprocessing

    paths = [str(encode(tmp_path / f"c{i}.flac", music(60 + i, 12.0))) for i in range(2)]
    child = multiprocessing.get_context("spawn").Process(target=_batch_in_child, args=(paths,))
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


_CHILD = """
import os, sys
from fingerprinting import batch
paths = sys.argv[1:]
assert all(o.ok for o in batch.fingerprint_many(paths, workers=2, max_seconds=5))
print(" ".join(str(p) for p in batch._pool[1]._processes), flush=True)
sys.stdin.read()  # hold the warm pool until killed
"""


def test_pool_workers_exit_when_their_caller_is_killed(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    paths = [str(encode(tmp_path / f"k{i}.flac", music(70 + i, 6.0))) for i in range(2)]
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *paths], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        workers = [int(p) for p in child.stdout.readline().split()]  # type: ignore[union-attr]
        assert len(workers) == 2
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)

        def alive(pid: int) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            # a zombie waiting for its (dying) forkserver parent counts as gone
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"

        deadline = time.monotonic() + 10
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(w) for w in workers), "pool workers outlived their killed caller"
    finally:
        child.kill()
        child.wait(10)
