"""Release contracts: a frozen set of allowed tracks for one purpose, and its approval trail."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
ReleaseStatus = Literal["proposed", "approved", "rejected", "revoked"]
ApprovalAction = Literal["approve", "reject", "revoke"]


class ReleaseTrack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    track_id: str
    isrc: str
    decision_id: str


class Approval(BaseModel):
    """Who approved or rejected a release, when, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    release_id: str
    actor: str
    action: ApprovalAction
    comment: str = Field(min_length=1)
    recorded_at: datetime


class Release(BaseModel):
    """The frozen training set for one purpose, territory and date under one policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    release_id: str
    purpose: str
    territory: str
    on_date: date
    policy_hash: str
    status: ReleaseStatus
    proposed_by: str
    proposed_at: datetime
    track_count: int = Field(ge=0)
    content_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tracks: tuple[ReleaseTrack, ...] = ()
    approvals: tuple[Approval, ...] = ()
