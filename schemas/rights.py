"""Rights contracts: parties, recordings, works, deals (licenses) and consents.

Use types are DDEX allowed values; consent fields are the CAWG training-and-data-mining
vocabulary. Everything here drives a decision, so models are frozen and forbid extra fields.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from schemas.identifiers import IPI, ISNI, ISRC, ISWC, Territory, normalize_isrc, normalize_iswc

SCHEMA_VERSION = 1

# DDEX AVS UseType values (ERN 4.3 allowed-value-sets and AVS 2020-01-08); 'All' and 'AsPerContract'
# are accepted but never match an AI purpose: a training use must be named explicitly.
UseType = Literal[
    "All", "AsPerContract", "Broadcast", "BroadcastRadio", "BroadcastTV", "Cable", "CableRetransmission",
    "CableRetransmissionRadio", "CableRetransmissionTV", "CatchUp", "CatchUpRadio", "CatchUpTV",
    "CommercialRent", "ConditionalDownload", "ContentInfluencedStream", "Display", "Download", "Dub",
    "DubForAdvertisement", "DubForDistribution", "DubForLivePerformance", "DubForMovies", "DubForMusicOnHold",
    "DubForOnDemandStreaming", "DubForPublicPerformance", "DubForRadio", "DubForTV", "ExtractForInternet",
    "KioskDownload", "Lend", "LiveStream", "Narrowcast", "NonInteractiveStream", "OnDemandStream", "Perform",
    "PerformAsMusicOnHold", "PerformInLivePerformance", "PerformInPublic", "PermanentDownload",
    "PlayInPublic", "Playback", "Podcast", "Print", "PrivateCopy", "ProgrammedContentStream",
    "PurchaseAsPhysicalProduct", "Rent", "Retransmission", "RingbackTone", "Simulcast", "SimulcastRadio",
    "SimulcastTV", "Stream", "TetheredDownload", "TimeInfluencedStream", "Unknown", "Use", "UseAsAlertTone",
    "UseAsDevice", "UseAsKaraoke", "UseAsRingbackTone", "UseAsRingbackTune", "UseAsRingtone", "UseAsRingtune",
    "UseAsScreensaver", "UseAsVoiceMail", "UseAsWallpaper", "UseForDataMining",
    "UseForEducationAndOrSocialPurposes", "UseForIdentification", "UseForTrainingGenerativeAI",
    "UseForTrainingNonGenerativeAI", "UseForUgcCreation", "UseInMobilePhoneMessaging", "UseInPhoneListening",
    "UseInPlayList", "UserDefined", "UserMakeAvailableLabelProvided", "UserMakeAvailableUserProvided",
    "Webcast",
]
AI_USE_TYPES: tuple[str, ...] = ("UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining")
Purpose = Literal["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining"]

ConsentValue = Literal["allowed", "notAllowed", "constrained"]
ConsentField = Literal["ai_training", "ai_generative_training", "data_mining", "ai_inference"]
ConsentScope = Literal["recording", "work", "all"]
DealCondition = Literal["attribution_required", "share_alike", "non_commercial", "no_derivatives",
                        "notify_licensor", "internal_use_only"]

_frozen = ConfigDict(frozen=True, extra="forbid")


class Party(BaseModel):
    """A person or company that can license, control rights or consent."""

    model_config = _frozen

    party_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1)
    isni: ISNI | None = None
    ipi: IPI | None = None
    dpid: str | None = Field(default=None, pattern=r"^PADPIDA[0-9A-Z]{11}$")


WorkRole = Literal["Composer", "Lyricist", "Publisher", "Arranger", "SubPublisher", "Administrator"]


class WorkContributor(BaseModel):
    """A songwriter or publisher of a work, with their publishing share (percent) when known."""

    model_config = _frozen

    party_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    role: WorkRole
    share: float | None = Field(default=None, ge=0, le=100)


class Work(BaseModel):
    """A musical work (composition), identified by its ISWC, with its writers and publishers.

    Publishing shares add up like master shares: over 100% is invalid; under 100% leaves part of
    the work unaccounted for, which a policy requiring full shares denies.
    """

    model_config = _frozen

    iswc: ISWC
    title: str | None = None
    contributors: tuple[WorkContributor, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Work:
        total = sum(c.share or 0.0 for c in self.contributors)
        if total > 100.0 + 1e-6:
            raise ValueError(f"publishing shares of {self.iswc} add up to {total:g}%, more than 100%")
        return self


class RecordingContributor(BaseModel):
    model_config = _frozen

    party_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    role: str = Field(min_length=1)


class Recording(BaseModel):
    """A sound recording as the rights data describes it (not the audio file)."""

    model_config = _frozen

    isrc: ISRC
    iswc: ISWC | None = None
    title: str | None = None
    ai_generated: bool = False
    ai_evidence: str | None = None
    contributors: tuple[RecordingContributor, ...] = ()


class Territories(BaseModel):
    """Included territories (ISO alpha-2 or ``Worldwide``) minus excluded ones."""

    model_config = _frozen

    include: tuple[Territory, ...] = Field(min_length=1)
    exclude: tuple[Territory, ...] = ()

    def covers(self, territory: str) -> bool:
        """Whether a use in ``territory`` (or ``Worldwide`` for everywhere) falls inside this set."""
        if territory == "Worldwide":
            return "Worldwide" in self.include and not self.exclude
        if territory in self.exclude:
            return False
        return "Worldwide" in self.include or territory in self.include


class RightsControllerShare(BaseModel):
    model_config = _frozen

    party_id: str = Field(min_length=1)
    isrc: ISRC
    share: float = Field(gt=0, le=100)


class Deal(BaseModel):
    """A license: who grants which uses of which recordings, where and when."""

    model_config = _frozen

    deal_id: str = Field(min_length=1, max_length=200)
    licensor: str = Field(min_length=1)
    license: str | None = None
    isrcs: tuple[ISRC, ...] = Field(min_length=1)
    use_types: tuple[UseType, ...] = Field(min_length=1)
    territories: Territories
    valid_from: date | None = None
    valid_to: date | None = None
    conditions: tuple[DealCondition, ...] = ()
    rights_controllers: tuple[RightsControllerShare, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> "Deal":
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        covered = set(self.isrcs)
        totals: dict[str, float] = {}
        for rc in self.rights_controllers:
            if rc.isrc not in covered:
                raise ValueError(f"rights controller {rc.party_id} names {rc.isrc}, which the deal does not cover")
            totals[rc.isrc] = totals.get(rc.isrc, 0.0) + rc.share
        over = {isrc: total for isrc, total in totals.items() if total > 100.0 + 1e-6}
        if over:
            raise ValueError(f"rights-controller shares exceed 100%: {over}")
        return self


class Consent(BaseModel):
    """A party's statement (with evidence) about AI uses, in CAWG training-and-data-mining terms."""

    model_config = _frozen

    consent_id: str = Field(min_length=1, max_length=200)
    party_id: str = Field(min_length=1)
    scope: ConsentScope
    scope_ref: str | None = Field(default=None, validate_default=True)
    ai_training: ConsentValue
    ai_generative_training: ConsentValue
    data_mining: ConsentValue
    ai_inference: ConsentValue
    evidence_ref: str = Field(min_length=1)
    evidence_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    granted_at: datetime
    revoked_at: datetime | None = None

    @field_validator("granted_at", "revoked_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone (e.g. 2026-01-15T00:00:00Z)")
        return value

    @field_validator("scope_ref")
    @classmethod
    def _scope_ref(cls, value: str | None, info: ValidationInfo) -> str | None:
        scope = info.data.get("scope")
        if scope == "all":
            if value:
                raise ValueError("scope 'all' takes no scope_ref")
            return None
        if not value:
            raise ValueError(f"scope {scope!r} needs a scope_ref ({'ISRC' if scope == 'recording' else 'ISWC'})")
        return normalize_isrc(value) if scope == "recording" else normalize_iswc(value)

    @model_validator(mode="after")
    def _check(self) -> "Consent":
        if self.revoked_at is not None and self.revoked_at < self.granted_at:
            raise ValueError("revoked_at is before granted_at")
        return self


class RightsFile(BaseModel):
    """The JSON rights-file format accepted by ``linernotes rights import``."""

    model_config = _frozen

    schema_version: Literal[1] = SCHEMA_VERSION
    parties: tuple[Party, ...] = ()
    deals: tuple[Deal, ...] = ()
    consents: tuple[Consent, ...] = ()
    works: tuple[Work, ...] = ()
