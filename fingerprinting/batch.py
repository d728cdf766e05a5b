"""Fingerprint many files in parallel; one bad file never stops the batch."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fingerprinting.chromaprint import DEFAULT_MAX_SECONDS, Fingerprint, FingerprintError, fingerprint_file


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


def _one(path: Path, max_seconds: float | None) -> FingerprintOutcome:
    try:
        return FingerprintOutcome(path, fingerprint_file(path, max_seconds=max_seconds))
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


def fingerprint_many(paths: Iterable[str | os.PathLike[str]], *, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                     workers: int | None = None, progress: bool = False) -> Iterator[FingerprintOutcome]:
    """Fingerprint every path, yielding one outcome per path in input order.

    Work runs on ``workers`` threads (default: one per core); FFmpeg and libchromaprint do
    the heavy lifting without holding the GIL, so threads scale like processes here.
    """
    items = [Path(p) for p in paths]
    if not items:
        return
    workers = workers or default_workers()
    # Largest files first so the last worker is not left alone with a long track.
    order = sorted(range(len(items)), key=lambda i: -_size(items[i]))
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("fingerprinting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       transient=True)
        task = bar.add_task("fingerprint", total=len(items))
        bar.start()
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fingerprint") as pool:
            futures: dict[int, Future[FingerprintOutcome]] = {}
            for i in order:
                futures[i] = pool.submit(_one, items[i], max_seconds)
                if bar is not None:
                    futures[i].add_done_callback(lambda _f: bar.advance(task))
            for i in range(len(items)):
                yield futures[i].result()
    finally:
        if bar is not None:
            bar.stop()
