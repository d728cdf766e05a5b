"""Serve long-form shards to PyTorch: whole recordings as stacked windows, bucketed by length.

Each item is one recording cut into windows of ``window_seconds`` (at most ``max_windows``, the
Music Flamingo recipe's 30 s x 40), decoded straight into a ``[windows, channels, frames]`` float32
array (the last window zero-padded, ``window_frames`` saying how much of each is audio), together
with its text and attribution. The dataset yields whole batches, so that recordings of similar
length share one: an epoch's recordings are permuted from (seed, epoch), taken ``bucket_batches``
batches at a time, sorted by window count inside each bucket, cut into batches, and the batches
permuted again. Ranks get contiguous, disjoint ranges of that batch order; DataLoader workers take
their rank's batches round-robin, which the DataLoader gives back in order. ``state_dict()`` names
the batches consumed; after ``load_state_dict`` the remaining batches come in the same order as in
the uninterrupted run, whatever the worker count. With workers, report each consumed batch with
``mark_consumed(batch["batch_index"])``. Admission (release gate, purged builds, shard hashes) is
the crop loader's.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from schemas.shards import Acknowledgement, ShardManifest
from shards.loader import _bounds, _distributed, _ranges, _rng, admit, verify_hashes
from shards.verify import manifest_location, shard_location
from store.objects import ObjectStore
from store.roles import RoleBook

__all__ = ["LongformDataset", "count_tokens", "decode_windows", "make_longform_loader"]

STATE_VERSION = 1
_TOKEN = re.compile(r"\w+|[^\w\s]")
_META = ["sample_id", "track_id", "isrc", "duration_s", "texts"]


def count_tokens(text: str) -> int:
    """Words and punctuation marks: a tokenizer-free stand-in; pass the trainer's tokenizer for exact counts."""
    return len(_TOKEN.findall(text))


def decode_windows(data: bytes, *, window_seconds: float, max_windows: int, sample_rate: int | None = None,
                   channels: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode a compressed recording into ``[windows, channels, window_frames]`` float32 (zero-padded), the
    frames of audio in each window, and the rate; decoding stops after ``max_windows`` windows.

    Frames are written straight into one buffer sized from the stream's duration, so the peak is the
    result itself (plus one copy for stereo, whose channels are interleaved by window)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate = sample_rate or stream.codec_context.sample_rate
        chans = channels or min(2, stream.codec_context.channels or 1)
        duration = float(stream.duration * stream.time_base) if stream.duration else None
        per = round(window_seconds * rate)
        limit = per * max_windows
        expected = math.ceil(duration * rate) if duration else per
        out = np.zeros((chans, max(1, math.ceil(min(expected, limit) / per)) * per), dtype=np.float32)
        filled = 0
        resampler = av.AudioResampler(format="fltp", layout="mono" if chans == 1 else "stereo", rate=rate)

        def take(frames: list[Any]) -> bool:
            nonlocal filled, out
            for frame in frames:
                pcm = frame.to_ndarray()[:, :limit - filled]
                if filled + pcm.shape[1] > out.shape[1]:
                    grown = np.zeros((chans, min(limit, max(out.shape[1] * 2, filled + pcm.shape[1]))),
                                     dtype=np.float32)
                    grown[:, :filled] = out[:, :filled]
                    out = grown
                out[:, filled:filled + pcm.shape[1]] = pcm
                filled += pcm.shape[1]
                if filled >= limit:
                    return False
            return True

        for frame in container.decode(stream):
            if not take(resampler.resample(frame)):
                break
        else:
            take(resampler.resample(None))
    windows = max(1, min(max_windows, math.ceil(filled / per)))
    if out.shape[1] < windows * per:
        grown = np.zeros((chans, windows * per), dtype=np.float32)
        grown[:, :filled] = out[:, :filled]
        out = grown
    audio = out[:, :windows * per]
    audio[:, filled:] = 0.0
    valid = np.clip(filled - np.arange(windows) * per, 0, per).astype(np.int64)
    return np.ascontiguousarray(audio.reshape(chans, windows, per).transpose(1, 0, 2)), valid, rate


class LongformDataset(IterableDataset):  # type: ignore[type-arg]
    """Batches of whole recordings from a long-form manifest (see the module docstring)."""

    def __init__(self, manifest_uri: str, *, batch_size: int = 4, window_seconds: float = 30.0,
                 max_windows: int = 40, sample_rate: int | None = None, channels: int | None = None,
                 bucket_batches: int = 8, seed: int = 0, epoch: int = 0, shuffle: bool = True,
                 rank: int | None = None, world_size: int | None = None,
                 ledger_path: str | os.PathLike[str] | None = None,
                 acknowledge: Acknowledgement | Mapping[str, str] | None = None,
                 tokens: Callable[[str], int] = count_tokens, store: ObjectStore | None = None,
                 roles: RoleBook | None = None) -> None:
        super().__init__()
        if batch_size < 1 or max_windows < 1 or window_seconds <= 0 or bucket_batches < 1:
            raise ValueError("batch_size, max_windows and bucket_batches must be >= 1, window_seconds > 0")
        self.store = store or ObjectStore()
        self.manifest_uri = manifest_location(manifest_uri)
        raw = self.store.get(self.manifest_uri)
        self.manifest = ShardManifest.model_validate_json(raw)
        if self.manifest.layout != "longform":
            raise ValueError(f"{self.manifest_uri} holds crop shards: read them with shards.loader.ShardDataset")
        if acknowledge is not None and not isinstance(acknowledge, Acknowledgement):
            acknowledge = Acknowledgement.model_validate(acknowledge)
        # The crop loader's admission: release gate, purged builds, acknowledgements, then every shard's hash.
        ack = admit(self.manifest, self.manifest_uri, hashlib.sha256(raw).hexdigest(), ledger_path, acknowledge, roles)
        verify_hashes(self.store, self.manifest, self.manifest_uri)
        skip = frozenset(ack.skipped_track_ids if ack else ())
        if rank is None or world_size is None:
            dist_rank, dist_world = _distributed()
            rank = dist_rank if rank is None else rank
            world_size = dist_world if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.rank, self.world_size = rank, world_size
        self.batch_size, self.window_seconds, self.max_windows = batch_size, window_seconds, max_windows
        self.sample_rate, self.channels, self.bucket_batches = sample_rate, channels, bucket_batches
        self.seed, self.shuffle, self.tokens = seed, shuffle, tokens
        self._uris = [shard_location(self.manifest_uri, e) for e in self.manifest.shards]
        self._rows = self._row_table(skip)
        self._epoch = epoch
        self._batches = self._rank_batches(epoch)
        self._consumed = np.zeros(len(self._batches), dtype=bool)

    def _row_table(self, skip: frozenset[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for position, uri in enumerate(self._uris):
            with self.store.open(uri) as handle:
                table = pq.ParquetFile(handle).read(columns=_META).to_pylist()
            for index, row in enumerate(table):
                if row["track_id"] in skip:
                    continue
                served = min(row["duration_s"], self.max_windows * self.window_seconds)
                text = " ".join(part for t in row["texts"] for part in (t.get("question"), t["text"]) if part)
                rows.append({"shard": position, "row": index, "sample_id": row["sample_id"],
                             "track_id": row["track_id"], "isrc": row["isrc"], "seconds": served,
                             "windows": max(1, min(self.max_windows, math.ceil(row["duration_s"] / self.window_seconds))),
                             "texts": row["texts"], "text_tokens": self.tokens(text)})
        return rows

    # -- order ---------------------------------------------------------------------------------

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        n = len(self._rows)
        order = _rng("tracks", self.seed, epoch).permutation(n) if self.shuffle else np.arange(n)
        span = self.batch_size * self.bucket_batches
        batches: list[list[int]] = []
        for start in range(0, n, span):
            bucket = sorted(order[start:start + span].tolist(), key=lambda i: (self._rows[i]["windows"], i))
            batches += [bucket[b:b + self.batch_size] for b in range(0, len(bucket), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in _rng("batches", self.seed, epoch).permutation(len(batches))]
        return batches

    def _rank_batches(self, epoch: int) -> list[list[int]]:
        batches = self._epoch_batches(epoch)
        b = _bounds(len(batches), self.world_size)
        return batches[b[self.rank]:b[self.rank + 1]]

    @property
    def num_batches(self) -> int:
        return len(self._batches)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self._epoch:
            self._epoch = epoch
            self._batches = self._rank_batches(epoch)
            self._consumed = np.zeros(len(self._batches), dtype=bool)

    def state_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "manifest_merkle_root": self.manifest.merkle_root, "seed": self.seed,
                "shuffle": self.shuffle, "batch_size": self.batch_size, "bucket_batches": self.bucket_batches,
                "window_seconds": self.window_seconds, "max_windows": self.max_windows, "rank": self.rank,
                "world_size": self.world_size, "epoch": self._epoch, "consumed": _ranges(self._consumed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; refuses a state taken over other shards or another split."""
        for key in ("version", "manifest_merkle_root", "seed", "shuffle", "batch_size", "bucket_batches",
                    "window_seconds", "max_windows", "rank", "world_size"):
            mine = STATE_VERSION if key == "version" else getattr(self, key, None)
            if key == "manifest_merkle_root":
                mine = self.manifest.merkle_root
            if state.get(key) != mine:
                raise ValueError(f"state {key}={state.get(key)!r} does not match this dataset ({mine!r})")
        self.set_epoch(int(state["epoch"]))
        self._consumed = np.zeros(len(self._batches), dtype=bool)
        for start, end in state["consumed"]:
            self._consumed[start:end] = True

    def mark_consumed(self, batch_indices: int | list[int] | torch.Tensor) -> None:
        """Record that the training loop consumed these batches (needed with DataLoader workers)."""
        if isinstance(batch_indices, torch.Tensor):
            batch_indices = batch_indices.reshape(-1).tolist()
        if isinstance(batch_indices, int):
            batch_indices = [batch_indices]
        self._consumed[np.asarray(batch_indices, dtype=np.int64)] = True

    # -- iteration -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if len(self._consumed) and self._consumed.all():
            self._consumed[:] = False
        remaining = np.flatnonzero(~self._consumed)[worker::workers]
        files: dict[int, pq.ParquetFile] = {}
        handles: list[Any] = []
        try:
            for index in remaining.tolist():
                batch = self._batch(int(index), files, handles)
                if info is None:
                    self._consumed[index] = True
                yield batch
        finally:
            for handle in handles:
                handle.close()

    def _batch(self, index: int, files: dict[int, pq.ParquetFile], handles: list[Any]) -> dict[str, Any]:
        items = [self._rows[i] for i in self._batches[index]]
        decoded = [self._decode(item, files, handles) for item in items]
        most = max(a.shape[0] for a, _, _ in decoded)
        chans = decoded[0][0].shape[1]
        per = decoded[0][0].shape[2]
        audio = torch.zeros((len(items), most, chans, per), dtype=torch.float32)
        frames = torch.zeros((len(items), most), dtype=torch.int64)
        for b, (array, valid, _) in enumerate(decoded):
            audio[b, :array.shape[0]] = torch.from_numpy(array)
            frames[b, :len(valid)] = torch.from_numpy(valid)
        return {"batch_index": index, "sample_id": [i["sample_id"] for i in items],
                "track_id": [i["track_id"] for i in items], "isrc": [i["isrc"] for i in items],
                "audio": audio, "window_frames": frames, "window_mask": frames > 0,
                "sample_rate": decoded[0][2], "texts": [i["texts"] for i in items],
                "audio_seconds": [float(frames[b].sum()) / decoded[0][2] for b in range(len(items))],
                "text_tokens": [i["text_tokens"] for i in items]}

    def _decode(self, item: dict[str, Any], files: dict[int, pq.ParquetFile],
                handles: list[Any]) -> tuple[np.ndarray, np.ndarray, int]:
        shard = item["shard"]
        if shard not in files:
            local = self.store.local_path(self._uris[shard])
            if local is not None:
                files[shard] = pq.ParquetFile(str(local), page_checksum_verification=True)
            else:
                handle = self.store.open(self._uris[shard])
                handles.append(handle)
                files[shard] = pq.ParquetFile(handle, page_checksum_verification=True)
        parquet = files[shard]
        # Row groups are small (one recording by default): find the one holding this row.
        start = 0
        for rg in range(parquet.num_row_groups):
            n = parquet.metadata.row_group(rg).num_rows
            if item["row"] < start + n:
                cell = parquet.read_row_group(rg, columns=["audio"]).column("audio")[item["row"] - start]
                break
            start += n
        data = cell.as_buffer().to_pybytes()
        return decode_windows(data, window_seconds=self.window_seconds, max_windows=self.max_windows,
                              sample_rate=self.sample_rate, channels=self.channels)


def make_longform_loader(dataset: LongformDataset, *, num_workers: int = 2, **kwargs: Any) -> DataLoader:  # type: ignore[type-arg]
    """A DataLoader over the dataset's batches (it batches itself): pinned memory when CUDA is present."""
    kwargs.setdefault("pin_memory", torch.cuda.is_available())
    kwargs.setdefault("prefetch_factor", 2 if num_workers else None)
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, persistent_workers=False, **kwargs)
