"""Training run contracts: what a run was asked to do, what it did, and whose music it learned from."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.gate import Acknowledged

SCHEMA_VERSION = 1

RunStatus = Literal["running", "completed", "failed"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class TrainConfig(BaseModel):
    """Parameters of one training run; the same values drive the reference trainer and user scripts."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    release_id: str = Field(min_length=1)
    model: str = Field(default="reference", min_length=1)
    epochs: int = Field(default=2, ge=1)
    batch_size: int = Field(default=8, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    seed: int = 0
    nproc: int = Field(default=2, ge=1)
    loader_workers: int = Field(default=0, ge=0, description="DataLoader worker processes per rank.")
    checkpoint_every: int = Field(default=10, ge=1, description="Optimizer steps between checkpoints.")
    shuffle: bool = True
    manifest_uri: str | None = Field(default=None, description="Shard manifest; default: the release's latest.")


class CodeVersion(BaseModel):
    model_config = _FROZEN

    commit: str
    dirty: bool | None


class EpochMetrics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    epoch: int = Field(ge=0)
    steps: int = Field(ge=0)
    samples: int = Field(ge=0)


class RunRecord(BaseModel):
    """The ledger's account of one training run."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    release_id: str
    status: RunStatus
    actor: str
    config: TrainConfig
    script: str | None = None
    script_sha256: str | None = None
    manifest_uri: str | None = Field(description="Shard manifest read: relative to the data directory, or a URI")
    manifest_sha256: str | None
    policy_hash: str | None
    code: CodeVersion
    torch_version: str
    device: str | None = None
    world_size: int
    started_at: datetime
    ended_at: datetime | None = None
    metrics: tuple[EpochMetrics, ...] = ()
    samples_consumed: int = Field(default=0, ge=0)
    checkpoint_uri: str | None = Field(default=None, description="Final weights: relative to the data directory, "
                                                                 "or a URI (s3://, or absolute outside it)")
    checkpoint_sha256: str | None = None
    attempts: int = Field(default=1, ge=1, description="1 plus the number of resumes after a failure.")
    acknowledgement: Acknowledged | None = None
    error: str | None = None


class TrackExposure(BaseModel):
    model_config = _FROZEN

    track_id: str
    isrc: str
    title: str | None = None
    samples: int = Field(ge=0)
    fraction: float = Field(ge=0, le=1)


class HolderExposure(BaseModel):
    """Samples credited to one rights holder, from each track's samples times its ownership share.

    ``samples_milli`` is exact (thousandths of a sample, apportioned so the column sums to the total);
    ``party_id`` is ``unattributed`` for the part of a track no recorded controller share covers.
    """

    model_config = _FROZEN

    party_id: str
    name: str
    tracks: int = Field(ge=0)
    samples_milli: int = Field(ge=0)
    samples: float = Field(ge=0)
    fraction: float = Field(ge=0, le=1)


class AttributionStatement(BaseModel):
    """Whose music a model learned from and in what proportion, from recorded exposure."""

    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    release_id: str
    manifest_sha256: str | None
    total_samples: int = Field(ge=0)
    epochs: int = Field(ge=0)
    ranks: int = Field(ge=0)
    tracks: tuple[TrackExposure, ...]
    rights_holders: tuple[HolderExposure, ...]


class ModelCardData(BaseModel):
    """The data section of a model card, generated from lineage."""

    model_config = _FROZEN

    release_id: str
    purpose: str | None
    territory: str | None
    policy_hash: str | None
    manifest_uri: str | None
    manifest_sha256: str | None
    tracks_in_release: int = Field(ge=0)
    tracks_seen: int = Field(ge=0)
    rights_holders: int = Field(ge=0)
    licenses: tuple[str, ...]
    samples_consumed: int = Field(ge=0)
    acknowledgement: Acknowledged | None = None


class ModelCard(BaseModel):
    model_config = _FROZEN

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    model: str
    checkpoint_uri: str | None
    checkpoint_sha256: str | None
    code: CodeVersion
    torch_version: str
    device: str | None
    config: TrainConfig
    metrics: tuple[EpochMetrics, ...]
    data: ModelCardData
    generated_at: datetime
