"""The data directory (``LINERNOTES_HOME``) and the paths inside it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIRNAME = ".linernotes"


def _default_root() -> Path:
    # The checkout the package lives in, so `make demo` in a clone writes beside it.
    return Path(__file__).resolve().parent.parent / DEFAULT_DIRNAME


@dataclass(frozen=True)
class Home:
    """Every generated file lives under one root, so a clean ``git status`` is one ignore line."""

    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> "Home":
        chosen = root or os.environ.get("LINERNOTES_HOME") or _default_root()
        return cls(Path(chosen).expanduser().resolve())

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
