"""Shard contracts: the build configuration, the manifest every reader trusts, acknowledgements.

The manifest is the one document a training run, an auditor and ``linernotes shards verify`` agree
on: every shard with its hash, size, rows, ISRCs and a Merkle root over its sample IDs, and the
release, approval and policy hash the shards were built under. Export its JSON Schema with
:func:`manifest_json_schema`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.gate import Acknowledgement, ApprovalRef, GateReason

__all__ = ["Acknowledgement", "AcknowledgementRecord", "ApprovalRef", "ExcludedTrack", "LongformConfig", "PurgeRecord", "ShardConfig", "ShardEntry",
           "ShardManifest", "manifest_json_schema"]

SCHEMA_VERSION = 1
FORMAT_VERSION = "linernotes-shards/1"

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ShardConfig(BaseModel):
    """How samples are cut from a release: same release + config gives byte-identical shards.

    Samples are mono 16 kHz int16 little-endian PCM crops of 4 s (64 000 samples, 128 000 bytes):
    enough bandwidth for music tagging/embedding models, half the bytes of float32, exact to store.
    Attribution columns are zstd-compressed. The ``audio`` column is stored uncompressed by default:
    zstd shrinks music PCM by only about 6-10 % while halving build and load throughput; set
    ``audio_compression="zstd"`` where storage costs more than CPU.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_rate: Literal[16000] = 16000
    crop_seconds: float = Field(default=4.0, gt=0, le=60)
    crops_per_track: int = Field(default=8, ge=1, le=10_000)
    seed: int = Field(default=0, ge=0)
    rows_per_shard: int = Field(default=512, ge=1)
    rows_per_row_group: int = Field(default=64, ge=1)
    compression: Literal["zstd"] = "zstd"
    compression_level: int = Field(default=1, ge=1, le=22)
    audio_compression: Literal["none", "zstd"] = "none"

    @property
    def crop_samples(self) -> int:
        return int(round(self.sample_rate * self.crop_seconds))


class LongformConfig(BaseModel):
    """Whole recordings, one row per track: the audio compressed as a file in the ``audio`` column,
    its text beside it (see ``shards/README.md``).

    FLAC by default: lossless, so the decoded samples are exactly the decoded source at the declared
    rate and channels, and it keeps any sample rate (Opus codes 48 kHz only, so 44.1 kHz sources
    would be resampled). Opus is there where bytes cost more than exactness (sizes and decode
    speeds: ``bench/results/longform.md``). ``sample_rate`` and ``channels`` of None keep the source's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    layout: Literal["longform"] = "longform"
    codec: Literal["flac", "opus"] = "flac"
    sample_rate: Literal[16000, 22050, 24000, 32000, 44100, 48000] | None = None
    channels: Literal[1, 2] | None = None
    max_seconds: float = Field(default=1200.0, gt=0, le=7200)
    opus_bitrate: int = Field(default=128_000, ge=6_000, le=510_000)
    rows_per_shard: int = Field(default=16, ge=1)
    rows_per_row_group: int = Field(default=1, ge=1)
    compression: Literal["zstd"] = "zstd"
    compression_level: int = Field(default=1, ge=1, le=22)
    audio_compression: Literal["none"] = "none"


class AcknowledgementRecord(BaseModel):
    """An acknowledgement as it was used: what it overrode and when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: str
    reason: str
    context: Literal["build", "load"]
    overridden: tuple[GateReason, ...]
    skipped_track_ids: tuple[str, ...] = ()
    recorded_at: datetime


class ShardEntry(BaseModel):
    """One Parquet shard: where it is, what it hashes to and which recordings it holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)
    name: str = Field(pattern=r"^shard-\d{5}-[0-9a-f]{16}\.parquet$")
    uri: str
    sha256: Sha256
    bytes: int = Field(ge=0)
    rows: int = Field(ge=1)
    row_groups: tuple[int, ...]
    isrcs: tuple[str, ...]
    track_ids: tuple[str, ...]
    first_sample_id: str
    last_sample_id: str
    merkle_root: Sha256


class ExcludedTrack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    track_id: str
    isrc: str | None
    reason_code: str
    message: str


class PurgeRecord(BaseModel):
    """Recordings whose bytes a purge removed from this shard set, and the build it replaced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    previous_merkle_root: Sha256
    previous_manifest_sha256: Sha256
    track_ids: tuple[str, ...]
    isrcs: tuple[str, ...]
    samples_removed: int = Field(ge=0)
    proof_name: str
    purged_by: str
    purged_at: datetime


class ShardManifest(BaseModel):
    """Everything needed to trust, locate and attribute a shard set; written last, atomically."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    format_version: str = FORMAT_VERSION
    code_version: str
    release_id: str
    purpose: str
    territory: str
    on_date: str
    policy_hash: str
    release_content_sha256: str
    approval: ApprovalRef
    config: ShardConfig | LongformConfig
    sample_format: dict[str, Any]
    shards: tuple[ShardEntry, ...]
    total_rows: int = Field(ge=0)
    track_count: int = Field(ge=0)
    merkle_root: Sha256
    excluded: tuple[ExcludedTrack, ...] = ()
    acknowledgements: tuple[AcknowledgementRecord, ...] = ()
    purges: tuple[PurgeRecord, ...] = Field(default=(), description="Purges on revocation, oldest first")
    built_by: str
    built_at: datetime

    @property
    def layout(self) -> Literal["crops", "longform"]:
        return "longform" if isinstance(self.config, LongformConfig) else "crops"

    def track_ids(self) -> frozenset[str]:
        """Every track whose samples these shards hold."""
        return frozenset(t for shard in self.shards for t in shard.track_ids)


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema of the manifest, generated from the model."""
    return ShardManifest.model_json_schema()
