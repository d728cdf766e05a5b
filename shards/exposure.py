"""Which samples each training rank consumed, step by step: the record attribution is computed from.

Files are JSON Lines, one per (run, rank, epoch): ``run=<run_id>/rank=<rank>/epoch=<epoch>.jsonl``,
one line per optimizer step ``{"run_id", "rank", "epoch", "step", "sample_ids"}``. Each ``record``
is appended, flushed and fsynced before returning, so a crash loses at most the step being written;
a torn last line is ignored on read and cut off when the recorder reopens. After a restart from a
checkpoint, :meth:`ExposureRecorder.rollback_to` drops the steps after it, and ``record`` refuses a
step that is not after the last one kept, so no sample is counted twice.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import pyarrow as pa

EXPOSURE_SCHEMA = pa.schema([("run_id", pa.string()), ("rank", pa.int32()), ("epoch", pa.int32()),
                             ("step", pa.int64()), ("sample_id", pa.string())])
_RUN_ID = re.compile(r"^[A-Za-z0-9._-]+$")
_EPOCH_FILE = re.compile(r"^epoch=(\d+)\.jsonl$")


class ExposureRecorder:
    """Durable per-rank log of consumed sample IDs for one training run."""

    def __init__(self, directory: str | os.PathLike[str], *, run_id: str, rank: int) -> None:
        if not _RUN_ID.match(run_id):
            raise ValueError(f"run_id must match {_RUN_ID.pattern}: {run_id!r}")
        if rank < 0:
            raise ValueError("rank must be >= 0")
        self.run_id, self.rank = run_id, rank
        self.root = Path(directory) / f"run={run_id}" / f"rank={rank}"
        self.root.mkdir(parents=True, exist_ok=True)
        self._last_step: int | None = None
        for path in self._files():
            for entry in _repair_and_read(path):
                step = int(entry["step"])
                self._last_step = step if self._last_step is None else max(self._last_step, step)

    @property
    def last_step(self) -> int | None:
        """The last step recorded (after any rollback), or None."""
        return self._last_step

    def _files(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if _EPOCH_FILE.match(p.name))

    def record(self, epoch: int, step: int, sample_ids: list[str], *, isrcs: list[str] | None = None,
               audio_seconds: list[float] | None = None, text_tokens: list[int] | None = None) -> None:
        """Append the samples consumed by one optimizer step; durable when this returns.

        Long-form training also gives each sample's ISRC, the seconds of audio it served and the text
        tokens it carried (a long-form batch has them as ``isrc``, ``audio_seconds``, ``text_tokens``):
        exposure is then counted in seconds and tokens per ISRC (:func:`read_longform_exposure`).
        """
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"step {step} is not after the last recorded step {self._last_step}; "
                             "call rollback_to(checkpoint_step) after a restart")
        if epoch < 0:
            raise ValueError("epoch must be >= 0")
        entry: dict[str, object] = {"run_id": self.run_id, "rank": self.rank, "epoch": epoch, "step": step,
                                    "sample_ids": [str(s) for s in sample_ids]}
        extra = {"isrcs": isrcs, "audio_seconds": audio_seconds, "text_tokens": text_tokens}
        given = {k: v for k, v in extra.items() if v is not None}
        if given and (len(given) != 3 or any(len(v) != len(sample_ids) for v in given.values())):
            raise ValueError("isrcs, audio_seconds and text_tokens go together, one value per sample")
        if given:
            entry.update({"isrcs": [str(i) for i in isrcs or ()],
                          "audio_seconds": [round(float(x), 6) for x in audio_seconds or ()],
                          "text_tokens": [int(x) for x in text_tokens or ()]})
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with open(self.root / f"epoch={epoch:05d}.jsonl", "ab") as handle:
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        self._last_step = step

    def rollback_to(self, step: int) -> int:
        """Drop every step after ``step`` (the checkpoint being resumed); returns how many were dropped."""
        dropped = 0
        last: int | None = None
        for path in self._files():
            entries = _repair_and_read(path)
            keep = [e for e in entries if int(e["step"]) <= step]
            dropped += len(entries) - len(keep)
            if len(keep) != len(entries):
                _rewrite(path, keep)
            for e in keep:
                last = int(e["step"]) if last is None else max(last, int(e["step"]))
        self._last_step = last
        return dropped


def _repair_and_read(path: Path) -> list[dict[str, object]]:
    raw = path.read_bytes()
    complete = raw if raw.endswith(b"\n") or not raw else raw[: raw.rfind(b"\n") + 1]
    if len(complete) != len(raw):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
            os.fsync(handle.fileno())
    return [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]


def _rewrite(path: Path, entries: list[dict[str, object]]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        for e in entries:
            handle.write((json.dumps(e, separators=(",", ":")) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_exposure(directory: str | os.PathLike[str]) -> pa.Table:
    """Every consumed sample as a row: run_id, rank, epoch, step, sample_id (torn last lines ignored)."""
    cols: dict[str, list[object]] = {name: [] for name in EXPOSURE_SCHEMA.names}
    root = Path(directory)
    for path in sorted(root.glob("run=*/rank=*/epoch=*.jsonl")):
        raw = path.read_bytes()
        text = raw[: raw.rfind(b"\n") + 1].decode("utf-8")
        for line in text.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            for sample_id in entry["sample_ids"]:
                cols["run_id"].append(entry["run_id"])
                cols["rank"].append(entry["rank"])
                cols["epoch"].append(entry["epoch"])
                cols["step"].append(entry["step"])
                cols["sample_id"].append(sample_id)
    return pa.table(cols, schema=EXPOSURE_SCHEMA)


LONGFORM_EXPOSURE_SCHEMA = pa.schema([("isrc", pa.string()), ("samples", pa.int64()), ("audio_seconds", pa.float64()),
                                      ("text_tokens", pa.int64())])


def read_longform_exposure(directory: str | os.PathLike[str]) -> pa.Table:
    """Per ISRC, over every run, rank and epoch logged under ``directory``: samples served, seconds of audio
    and text tokens (steps recorded without them are not counted here)."""
    totals: dict[str, list[float]] = {}
    for path in sorted(Path(directory).glob("run=*/rank=*/epoch=*.jsonl")):
        raw = path.read_bytes()
        for line in raw[: raw.rfind(b"\n") + 1].decode("utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            for isrc, seconds, tokens in zip(entry.get("isrcs", ()), entry.get("audio_seconds", ()),
                                             entry.get("text_tokens", ()), strict=True):
                t = totals.setdefault(isrc, [0, 0.0, 0])
                t[0] += 1
                t[1] += seconds
                t[2] += tokens
    isrcs = sorted(totals)
    return pa.table({"isrc": isrcs, "samples": [int(totals[i][0]) for i in isrcs],
                     "audio_seconds": [float(totals[i][1]) for i in isrcs],
                     "text_tokens": [int(totals[i][2]) for i in isrcs]}, schema=LONGFORM_EXPOSURE_SCHEMA)
