"""Catalog contracts: what an ingested track is."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.identifiers import ISRC

SCHEMA_VERSION = 1

ContributorRole = Literal["MainArtist", "FeaturedArtist", "Composer", "Lyricist", "Publisher", "Producer"]


class Contributor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    party_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    role: ContributorRole


class Track(BaseModel):
    """One recording in a delivery, with the file it came from and how it was identified."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    track_id: str = Field(pattern=r"^trk_[0-9a-f]{16}$")
    delivery_id: str
    isrc: ISRC
    isrc_assigned: bool = False
    title: str
    artists: tuple[str, ...]
    album: str | None = None
    license_tag: str | None = None
    ai_generated: bool = False
    contributors: tuple[Contributor, ...] = ()
    source_path: str
    audio_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    duration_s: float = Field(ge=0)
    codec: str
    sample_rate: int = Field(gt=0)
    channels: int = Field(gt=0)
    tags: dict[str, str] = Field(default_factory=dict)
    ingested_at: datetime
