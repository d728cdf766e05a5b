"""The rights policy: which checks a use must pass, per purpose. Policy is data (a YAML file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.canonical import canonical_json, sha256_text
from schemas.rights import ConsentField, Purpose

SCHEMA_VERSION = 1
ContributorRoleName = Literal["MainArtist", "FeaturedArtist", "Composer", "Lyricist", "Publisher", "Producer"]


class PurposeRule(BaseModel):
    """What one purpose (a DDEX AI use type) requires beyond a valid deal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    consent_field: ConsentField = Field(description="CAWG field that must be 'allowed' for this purpose")
    required_consent_roles: tuple[ContributorRoleName, ...] = Field(
        description="Contributor roles whose every party must have consented")
    required_listed_roles: tuple[ContributorRoleName, ...] = Field(
        default=("MainArtist",),
        description="At least one contributor with one of these roles must be known, or consent cannot be checked")
    exclude_ai_generated: bool = Field(default=True, description="Deny recordings declared AI-generated")
    require_full_shares: bool = Field(default=True, description="Rights-controller (master) shares must sum to 100%, "
                                                                "and so must a work's publishing shares where known")
    require_fingerprint: bool = Field(
        default=True, description="Deny a catalog track whose audio has no fingerprint: it was never checked "
                                  "against the opt-out registry or for duplicates")


class Policy(BaseModel):
    """A versioned policy; its content hash is stamped on every decision made under it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    policy_id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    share_tolerance: float = Field(default=0.01, ge=0, le=1)
    purposes: dict[Purpose, PurposeRule]

    @property
    def content_hash(self) -> str:
        """SHA-256 over the canonical JSON of the policy (comments and layout of the file do not count)."""
        return sha256_text(canonical_json(self.model_dump(mode="json")))
