"""Serve verified, approved shards to PyTorch: exact splits, deterministic shuffle, exact resume.

Order of an epoch. The shards' row groups are permuted from (seed, epoch), then taken
``shuffle_window`` at a time and the samples inside each window permuted again: a sample-level
shuffle that still reads each row group once. That global order is cut into ``world_size``
contiguous ranges, one per rank, and each rank's range into one contiguous range per DataLoader
worker. Every sample of the manifest goes to exactly one (rank, worker); nothing is padded or
dropped, so with N samples and W ranks the first ``N % W`` ranks get one sample more than the
others. DDP training loops must tolerate that (e.g. ``torch.distributed.algorithms.Join``), or
stop all ranks at ``min_rank_samples`` and accept that the tail is not seen that epoch.

Resume. ``state_dict()`` names the samples of this rank's range already consumed in the epoch.
Without DataLoader workers the dataset sees what it yields and keeps count itself; with workers
it runs in other processes, so the training loop reports each consumed batch with
``mark_consumed(batch["sample_id"])`` (the same IDs it gives the exposure recorder). After
``load_state_dict`` each worker serves its range minus the consumed samples, starting the
round-robin at the worker that was due next, so the remaining batches are the same batches, in
the same order, as in the uninterrupted run (with the same batch size and worker count).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from pydantic import ValidationError
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from licensing.gate import ReleaseRefused, decide
from schemas.gate import GateDecision, GateReason
from schemas.shards import Acknowledgement, AcknowledgementRecord, ShardManifest
from shards import acknowledgements
from shards.purge import purged_build
from shards.verify import manifest_location, shard_location
from store.database import connect
from store.home import Home
from store.ledger import command
from store.objects import ObjectStore
from store.paths import ledger_ref
from store.roles import RoleBook

STATE_VERSION = 1
_COLUMNS = ["sample_id", "track_id", "isrc", "audio"]
_SCALE = np.float32(1.0 / 32768.0)


class ShardIntegrityError(Exception):
    """A shard's bytes differ from its manifest entry; nothing from the manifest is served."""


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def _bounds(n: int, parts: int) -> list[int]:
    return [(i * n) // parts for i in range(parts + 1)]


def _ranges(mask: np.ndarray) -> list[list[int]]:
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]


def admit(manifest: ShardManifest, manifest_uri: str, manifest_sha256: str,
          ledger_path: str | os.PathLike[str] | None, acknowledge: Acknowledgement | None,
          roles: RoleBook | None) -> AcknowledgementRecord | None:
    """Ask the release gate about the tracks a manifest's shards hold, refusing a build a purge replaced;
    record an accepted acknowledgement (under the role needed to start training). Raises ReleaseRefused."""
    release_id = manifest.release_id
    path = Path(ledger_path) if ledger_path is not None else Home.from_env().db_path
    if not path.exists():
        raise ReleaseRefused(GateDecision(
            release_id=release_id, use="load", allowed=False, reason_codes=(GateReason.RELEASE_UNKNOWN,),
            message=f"no ledger at {path}: cannot confirm release {release_id} is still approved",
            checked_on=datetime.now(UTC).date(), manifest_uri=manifest_uri))
    with connect(path, read_only=True) as con:
        purged = purged_build(con, release_id, manifest.merkle_root, manifest_sha256)
        why = (f"this build (Merkle root {manifest.merkle_root[:16]}) was {purged}; "
               "its shards are gone: load the current manifest")
        findings = [(GateReason.BUILD_PURGED, why)] if purged else []
        decision = decide(con, release_id, use="load", contained_track_ids=manifest.track_ids(),
                          expected_content_sha256=manifest.release_content_sha256,
                          acknowledge=acknowledge, manifest_uri=manifest_uri, findings=findings,
                          manifest_sha256=manifest_sha256)
    if not decision.allowed:
        raise ReleaseRefused(decision)
    ack = acknowledgements.as_record(decision, "load")
    if ack is not None:
        # Whoever loads shards past a refusal is training on them: it takes the role to start training.
        with connect(path) as con, command(con, ack.actor, "train.start", release_id, roles=roles) as w:
            acknowledgements.record(w, ack, release_id=release_id, subject=ledger_ref(con, manifest_uri))
            w.payload["manifest_uri"] = ledger_ref(con, manifest_uri)
    return ack


def verify_hashes(store: ObjectStore, manifest: ShardManifest, manifest_uri: str) -> None:
    """Re-hash every shard of the manifest; raise ShardIntegrityError naming each one that differs."""
    def check(entry: Any) -> str | None:
        uri = shard_location(manifest_uri, entry)
        try:
            sha, size = store.sha256(uri)
        except FileNotFoundError:
            return f"{entry.name}: missing"
        if sha != entry.sha256 or size != entry.bytes:
            return f"{entry.name}: sha256 {sha} ({size} bytes), manifest says {entry.sha256} ({entry.bytes} bytes)"
        return None

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(manifest.shards)))) as pool:
        problems = [p for p in pool.map(check, manifest.shards) if p]
    if problems:
        raise ShardIntegrityError("refusing to serve " + manifest_uri + ": " + "; ".join(problems))


class ShardDataset(IterableDataset):  # type: ignore[type-arg]
    """Iterable over the samples of a manifest: ``{"sample_id", "track_id", "isrc", "audio"}``.

    ``audio`` is a float32 tensor of 64 000 samples in [-1, 1). Construction verifies every
    shard's SHA-256 and asks the release gate (:mod:`licensing.gate`) about the tracks the shards
    hold (revoked, or a recording denied since approval, is refused unless ``acknowledge`` is given;
    then the acknowledgement is recorded, under the role needed to start training, and the denied
    recordings are not served).
    """

    def __init__(self, manifest_uri: str, *, seed: int = 0, epoch: int = 0, rank: int | None = None,
                 world_size: int | None = None, ledger_path: str | os.PathLike[str] | None = None,
                 acknowledge: Acknowledgement | Mapping[str, str] | None = None, shuffle: bool = True,
                 shuffle_window: int = 16, store: ObjectStore | None = None, roles: RoleBook | None = None) -> None:
        super().__init__()
        self.store = store or ObjectStore()
        self.manifest_uri = manifest_location(manifest_uri)
        raw = self.store.get(self.manifest_uri)
        self.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        try:
            self.manifest = ShardManifest.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ShardIntegrityError(f"refusing to serve {self.manifest_uri}: not a valid shard manifest "
                                      f"({exc.error_count()} errors; {'.'.join(map(str, first['loc']))}: "
                                      f"{first['msg']})") from exc
        if self.manifest.layout != "crops":
            raise ValueError(f"{self.manifest_uri} holds long-form shards (compressed whole recordings): "
                             "read them with shards.longform_loader.LongformDataset")
        self.seed, self.shuffle, self.shuffle_window = seed, shuffle, max(1, shuffle_window)
        if rank is None or world_size is None:
            dist_rank, dist_world = _distributed()
            rank = dist_rank if rank is None else rank
            world_size = dist_world if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.rank, self.world_size = rank, world_size
        if acknowledge is not None and not isinstance(acknowledge, Acknowledgement):
            acknowledge = Acknowledgement.model_validate(acknowledge)
        self.acknowledgement = self._admit(ledger_path, acknowledge, roles)
        self.skip_track_ids = frozenset(self.acknowledgement.skipped_track_ids if self.acknowledgement else ())
        self._verify_hashes()
        self._uris = [shard_location(self.manifest_uri, e) for e in self.manifest.shards]
        self._units = self._unit_table()
        self._epoch = epoch
        self._order = self._rank_order(epoch)
        self._consumed = np.zeros(len(self._order), dtype=bool)
        self._resume_rotation = 0
        self._id_rows: dict[str, int] | None = None
        self._inverse: np.ndarray | None = None

    # -- admission -----------------------------------------------------------------------------

    def _admit(self, ledger_path: str | os.PathLike[str] | None, acknowledge: Acknowledgement | None,
               roles: RoleBook | None) -> AcknowledgementRecord | None:
        return admit(self.manifest, self.manifest_uri, self.manifest_sha256, ledger_path, acknowledge, roles)

    def _verify_hashes(self) -> None:
        verify_hashes(self.store, self.manifest, self.manifest_uri)

    # -- order ---------------------------------------------------------------------------------

    def _unit_table(self) -> np.ndarray:
        """One row per row group: (shard position, row group index, first global row, rows)."""
        rows: list[tuple[int, int, int, int]] = []
        start = 0
        # By position in the manifest: a purge can leave gaps in the shard indices.
        for position, entry in enumerate(self.manifest.shards):
            for rg, n in enumerate(entry.row_groups):
                rows.append((position, rg, start, n))
                start += n
        return np.array(rows, dtype=np.int64).reshape(-1, 4)

    def _global_order(self, epoch: int) -> np.ndarray:
        units = self._units
        if not self.shuffle:
            return np.arange(self.manifest.total_rows, dtype=np.int64)
        perm = _rng("units", self.seed, epoch).permutation(len(units))
        parts: list[np.ndarray] = []
        for w, start in enumerate(range(0, len(perm), self.shuffle_window)):
            chosen = units[perm[start:start + self.shuffle_window]]
            ids = np.concatenate([np.arange(s, s + n, dtype=np.int64) for s, n in chosen[:, 2:4]])
            parts.append(ids[_rng("window", self.seed, epoch, w).permutation(len(ids))])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _rank_order(self, epoch: int) -> np.ndarray:
        order = self._global_order(epoch)
        b = _bounds(len(order), self.world_size)
        return order[b[self.rank]:b[self.rank + 1]]

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def num_samples(self) -> int:
        """Samples this rank serves in a full epoch."""
        return len(self._order)

    @property
    def min_rank_samples(self) -> int:
        """Samples of the smallest rank: a common stopping point for all ranks."""
        return self.manifest.total_rows // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Switch to another epoch's order; consumption starts afresh unless it is the current epoch."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = self._rank_order(epoch)
            self._consumed = np.zeros(len(self._order), dtype=bool)
            self._resume_rotation = 0
            self._inverse = None

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Where this rank is in the epoch: which of its samples were consumed."""
        return {"version": STATE_VERSION, "manifest_merkle_root": self.manifest.merkle_root, "seed": self.seed,
                "shuffle": self.shuffle, "shuffle_window": self.shuffle_window, "epoch": self._epoch,
                "rank": self.rank, "world_size": self.world_size, "num_samples": len(self._order),
                "consumed": _ranges(self._consumed), "consumed_count": int(self._consumed.sum())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; refuses a state taken over other shards or another split."""
        expect = {"version": STATE_VERSION, "manifest_merkle_root": self.manifest.merkle_root, "seed": self.seed,
                  "shuffle": self.shuffle, "shuffle_window": self.shuffle_window, "rank": self.rank,
                  "world_size": self.world_size}
        for key, value in expect.items():
            if state.get(key) != value:
                raise ValueError(f"state {key}={state.get(key)!r} does not match this dataset ({value!r})")
        self.set_epoch(int(state["epoch"]))
        self._consumed = np.zeros(len(self._order), dtype=bool)
        for start, end in state["consumed"]:
            self._consumed[start:end] = True
        self._resume_rotation = -1

    def mark_consumed(self, sample_ids: Sequence[str]) -> None:
        """Record that the training loop consumed these samples (needed with DataLoader workers)."""
        if self._id_rows is None:
            self._id_rows = self._read_id_rows()
        rows = np.fromiter((self._id_rows[s] for s in sample_ids), dtype=np.int64, count=len(sample_ids))
        positions = self._positions_of(rows)
        if (positions < 0).any():
            raise ValueError("some sample IDs are not served by this rank in this epoch")
        self._consumed[positions] = True

    def _positions_of(self, rows: np.ndarray) -> np.ndarray:
        if self._inverse is None:
            self._inverse = np.full(self.manifest.total_rows, -1, dtype=np.int64)
            self._inverse[self._order] = np.arange(len(self._order))
        return self._inverse[rows]

    def _read_id_rows(self) -> dict[str, int]:
        out: dict[str, int] = {}
        start = 0
        for entry, uri in zip(self.manifest.shards, self._uris):
            with self.store.open(uri) as handle:
                ids = pq.ParquetFile(handle).read(columns=["sample_id"]).column("sample_id").to_pylist()
            out.update((s, start + i) for i, s in enumerate(ids))
            start += entry.rows
        return out

    # -- iteration -----------------------------------------------------------------------------

    def _worker_positions(self, worker: int, workers: int) -> np.ndarray:
        b = _bounds(len(self._order), workers)
        rotation = self._rotation(workers, b)
        chunk = (worker + rotation) % workers
        positions = np.arange(b[chunk], b[chunk + 1], dtype=np.int64)
        return positions[~self._consumed[positions]]

    def _rotation(self, workers: int, b: list[int]) -> int:
        if self._resume_rotation >= 0 or workers == 1:
            return max(self._resume_rotation, 0) % workers
        # Round-robin gave the first chunks one batch more than the rest; the first short one is due next.
        counts = [int(self._consumed[b[i]:b[i + 1]].sum()) for i in range(workers)]
        remaining = [b[i + 1] - b[i] - counts[i] for i in range(workers)]
        if max(counts) == min(counts) or min(remaining) == 0:
            return 0
        top = max(counts)
        leaders = sum(1 for c in counts if c == top)
        if counts[:leaders] != [top] * leaders:
            return 0
        return leaders

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if len(self._consumed) and self._consumed.all():
            # A finished epoch iterated again is replayed whole, as it is with DataLoader workers.
            self._consumed[:] = False
            self._resume_rotation = 0
        positions = self._worker_positions(worker, workers)
        rows = self._order[positions]
        unit_starts = self._units[:, 2]
        unit_of = np.searchsorted(unit_starts, rows, side="right") - 1
        last_use: dict[int, int] = {int(u): i for i, u in enumerate(unit_of)}
        cache: dict[int, _RowGroup] = {}
        files: dict[int, tuple[pq.ParquetFile, Any]] = {}
        in_process = info is None
        try:
            for i, (position, row, unit) in enumerate(zip(positions, rows, unit_of)):
                u = int(unit)
                group = cache.get(u)
                if group is None:
                    group = cache[u] = self._load_unit(u, files)
                local = int(row - unit_starts[u])
                if i == last_use[u]:
                    del cache[u]
                if group.track_ids[local] in self.skip_track_ids:
                    if in_process:
                        self._consumed[position] = True
                    continue
                sample = group.sample(local)
                if in_process:
                    self._consumed[position] = True
                yield sample
        finally:
            for _, handle in files.values():
                if handle is not None:
                    handle.close()

    def _load_unit(self, unit: int, files: dict[int, tuple[pq.ParquetFile, Any]]) -> "_RowGroup":
        shard, rg = int(self._units[unit, 0]), int(self._units[unit, 1])
        if shard not in files:
            local = self.store.local_path(self._uris[shard])
            handle = None if local is not None else self.store.open(self._uris[shard])
            source = str(local) if local is not None else handle
            files[shard] = (pq.ParquetFile(source, page_checksum_verification=True), handle)
        return _RowGroup(files[shard][0].read_row_group(rg, columns=_COLUMNS))


class _RowGroup:
    __slots__ = ("sample_ids", "track_ids", "isrcs", "pcm", "starts", "ends")

    def __init__(self, table: Any) -> None:
        self.sample_ids = table.column("sample_id").to_pylist()
        self.track_ids = table.column("track_id").to_pylist()
        self.isrcs = table.column("isrc").to_pylist()
        audio = table.column("audio").combine_chunks()
        _, offsets_buf, data_buf = audio.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int32)[audio.offset:audio.offset + len(audio) + 1]
        self.pcm = np.frombuffer(data_buf, dtype="<i2")
        self.starts = (offsets[:-1] // 2).tolist()
        self.ends = (offsets[1:] // 2).tolist()

    def sample(self, i: int) -> dict[str, Any]:
        # numpy's cast and in-place scale beat torch's here: no intra-op thread pool for small tensors.
        audio = self.pcm[self.starts[i]:self.ends[i]].astype(np.float32)
        audio *= _SCALE
        return {"sample_id": self.sample_ids[i], "track_id": self.track_ids[i], "isrc": self.isrcs[i],
                "audio": torch.from_numpy(audio)}


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def make_loader(dataset: ShardDataset, *, batch_size: int, num_workers: int = 2, **kwargs: Any) -> DataLoader:  # type: ignore[type-arg]
    """A DataLoader over the dataset: pinned memory when CUDA is present, workers re-created each epoch."""
    kwargs.setdefault("pin_memory", torch.cuda.is_available())
    kwargs.setdefault("prefetch_factor", 4 if num_workers else None)
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, persistent_workers=False, **kwargs)


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Move a batch's tensors to ``device``; copies from pinned memory are non-blocking."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=value.is_pinned())
        else:
            out[key] = value
    return out
