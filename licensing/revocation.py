"""Consent revocations and deals ending early: recorded, audited, never deleted.

A revocation gives the consents it names a new version with ``revoked_at`` set and keeps the
who/when/why/evidence in ``consent_revocations``; a deal ending early gets a new version with an
earlier ``valid_to`` and a row in ``deal_expiries``. Each is also a rights event that *tightens*
(``revoked`` / ``valid_to``), so a later import cannot silently undo it. Nothing is deleted (old
versions stay in history), and the affected catalog tracks are re-decided in the same command:
the ledger never shows an allow that the current rights deny. The ``rights_change_sensor`` then
reports the impact and alerts the releases that hold them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from licensing.evaluate import redecide
from licensing.records import party_isrcs, record_event
from schemas.identifiers import normalize_isrc
from store.ledger import authorize, command, record_refusal
from store.roles import Principal, RoleBook

CONSENT_FIELDS = ("ai_training", "ai_generative_training", "data_mining", "ai_inference")


class RevocationError(Exception):
    """The revocation or expiry cannot be carried out (nothing matches, bad arguments)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Revocation(BaseModel):
    """What one ``consent revoke`` did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    revocation_id: str
    party_id: str
    revoked_at: datetime
    revoked_consent_ids: tuple[str, ...]
    refusal_consent_id: str | None = Field(
        default=None, description="A recording-scoped refusal written when --isrc narrowed a catalog-wide consent")
    isrcs: tuple[str, ...] = Field(description="Recordings whose contributor this party is, in the catalog")
    evidence_ref: str
    evidence_sha256: str | None
    actor: str
    reason: str


class DealExpiry(BaseModel):
    """What one ``rights expire-deal`` did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deal_id: str
    previous_valid_to: date | None
    valid_to: date
    isrcs: tuple[str, ...]
    evidence_ref: str
    actor: str
    reason: str


def revoke_consent(con: duckdb.DuckDBPyConnection, *, party_id: str, actor: Principal | str, evidence_ref: str,
                   consent_id: str | None = None, scope: str | None = None, isrc: str | None = None,
                   evidence_sha256: str | None = None, reason: str = "", revoked_at: datetime | None = None,
                   roles: RoleBook | None = None) -> Revocation:
    """Revoke a party's consent: one consent by id, all of a scope, or for one recording.

    ``isrc`` revokes the party's consents scoped to that recording or its work; if a catalog-wide
    consent of the party also covers it, a recording-scoped refusal (every field ``notAllowed``)
    is recorded for that ISRC, so the rest of the party's catalog stays as it was. The affected
    tracks are re-decided in the same command. Needs the ``rights_team`` role (``consent.revoke``).
    """
    try:
        return _revoke_consent(con, party_id=party_id, actor=actor, evidence_ref=evidence_ref, consent_id=consent_id,
                               scope=scope, isrc=isrc, evidence_sha256=evidence_sha256, reason=reason,
                               revoked_at=revoked_at, roles=roles)
    except RevocationError as exc:
        record_refusal(con, actor, "consent.revoke", f"party:{party_id}", code=exc.code, message=exc.message)
        raise


def _revoke_consent(con: duckdb.DuckDBPyConnection, *, party_id: str, actor: Principal | str, evidence_ref: str,
                    consent_id: str | None, scope: str | None, isrc: str | None, evidence_sha256: str | None,
                    reason: str, revoked_at: datetime | None, roles: RoleBook | None) -> Revocation:
    subject = f"party:{party_id}"
    authorize(con, actor, "consent.revoke", subject, roles=roles)
    if not evidence_ref or not evidence_ref.strip():
        raise RevocationError("evidence_required", "a revocation needs --evidence-ref (where the withdrawal is kept)")
    if sum(x is not None for x in (consent_id, scope, isrc)) != 1:
        raise RevocationError("target_required", "name exactly one of --consent-id, --scope or --isrc")
    if scope is not None and scope not in ("all", "recording", "work"):
        raise RevocationError("invalid_scope", f"scope must be all, recording or work, not {scope!r}")
    when = revoked_at or datetime.now(UTC)
    iswc = None
    if isrc is not None:
        try:
            isrc = normalize_isrc(isrc)
        except ValueError as exc:
            raise RevocationError("invalid_isrc", str(exc)) from exc
        row = con.execute("SELECT iswc FROM recordings WHERE isrc = ?", [isrc]).fetchone()
        iswc = row[0] if row else None

    where, params = "party_id = ? AND revoked_at IS NULL", [party_id]
    if consent_id is not None:
        where, params = where + " AND consent_id = ?", params + [consent_id]
    elif scope is not None:
        where, params = where + " AND scope = ?", params + [scope]
    else:
        where += " AND ((scope = 'recording' AND scope_ref = ?) OR (scope = 'work' AND scope_ref = ?))"
        params += [isrc, iswc]
    targets = [r[0] for r in con.execute(f"SELECT consent_id FROM consents WHERE {where} ORDER BY consent_id",
                                         params).fetchall()]
    wide = []
    if isrc is not None:
        wide = [r[0] for r in con.execute(
            "SELECT consent_id FROM consents WHERE party_id = ? AND scope = 'all' AND revoked_at IS NULL "
            "AND granted_at <= ? ORDER BY consent_id", [party_id, when]).fetchall()]
    if not targets and not wide:
        known = con.execute("SELECT count(*), count(revoked_at) FROM consents WHERE party_id = ?"
                            + (" AND consent_id = ?" if consent_id else ""),
                            [party_id] + ([consent_id] if consent_id else [])).fetchone()
        if known and known[0] and known[0] == known[1]:
            raise RevocationError("already_revoked", f"every matching consent of {party_id} is already revoked")
        raise RevocationError("consent_not_found", f"no consent in force of {party_id} matches "
                                                   f"{consent_id or scope or isrc}")

    revocation_id = f"rvk_{uuid.uuid4().hex[:16]}"
    refusal_id = f"{revocation_id}:{isrc}" if wide and isrc is not None else None
    isrcs = sorted(party_isrcs(con, party_id)) if isrc is None else [isrc]
    with command(con, actor, "consent.revoke", subject, roles=roles) as w:
        if targets:
            w.update("consents", "consent_id IN (SELECT unnest(?::VARCHAR[]))", [targets], {"revoked_at": when})
        if refusal_id is not None:
            w.insert("consents", [{"consent_id": refusal_id, "party_id": party_id, "scope": "recording",
                                   "scope_ref": isrc, "ai_training": "notAllowed",
                                   "ai_generative_training": "notAllowed", "data_mining": "notAllowed",
                                   "ai_inference": "notAllowed", "evidence_ref": evidence_ref,
                                   "evidence_sha256": evidence_sha256, "granted_at": when, "revoked_at": None,
                                   "source": f"revocation:{revocation_id}"}])
        w.insert("consent_revocations", [{"revocation_id": revocation_id, "party_id": party_id,
                                          "consent_ids": targets, "refusal_consent_id": refusal_id, "isrc": isrc,
                                          "revoked_at": when, "evidence_ref": evidence_ref,
                                          "evidence_sha256": evidence_sha256, "actor": w.actor,
                                          "recorded_at": datetime.now(UTC)}])
        for target in [*targets, *([refusal_id] if refusal_id else [])]:
            record_event(w, kind="consent.revoked", subject_kind="consent", subject_id=target, isrcs=isrcs,
                         party_ids=[party_id], tightened=["revoked"] if target in targets else
                         ["ai_training", "ai_generative_training", "data_mining", "ai_inference"],
                         evidence_ref=evidence_ref, source=f"revocation:{revocation_id}",
                         details={"revoked_at": when, "reason": reason, "isrc": isrc}, when=when)
        result = Revocation(revocation_id=revocation_id, party_id=party_id, revoked_at=when,
                            revoked_consent_ids=tuple(targets), refusal_consent_id=refusal_id, isrcs=tuple(isrcs),
                            evidence_ref=evidence_ref, evidence_sha256=evidence_sha256, actor=w.actor, reason=reason)
        w.payload.update(result.model_dump(mode="json", exclude={"isrcs"}) | {"isrc_count": len(isrcs)})
        w.payload["redecided"] = redecide(w, isrcs)
    return result


def expire_deal(con: duckdb.DuckDBPyConnection, deal_id: str, *, valid_to: date, actor: Principal | str,
                evidence_ref: str, reason: str = "", roles: RoleBook | None = None) -> DealExpiry:
    """End a deal early: ``valid_to`` moves to the given date (never later than it was).

    The deal's recordings are re-decided in the same command. Needs the ``rights_team`` role
    (``deal.expire``).
    """
    try:
        return _expire_deal(con, deal_id, valid_to=valid_to, actor=actor, evidence_ref=evidence_ref, reason=reason,
                            roles=roles)
    except RevocationError as exc:
        record_refusal(con, actor, "deal.expire", f"deal:{deal_id}", code=exc.code, message=exc.message)
        raise


def _expire_deal(con: duckdb.DuckDBPyConnection, deal_id: str, *, valid_to: date, actor: Principal | str,
                 evidence_ref: str, reason: str, roles: RoleBook | None) -> DealExpiry:
    authorize(con, actor, "deal.expire", f"deal:{deal_id}", roles=roles)
    if not evidence_ref or not evidence_ref.strip():
        raise RevocationError("evidence_required", "ending a deal needs --evidence-ref")
    row = con.execute("SELECT valid_from, valid_to FROM deals WHERE deal_id = ?", [deal_id]).fetchone()
    if row is None:
        raise RevocationError("deal_unknown", f"no deal {deal_id}")
    valid_from, previous = row
    if previous is not None and previous <= valid_to:
        raise RevocationError("not_earlier", f"deal {deal_id} already ends on {previous}; {valid_to} is not earlier")
    if valid_from is not None and valid_to < valid_from:
        raise RevocationError("before_start", f"deal {deal_id} starts on {valid_from}; it cannot end on {valid_to}")
    isrcs = tuple(r[0] for r in con.execute("SELECT isrc FROM deal_recordings WHERE deal_id = ? ORDER BY isrc",
                                            [deal_id]).fetchall())
    with command(con, actor, "deal.expire", f"deal:{deal_id}", roles=roles) as w:
        result = DealExpiry(deal_id=deal_id, previous_valid_to=previous, valid_to=valid_to, isrcs=isrcs,
                            evidence_ref=evidence_ref, actor=w.actor, reason=reason)
        w.update("deals", "deal_id = ?", [deal_id], {"valid_to": valid_to})
        w.insert("deal_expiries", [{"deal_id": deal_id, "previous_valid_to": previous, "valid_to": valid_to,
                                    "evidence_ref": evidence_ref, "reason": reason, "actor": w.actor,
                                    "recorded_at": datetime.now(UTC)}])
        record_event(w, kind="deal.expired", subject_kind="deal", subject_id=deal_id, isrcs=isrcs,
                     tightened=["valid_to"], evidence_ref=evidence_ref, source="expire-deal",
                     details={"before": {"valid_to": previous}, "after": {"valid_to": valid_to}, "reason": reason})
        w.payload.update(result.model_dump(mode="json", exclude={"isrcs"}) | {"isrc_count": len(isrcs)})
        w.payload["redecided"] = redecide(w, isrcs)
    return result
