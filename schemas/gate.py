"""The release gate's contract: one decision type and one set of reason codes for every use of a release.

Building shards, serving them to a loader, starting a training run and showing a release all ask
the same question (:mod:`licensing.gate`): may this release be used now, and if not, why? The
answer is a :class:`GateDecision` value; nothing raises for "no".
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1

# What the release is about to be used for. A build leaves recordings denied since approval out
# (and lists them) instead of refusing; every other use counts them.
GateUse = Literal["show", "build", "load", "train"]


class GateReason(StrEnum):
    """Why a release may not be used now; each one its own code (deny by default)."""

    RELEASE_UNKNOWN = "release_unknown"
    RELEASE_NOT_APPROVED = "release_not_approved"
    RELEASE_REVOKED = "release_revoked"
    APPROVAL_MISSING = "approval_missing"
    RELEASE_CHANGED = "release_changed"
    POLICY_UNKNOWN = "policy_unknown"
    DENIED_SINCE_APPROVAL = "denied_since_approval"
    MANIFEST_MISSING = "manifest_missing"
    SHARD_VERIFICATION_FAILED = "shard_verification_failed"
    BUILD_PURGED = "build_purged"


# A person may knowingly go past these, and is recorded doing so; never past the others.
ACKNOWLEDGEABLE: frozenset[GateReason] = frozenset({GateReason.RELEASE_REVOKED, GateReason.DENIED_SINCE_APPROVAL})


class Acknowledgement(BaseModel):
    """A named person asking to go past an acknowledgeable refusal, for a stated reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: str = Field(min_length=1)
    reason: str = Field(min_length=3)


class Acknowledged(BaseModel):
    """An acknowledgement the gate accepted: who, why, which reasons and which denied recordings it went past."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: str
    reason: str
    overridden: tuple[GateReason, ...] = Field(default=(), description="Empty in run records written before "
                                                                     "revoked releases could be acknowledged")
    track_ids: tuple[str, ...] = ()


class ApprovalRef(BaseModel):
    """The approval a release rests on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: str
    comment: str
    recorded_at: datetime


class DeniedTrack(BaseModel):
    """A recording of the release that its policy denies on current rights data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    track_id: str
    isrc: str
    reason_codes: tuple[str, ...]
    explanation: str
    decision_id: str | None = Field(default=None, description="The decision's id (it hashes policy and inputs); "
                                                              "None when the track is no longer in the catalog")


class GateDecision(BaseModel):
    """Whether a release may be used now for ``use``, every reason it may not, and what the answer rests on.

    ``reason_codes`` lists everything found, even what an accepted ``acknowledgement`` went past;
    ``allowed`` is true when nothing is found, or when everything found was acknowledged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    release_id: str
    use: GateUse
    allowed: bool
    reason_codes: tuple[GateReason, ...]
    message: str
    checked_on: date = Field(description="The date the release's tracks were re-decided for")
    status: str | None = None
    purpose: str | None = None
    territory: str | None = None
    on_date: date | None = None
    policy_hash: str | None = None
    content_sha256: str | None = None
    approval: ApprovalRef | None = None
    denied_tracks: tuple[DeniedTrack, ...] = Field(
        default=(), description="Recordings the policy denies now (for a build: the ones it leaves out)")
    manifest_uri: str | None = None
    manifest_sha256: str | None = None
    acknowledgement: Acknowledged | None = None

    @model_validator(mode="after")
    def _consistent(self) -> GateDecision:
        if self.acknowledgement is not None and set(self.acknowledgement.overridden) != set(self.reason_codes):
            raise ValueError("an acknowledgement overrides exactly the reasons found")
        if self.acknowledgement is not None and not set(self.reason_codes) <= ACKNOWLEDGEABLE:
            raise ValueError(f"only {sorted(ACKNOWLEDGEABLE)} can be acknowledged")
        if self.allowed != (not self.reason_codes or self.acknowledgement is not None):
            raise ValueError("allowed must be: no reasons, or every reason acknowledged")
        return self

    @property
    def denied_track_ids(self) -> tuple[str, ...]:
        return tuple(d.track_id for d in self.denied_tracks)

    @property
    def blocking(self) -> tuple[GateReason, ...]:
        """The reasons that stand: all of them unless an acknowledgement was accepted."""
        return () if self.acknowledgement is not None else self.reason_codes

    def explain(self) -> str:
        return self.message
