"""An in-test stand-in for the shard loader: same constructor, same sample dicts, same resume contract.

The "manifest" is a JSON file listing tracks; each crop is a tone at the track's frequency plus noise
seeded by its sample id, so a model can learn which track a crop comes from.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

SAMPLES = 64_000


def write_manifest(path: Path, release_id: str, tracks: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps({"release_id": release_id, "tracks": tracks}), encoding="utf-8")
    return str(path)


class ToneDataset(IterableDataset):
    def __init__(self, manifest_uri: str, *, seed: int, epoch: int, rank: int, world_size: int,
                 ledger_path: str, acknowledge: Any, shuffle: bool) -> None:
        self.tracks = json.loads(Path(manifest_uri).read_text(encoding="utf-8"))["tracks"]
        self.seed, self.epoch, self.rank, self.world_size, self.shuffle = seed, epoch, rank, world_size, shuffle
        self.position = 0

    def _order(self) -> list[tuple[dict[str, Any], int]]:
        items = [(t, c) for t in self.tracks for c in range(t["crops"])]
        if self.shuffle:
            random.Random(self.seed * 1000 + self.epoch).shuffle(items)
        return items[self.rank::self.world_size]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = self._order()
        while self.position < len(order):
            track, crop = order[self.position]
            self.position += 1
            sample_id = f"{track['track_id']}:{crop:04d}"
            rng = np.random.default_rng(zlib.crc32(sample_id.encode()))
            t = np.arange(SAMPLES) / 16_000
            audio = 0.5 * np.sin(2 * np.pi * track["freq"] * t + rng.uniform(0, 6.28)) + 0.05 * rng.standard_normal(SAMPLES)
            yield {"sample_id": sample_id, "track_id": track["track_id"], "isrc": track["isrc"],
                   "audio": torch.from_numpy(audio.astype(np.float32))}

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["epoch"] == self.epoch:
            self.position = state["position"]

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0


def tone_dataset(manifest_uri: str, **kwargs: Any) -> ToneDataset:
    return ToneDataset(manifest_uri, **kwargs)
