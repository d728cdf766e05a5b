"""Fingerprint many files in parallel; one bad file never stops the batch."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.util
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from fingerprinting.chromaprint import (
    DEFAULT_MAX_SECONDS,
    Fingerprint,
    FingerprintError,
    fingerprint_file,
)


@dataclass(frozen=True)
class FingerprintOutcome:
    """A file's fingerprint, or the reason it has none."""

    path: Path
    fingerprint: Fingerprint | None = None
    reason_code: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.fingerprint is not None


def _one(path: Path, max_seconds: float | None, landmarks: bool = False) -> FingerprintOutcome:
    try:
        return FingerprintOutcome(path, fingerprint_file(path, max_seconds=max_seconds, landmarks=landmarks))
    except FingerprintError as exc:
        return FingerprintOutcome(path, reason_code=exc.reason_code, message=exc.message)
    except Exception as exc:  # noqa: BLE001 - a batch must outlive any single file
        return FingerprintOutcome(path, reason_code="internal_error", message=f"{path}: {type(exc).__name__}: {exc}")


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


_pool_lock = threading.Lock()
_pool: tuple[int, ProcessPoolExecutor] | None = None


def _shutdown_pool(wait: bool = False) -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool[1].shutdown(wait=wait, cancel_futures=True)
            _pool = None


def _exit_with_parent() -> None:
    """Worker initializer: end this worker when the process that started the pool dies.

    A pool worker otherwise waits on its task queue forever once its caller is killed (SIGKILL,
    OOM), and keeps the forkserver alive with it.
    """
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _process_pool(workers: int, *, fresh: bool = False) -> ProcessPoolExecutor:
    """A warm pool of worker processes, kept for the next batch (FFmpeg's decoders do not scale on threads)."""
    global _pool
    with _pool_lock:
        if _pool is not None and (fresh or _pool[0] != workers or getattr(_pool[1], "_broken", False)):
            _pool[1].shutdown(wait=False, cancel_futures=True)
            _pool = None
        if _pool is None:
            # forkserver: workers start from a clean, single-threaded server with the decoder
            # already imported, never from a copy of a multi-threaded caller.
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["fingerprinting.chromaprint"])
            _pool = (workers, ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_exit_with_parent))
            # multiprocessing runs this finalizer at any exit, the main process's included. A child
            # (e.g. a Dagster step process) skips atexit and joins its children on the way out: the
            # idle workers must stop before that join, and before multiprocessing closes the pool's
            # queues (their finalizers have priority 10).
            multiprocessing.util.Finalize(None, _shutdown_pool, kwargs={"wait": True}, exitpriority=100)
        return _pool[1]


def _workers_can_start() -> bool:
    """Worker processes re-import ``__main__``: impossible when it came from stdin or a notebook cell."""

    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return True
    path = getattr(main, "__file__", None)
    return path is None or Path(path).is_file()


def _crashed(path: Path) -> FingerprintOutcome:
    return FingerprintOutcome(path, reason_code="decoder_crashed",
                              message=f"{path}: the decoder process died on this file")


def fingerprint_many(paths: Iterable[str | os.PathLike[str]], *, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                     workers: int | None = None, progress: bool = False,
                     landmarks: bool = False) -> Iterator[FingerprintOutcome]:
    """Fingerprint every path, yielding one outcome per path in input order.

    With more than one worker, files are decoded in a pool of worker processes (one per core
    by default) that stays warm for the next call; a file that crashes its decoder gets a
    ``decoder_crashed`` outcome and the rest of the batch goes on. ``landmarks=True`` adds
    each file's landmark fingerprint, computed from the same decoded samples.
    """
    items = [Path(p) for p in paths]
    if not items:
        return
    workers = min(workers or default_workers(), len(items))
    advance: Callable[[], None] = lambda: None  # noqa: E731
    bar = None
    if progress:

        bar = Progress(TextColumn("fingerprinting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       transient=True)
        task = bar.add_task("fingerprint", total=len(items))
        bar.start()
        advance = lambda: bar.advance(task)  # noqa: E731
    try:
        if workers == 1 or not _workers_can_start():
            for path in items:
                yield _one(path, max_seconds, landmarks)
                advance()
            return
        yield from _in_processes(items, max_seconds, workers, advance, landmarks)
    finally:
        if bar is not None:
            bar.stop()


def _in_processes(items: list[Path], max_seconds: float | None, workers: int,
                  advance: Callable[[], None], landmarks: bool = False) -> Iterator[FingerprintOutcome]:
    # Largest files first so the last worker is not left alone with a long track.
    order = sorted(range(len(items)), key=lambda i: -_size(items[i]))
    pool = _process_pool(workers)
    futures: dict[int, Future[FingerprintOutcome]] = {}
    for i in order:
        futures[i] = pool.submit(_one, items[i], max_seconds, landmarks)
        futures[i].add_done_callback(lambda _f: advance())
    for i in range(len(items)):
        try:
            yield futures[i].result()
        except BrokenProcessPool:
            # A worker died (a decoder crash kills the whole pool): redo this file alone, so
            # only the file that really crashes is marked and the others still get fingerprints.
            try:
                yield _process_pool(1).submit(_one, items[i], max_seconds, landmarks).result()
            except BrokenProcessPool:
                yield _crashed(items[i])
