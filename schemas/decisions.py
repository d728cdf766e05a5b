"""Decision contracts: one allow/deny value per (track, purpose, territory, date), with its reasons."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class ReasonCode(StrEnum):
    """Why a use is denied. Every failed check has its own code; an allowed decision has none."""

    PURPOSE_UNKNOWN = "purpose_unknown"
    NO_DEAL = "no_deal"
    DEAL_USE_NOT_LICENSED = "deal_use_not_licensed"
    DEAL_TERRITORY_NOT_COVERED = "deal_territory_not_covered"
    DEAL_NOT_YET_VALID = "deal_not_yet_valid"
    DEAL_EXPIRED = "deal_expired"
    RIGHTS_SHARES_INCOMPLETE = "rights_shares_incomplete"
    PUBLISHING_SHARES_INCOMPLETE = "publishing_shares_incomplete"
    RIGHTS_CONTROLLER_REFUSED = "rights_controller_refused"
    CONTRIBUTORS_UNKNOWN = "contributors_unknown"
    CONSENT_MISSING = "consent_missing"
    CONSENT_NOT_ALLOWED = "consent_not_allowed"
    CONSENT_CONSTRAINED = "consent_constrained"
    CONSENT_REVOKED = "consent_revoked"
    OPTOUT_MATCH = "optout_match"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    AI_GENERATED = "ai_generated"
    TRACK_WITHDRAWN = "track_withdrawn"
    AUDIO_NOT_FINGERPRINTED = "audio_not_fingerprinted"


REASON_TEXT: dict[str, str] = {
    ReasonCode.PURPOSE_UNKNOWN: "the policy does not define this purpose",
    ReasonCode.NO_DEAL: "no deal covers this recording",
    ReasonCode.DEAL_USE_NOT_LICENSED: "no deal for this recording licenses this use type",
    ReasonCode.DEAL_TERRITORY_NOT_COVERED: "the deals licensing this use do not cover this territory",
    ReasonCode.DEAL_NOT_YET_VALID: "the deals licensing this use here are not yet in force on this date",
    ReasonCode.DEAL_EXPIRED: "the deals licensing this use here have expired by this date",
    ReasonCode.RIGHTS_SHARES_INCOMPLETE: "the rights controllers covered by the deal do not add up to 100%",
    ReasonCode.PUBLISHING_SHARES_INCOMPLETE: "the work's writers' and publishers' shares do not add up to 100%, so "
                                             "part of the composition's rights is unaccounted for",
    ReasonCode.RIGHTS_CONTROLLER_REFUSED: "a rights controller or licensor of this recording refuses this purpose "
                                          "(a label's own opt-out)",
    ReasonCode.CONTRIBUTORS_UNKNOWN: "no main contributor is known, so consent cannot be checked",
    ReasonCode.CONSENT_MISSING: "a required contributor has given no consent for this purpose",
    ReasonCode.CONSENT_NOT_ALLOWED: "a required contributor does not allow this purpose",
    ReasonCode.CONSENT_CONSTRAINED: "a required contributor allows this purpose only with constraints (counts as not allowed)",
    ReasonCode.CONSENT_REVOKED: "a required contributor revoked consent for this purpose",
    ReasonCode.OPTOUT_MATCH: "the audio matches a recording whose owner opted out",
    ReasonCode.DUPLICATE_CONFLICT: "the audio duplicates a recording with another ISRC and the conflict is unresolved",
    ReasonCode.AI_GENERATED: "the recording is declared AI-generated and the policy excludes such recordings",
    ReasonCode.TRACK_WITHDRAWN: "the delivery that held this track no longer holds it (withdrawn, not re-delivered)",
    ReasonCode.AUDIO_NOT_FINGERPRINTED: "the audio has no fingerprint, so it was never checked against the opt-out "
                                        "registry or for duplicates",
}


def explanation_for(allowed: bool, reason_codes: list[str] | tuple[str, ...], deal_id: str | None,
                    consent_count: int) -> str:
    """The one-line human explanation stored with a decision (the same for both evaluators)."""
    if allowed:
        return f"allowed: deal {deal_id} licenses this use here and now; {consent_count} required consent(s) in force"
    return "denied: " + "; ".join(REASON_TEXT.get(code, code) for code in reason_codes)


class Decision(BaseModel):
    """An allow/deny value: never an exception. Denied unless every check passed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    decision_id: str
    track_id: str | None
    isrc: str
    purpose: str
    territory: str
    on_date: date
    allowed: bool
    reason_codes: tuple[ReasonCode, ...]
    explanation: str
    policy_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    deal_id: str | None = None
    consent_ids: tuple[str, ...] = ()
    evidence: dict[str, Any] = Field(default_factory=dict)
    decided_at: datetime


class EvaluationSummary(BaseModel):
    """Counts from one whole-catalog evaluation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purpose: str
    territory: str
    on_date: date
    policy_hash: str
    evaluated: int
    allowed: int
    denied: int
    by_reason: dict[str, int]
    decisions_written: int
    elapsed_s: float
