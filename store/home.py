"""The data directory (``LINERNOTES_HOME``) and the paths inside it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIRNAME = ".linernotes"
OBJECTS_ENV = "LINERNOTES_OBJECTS"


def _default_root() -> Path:
    # The checkout the package lives in, so `make demo` in a clone writes beside it.
    return Path(__file__).resolve().parent.parent / DEFAULT_DIRNAME


@dataclass(frozen=True)
class Home:
    """Every generated file lives under one root, so a clean ``git status`` is one ignore line."""

    root: Path
    objects_setting: str | None = None

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None, objects: str | None = None) -> "Home":
        """The data directory from ``LINERNOTES_HOME`` and the object root from ``LINERNOTES_OBJECTS``."""
        chosen = root or os.environ.get("LINERNOTES_HOME") or _default_root()
        return cls(Path(chosen).expanduser().resolve(), objects or os.environ.get(OBJECTS_ENV) or None)

    @property
    def objects_uri(self) -> str:
        """Where deliveries, shards and checkpoints live: ``s3://bucket/prefix`` or the local objects dir."""
        return self.objects_setting.rstrip("/") if self.objects_setting else str(self.objects)

    @property
    def remote_objects(self) -> bool:
        return self.objects_uri.startswith("s3://")

    def delivery_uri(self, delivery_id: str) -> str:
        """A delivery's folder: under the object root when remote, else ``deliveries/<id>`` in the home."""
        if self.remote_objects:
            return f"{self.objects_uri}/deliveries/{delivery_id}"
        return str(self.deliveries / delivery_id)

    def shards_uri(self, release_id: str) -> str:
        return f"{self.objects_uri}/shards/{release_id}"

    def runs_uri(self, run_id: str) -> str:
        """Where a run's checkpoint, card and lineage are published (the run directory stays local)."""
        return f"{self.objects_uri}/runs/{run_id}" if self.remote_objects else str(self.runs / run_id)

    @property
    def db_path(self) -> Path:
        return self.root / "linernotes.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def deliveries(self) -> Path:
        return self.root / "deliveries"

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def ensure(self) -> "Home":
        for path in (self.root, self.dagster_home, self.downloads, self.deliveries, self.objects, self.runs):
            path.mkdir(parents=True, exist_ok=True)
        return self
