"""The deny-by-default policy engine.

Two evaluators give the same decisions: :func:`evaluate_track`, a per-track reference in plain
Python over :class:`TrackFacts`, and :func:`evaluate_catalog`, set-based SQL in DuckDB over the
whole catalog. Both build the same canonical *inputs string* (every fact the decision read), so
equal inputs give equal ``inputs_hash`` and ``decision_id`` whichever evaluator ran.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from licensing import decision_counts
from licensing.policy import policy_by_hash, store_policy
from schemas.decisions import Decision, EvaluationSummary, ReasonCode, explanation_for
from schemas.identifiers import normalize_territory
from schemas.policy import Policy, PurposeRule
from store.ledger import Writer, command
from store.roles import Principal, RoleBook

INPUTS_VERSION = "v3"


@dataclass(frozen=True)
class DealFact:
    deal_id: str
    use_types: tuple[str, ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    valid_from: date | None
    valid_to: date | None
    share_total: float


@dataclass(frozen=True)
class ConsentFact:
    consent_id: str
    party_id: str
    scope: str
    scope_ref: str | None
    values: dict[str, str]
    granted_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class OptoutMatch:
    matched_ref: str
    score: float
    threshold: float


@dataclass(frozen=True)
class TrackFacts:
    """Everything the policy reads about one track (or one recording known only from rights data)."""

    track_id: str | None
    isrc: str
    iswc: str | None = None
    ai_generated: bool = False
    ai_evidence: str | None = None
    deals: tuple[DealFact, ...] = ()
    contributors: tuple[tuple[str, str], ...] = ()  # (party_id, role)
    consents: tuple[ConsentFact, ...] = ()          # consents of the contributing parties
    optout_matches: tuple[OptoutMatch, ...] = ()
    duplicate_conflict: str | None = None           # cluster_id of an unresolved ISRC conflict
    withdrawn: str | None = None                    # reason of an open track_withdrawals entry
    fingerprinted: bool = True                      # False: a catalog track with no stored fingerprint
    publishing_share_total: float | None = None     # sum of the work's writer/publisher shares, None if none known
    controller_consents: tuple[ConsentFact, ...] = ()  # consents of the recording's rights controllers and licensors


def _utc_date(ts: datetime) -> date:
    return ts.astimezone(UTC).date() if ts.tzinfo else ts.date()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest_sum(pieces: Iterable[str]) -> str:
    """Order-free digest of a set of facts: the XOR of the first 8 MD5 bytes (little-endian) of each.

    It is what DuckDB's ``bit_xor`` over the low 64 bits of ``md5_number(x)`` computes, so both
    evaluators agree without sorting per-track lists. Every set digested here has distinct
    members (deal ids, consent ids, party ids), so XOR loses nothing a sum would keep. Empty -> ''.
    """
    total, seen = 0, False
    for piece in pieces:
        total ^= int.from_bytes(hashlib.md5(piece.encode("utf-8")).digest()[:8], "little")
        seen = True
    return str(total) if seen else ""


def decision_id_for(policy_hash: str, inputs_hash: str) -> str:
    return "dec_" + _sha(f"{policy_hash}|{inputs_hash}")[:32]


def evaluate_track(facts: TrackFacts, policy: Policy, *, purpose: str, territory: str, on_date: date,
                   decided_at: datetime | None = None) -> Decision:
    """Decide one track for (purpose, territory, date): the reference the catalog evaluator must match."""
    territory = normalize_territory(territory)
    decided_at = decided_at or datetime.now(UTC)
    rule: PurposeRule | None = policy.purposes.get(purpose)  # type: ignore[call-overload]
    codes: set[str] = set()
    evidence: dict[str, Any] = {}
    if rule is None:
        codes.add(ReasonCode.PURPOSE_UNKNOWN)
        inputs = f"{INPUTS_VERSION}|{facts.track_id or ''}|{facts.isrc}|{purpose}|{territory}|{on_date.isoformat()}|unknown-purpose"
        return _decision(facts, policy, purpose, territory, on_date, codes, None, (), inputs, evidence, decided_at)

    flags = []
    for d in sorted(facts.deals, key=lambda d: d.deal_id):
        u = purpose in d.use_types
        if territory == "Worldwide":
            te = "Worldwide" in d.include and not d.exclude
        else:
            te = territory not in d.exclude and ("Worldwide" in d.include or territory in d.include)
        s = d.valid_from is None or d.valid_from <= on_date
        ne = d.valid_to is None or d.valid_to >= on_date
        c = abs(d.share_total - 100.0) <= policy.share_tolerance
        flags.append((d, u, te, s, ne, c))
    covering = [f for f in flags if f[1] and f[2] and f[3] and f[4]]
    if not flags:
        codes.add(ReasonCode.NO_DEAL)
    elif not any(f[1] for f in flags):
        codes.add(ReasonCode.DEAL_USE_NOT_LICENSED)
    elif not any(f[1] and f[2] for f in flags):
        codes.add(ReasonCode.DEAL_TERRITORY_NOT_COVERED)
    elif not covering:
        expired = any(f[1] and f[2] and f[0].valid_to is not None and f[0].valid_to < on_date for f in flags)
        codes.add(ReasonCode.DEAL_EXPIRED if expired else ReasonCode.DEAL_NOT_YET_VALID)
    complete = [f for f in covering if f[5]]
    chosen = (complete or covering or [None])[0]
    deal_id = chosen[0].deal_id if chosen else None
    if chosen is not None:
        evidence["share_total"] = chosen[0].share_total
        if rule.require_full_shares and not complete:
            codes.add(ReasonCode.RIGHTS_SHARES_INCOMPLETE)
    deal_sig = _digest_sum(f"{d.deal_id}:{int(u)}{int(te)}{int(s)}{int(ne)}{int(c)}" for d, u, te, s, ne, c in flags)

    pub_incomplete = (facts.publishing_share_total is not None
                      and abs(facts.publishing_share_total - 100.0) > policy.share_tolerance)
    if pub_incomplete:
        evidence["publishing_share_total"] = facts.publishing_share_total
        if rule.require_full_shares:
            codes.add(ReasonCode.PUBLISHING_SHARES_INCOMPLETE)

    roles = set(facts.contributors)
    listed = any(role in rule.required_listed_roles for _, role in roles)
    if not listed:
        codes.add(ReasonCode.CONTRIBUTORS_UNKNOWN)
    required = sorted({party for party, role in roles if role in rule.required_consent_roles})
    # a required contributor's refusal is already a consent_* code; this is the others' (docs/ddex.md)
    refusals = sorted((k for k in facts.controller_consents
                       if k.party_id not in required and _in_scope(k, facts) and _effective(k, on_date) and k.values[rule.consent_field] != "allowed"),
                      key=lambda k: k.consent_id)
    if refusals:
        codes.add(ReasonCode.RIGHTS_CONTROLLER_REFUSED)
    refusal_sig = _digest_sum(f"{k.consent_id}:{k.values[rule.consent_field]}" for k in refusals)

    applicable: list[tuple[ConsentFact, str, str]] = []  # (consent, value, state)
    consent_codes: set[str] = set()
    party_findings: list[dict[str, str]] = []
    for party in required:
        mine = []
        for k in facts.consents:
            if k.party_id != party:
                continue
            if not (k.scope == "all" or (k.scope == "recording" and k.scope_ref == facts.isrc)
                    or (k.scope == "work" and facts.iswc is not None and k.scope_ref == facts.iswc)):
                continue
            granted = k.granted_at is not None and _utc_date(k.granted_at) <= on_date
            revoked = k.revoked_at is not None and _utc_date(k.revoked_at) <= on_date
            state = "r" if revoked else ("e" if granted else "p")
            mine.append((k, k.values[rule.consent_field], state))
        applicable.extend(mine)
        effective = {v for _, v, st in mine if st == "e"}
        code: str | None = None
        if "notAllowed" in effective:
            code = ReasonCode.CONSENT_NOT_ALLOWED
        elif "constrained" in effective:
            code = ReasonCode.CONSENT_CONSTRAINED
        elif "allowed" in effective:
            pass
        elif any(st == "r" for _, _, st in mine):
            code = ReasonCode.CONSENT_REVOKED
        else:
            code = ReasonCode.CONSENT_MISSING
        if code is not None:
            consent_codes.add(code)
            party_findings.append({"party_id": party, "code": str(ReasonCode(code).value),
                                   "consent_field": rule.consent_field})
    for party in sorted({k.party_id for k in refusals}):
        party_findings.append({"party_id": party, "code": ReasonCode.RIGHTS_CONTROLLER_REFUSED.value,
                               "consent_field": rule.consent_field})
    codes |= consent_codes
    applicable.sort(key=lambda a: a[0].consent_id)
    consent_ids = tuple(sorted({k.consent_id for k, v, st in applicable if st == "e" and v == "allowed"}))
    consent_sig = _digest_sum(f"{k.consent_id}:{v}:{st}" for k, v, st in applicable)

    hits = sorted((m for m in facts.optout_matches if m.score >= m.threshold), key=lambda m: m.matched_ref)
    if hits:
        codes.add(ReasonCode.OPTOUT_MATCH)
        evidence["optout"] = [{"matched_ref": m.matched_ref, "score": m.score, "threshold": m.threshold} for m in hits]
    if facts.duplicate_conflict:
        codes.add(ReasonCode.DUPLICATE_CONFLICT)
        evidence["duplicate_cluster"] = facts.duplicate_conflict
    if facts.ai_generated and rule.exclude_ai_generated:
        codes.add(ReasonCode.AI_GENERATED)
    if facts.ai_generated:
        evidence["ai_evidence"] = facts.ai_evidence
    if facts.withdrawn is not None:
        codes.add(ReasonCode.TRACK_WITHDRAWN)
        evidence["withdrawn"] = facts.withdrawn
    unfingerprinted = facts.track_id is not None and not facts.fingerprinted
    if unfingerprinted and rule.require_fingerprint:
        codes.add(ReasonCode.AUDIO_NOT_FINGERPRINTED)
    evidence["required_parties"] = required
    if party_findings:
        evidence["consent_findings"] = party_findings
    evidence["required_party_count"] = len(required)

    inputs = (f"{INPUTS_VERSION}|{facts.track_id or ''}|{facts.isrc}|{purpose}|{territory}|{on_date.isoformat()}"
              f"|ai={int(facts.ai_generated)}|deals={deal_sig}|req={_digest_sum(required)}|listed={int(listed)}"
              f"|consents={consent_sig}|optout={','.join(m.matched_ref for m in hits)}"
              f"|dup={facts.duplicate_conflict or ''}" + ("|withdrawn" if facts.withdrawn is not None else "")
              + ("|unfingerprinted" if unfingerprinted else "") + ("|pubshares" if pub_incomplete else "") + (f"|rcrefused={refusal_sig}" if refusals else ""))
    return _decision(facts, policy, purpose, territory, on_date, codes, deal_id, consent_ids, inputs, evidence, decided_at)


def _in_scope(k: ConsentFact, facts: TrackFacts) -> bool:
    return (k.scope == "all" or (k.scope == "recording" and k.scope_ref == facts.isrc)
            or (k.scope == "work" and facts.iswc is not None and k.scope_ref == facts.iswc))


def _effective(k: ConsentFact, on_date: date) -> bool:
    """Granted by ``on_date`` and not revoked by then."""
    return (k.granted_at is not None and _utc_date(k.granted_at) <= on_date
            and not (k.revoked_at is not None and _utc_date(k.revoked_at) <= on_date))


def _decision(facts: TrackFacts, policy: Policy, purpose: str, territory: str, on_date: date, codes: set[str],
              deal_id: str | None, consent_ids: tuple[str, ...], inputs: str, evidence: dict[str, Any],
              decided_at: datetime) -> Decision:
    reason_codes = tuple(ReasonCode(c) for c in sorted(codes))
    allowed = not reason_codes
    inputs_hash = _sha(inputs)
    return Decision(
        decision_id=decision_id_for(policy.content_hash, inputs_hash), track_id=facts.track_id, isrc=facts.isrc,
        purpose=purpose, territory=territory, on_date=on_date, allowed=allowed, reason_codes=reason_codes,
        explanation=explanation_for(allowed, [c.value for c in reason_codes], deal_id, len(consent_ids)),
        policy_hash=policy.content_hash, inputs_hash=inputs_hash, deal_id=deal_id, consent_ids=consent_ids,
        evidence={"deal_id": deal_id, **evidence}, decided_at=decided_at,
    )


# --- facts from the ledger -------------------------------------------------------------------

def load_facts(con: duckdb.DuckDBPyConnection, *, track_ids: Iterable[str] | None = None,
               isrc: str | None = None) -> Iterator[TrackFacts]:
    """Facts for catalog tracks (all, the given ids, or those with one ISRC), in track_id order."""
    where, params = "", []
    if track_ids is not None:
        ids = list(track_ids)
        where, params = "WHERE tr.track_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
    elif isrc is not None:
        where, params = "WHERE tr.isrc = ?", [isrc]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _facts_tracks AS SELECT tr.track_id, tr.isrc, r.iswc, "
                f"(tr.ai_generated OR coalesce(r.ai_generated, FALSE)) AS ai, "
                f"coalesce(r.ai_evidence, CASE WHEN tr.ai_generated THEN 'catalog flag' END) AS ai_evidence "
                f"FROM tracks tr LEFT JOIN recordings r ON r.isrc = tr.isrc {where}", params)
    tracks = con.execute("SELECT track_id, isrc, iswc, ai, ai_evidence FROM _facts_tracks ORDER BY track_id").fetchall()
    deals_by_isrc = _deals_by_isrc(con, "SELECT DISTINCT isrc FROM _facts_tracks")
    contributors: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for track_id, party, role in con.execute(
            "SELECT t.track_id, c.party_id, c.role FROM _facts_tracks t JOIN contributors c USING (track_id) "
            "UNION SELECT t.track_id, rc.party_id, rc.role FROM _facts_tracks t "
            "JOIN recording_contributors rc ON rc.isrc = t.isrc "
            "UNION SELECT t.track_id, wc.party_id, wc.role FROM _facts_tracks t "
            "JOIN work_contributors wc ON wc.iswc = t.iswc").fetchall():
        contributors[track_id].add((party, role))
    consents = _consents_by_party(con, "SELECT DISTINCT party_id FROM contributors c JOIN _facts_tracks USING (track_id) "
                                       "UNION SELECT DISTINCT party_id FROM recording_contributors rc "
                                       "JOIN _facts_tracks t ON t.isrc = rc.isrc "
                                       "UNION SELECT DISTINCT party_id FROM work_contributors wc "
                                       "JOIN _facts_tracks t ON t.iswc = wc.iswc")
    pub_shares = _publishing_totals(con, "SELECT DISTINCT iswc FROM _facts_tracks")
    controllers = _controller_consents(con, "SELECT DISTINCT isrc FROM _facts_tracks")
    optouts: dict[str, list[OptoutMatch]] = defaultdict(list)
    for track_id, ref, score, threshold in con.execute(
            "SELECT m.track_id, m.matched_ref, m.score, m.threshold FROM audio_matches m "
            "JOIN _facts_tracks USING (track_id) WHERE m.kind = 'optout'").fetchall():
        optouts[track_id].append(OptoutMatch(ref, score, threshold))
    conflicts = dict(con.execute(_CONFLICTS_SQL + " SELECT d.track_id, min(d.cluster_id) FROM duplicate_clusters d "
                                 "JOIN dc USING (cluster_id) JOIN _facts_tracks USING (track_id) "
                                 "GROUP BY d.track_id").fetchall())
    withdrawn = dict(con.execute(f"SELECT w.track_id, w.reason FROM ({_WITHDRAWN_SQL}) w "
                                 "JOIN _facts_tracks USING (track_id)").fetchall())
    fingerprinted = {row[0] for row in con.execute(
        "SELECT track_id FROM fingerprints JOIN _facts_tracks USING (track_id)").fetchall()}
    for track_id, track_isrc, iswc, ai, ai_evidence in tracks:
        parties = contributors.get(track_id, set())
        yield TrackFacts(
            track_id=track_id, isrc=track_isrc, iswc=iswc, ai_generated=bool(ai), ai_evidence=ai_evidence,
            deals=tuple(deals_by_isrc.get(track_isrc, ())), contributors=tuple(sorted(parties)),
            consents=tuple(k for party in sorted({p for p, _ in parties}) for k in consents.get(party, ())),
            optout_matches=tuple(optouts.get(track_id, ())), duplicate_conflict=conflicts.get(track_id),
            withdrawn=withdrawn.get(track_id), fingerprinted=track_id in fingerprinted,
            publishing_share_total=pub_shares.get(iswc) if iswc else None,
            controller_consents=tuple(controllers.get(track_isrc, ())),
        )


def recording_facts(con: duckdb.DuckDBPyConnection, isrc: str) -> TrackFacts:
    """Facts for a recording known from rights data but with no audio in the catalog."""
    row = con.execute("SELECT iswc, ai_generated, ai_evidence FROM recordings WHERE isrc = ?", [isrc]).fetchone()
    iswc = row[0] if row else None
    contributors = tuple(sorted(con.execute(
        "SELECT DISTINCT party_id, role FROM recording_contributors WHERE isrc = ? "
        "UNION SELECT DISTINCT party_id, role FROM work_contributors WHERE iswc = ?", [isrc, iswc]).fetchall()))
    consents = _consents_by_party(con, "SELECT DISTINCT party_id FROM recording_contributors WHERE isrc = "
                                       + _quote(isrc) + " UNION SELECT DISTINCT party_id FROM work_contributors "
                                       "WHERE iswc = " + (_quote(iswc) if iswc else "NULL"))
    deals = _deals_by_isrc(con, "SELECT " + _quote(isrc)).get(isrc, [])
    return TrackFacts(
        track_id=None, isrc=isrc, iswc=row[0] if row else None, ai_generated=bool(row and row[1]),
        ai_evidence=row[2] if row else None, deals=tuple(deals), contributors=contributors,
        consents=tuple(k for party in sorted({p for p, _ in contributors}) for k in consents.get(party, ())),
        publishing_share_total=_publishing_totals(con, "SELECT " + _quote(iswc)).get(iswc) if iswc else None,
        controller_consents=tuple(_controller_consents(con, "SELECT " + _quote(isrc)).get(isrc, ())),
    )


# Rights controllers and licensors of the deals on a recording: their refusal denies (docs/ddex.md).
_CONTROLLERS_SQL = ("SELECT dr.isrc, rc.party_id FROM deal_recordings dr JOIN rights_controllers rc "
                    "ON rc.deal_id = dr.deal_id AND rc.isrc = dr.isrc "
                    "UNION SELECT dr.isrc, d.licensor_party_id FROM deal_recordings dr JOIN deals d USING (deal_id)")


def _controller_consents(con: duckdb.DuckDBPyConnection, isrc_query: str) -> dict[str, list[ConsentFact]]:
    """Per ISRC, the consents of its rights controllers and licensors."""
    pairs = con.execute(f"SELECT isrc, party_id FROM ({_CONTROLLERS_SQL}) WHERE isrc IN ({isrc_query})").fetchall()
    by_party = _consents_by_party(con, f"SELECT party_id FROM ({_CONTROLLERS_SQL}) WHERE isrc IN ({isrc_query})")
    out: dict[str, list[ConsentFact]] = defaultdict(list)
    for isrc, party in sorted(pairs):
        out[isrc].extend(by_party.get(party, ()))
    return out


def _publishing_totals(con: duckdb.DuckDBPyConnection, iswc_query: str) -> dict[str, float]:
    """Sum of the publishing shares of each work that has any (works without shares are absent)."""
    return {iswc: float(total) for iswc, total in con.execute(
        f"SELECT iswc, sum(share) FROM work_contributors WHERE share IS NOT NULL AND iswc IN ({iswc_query}) "
        "GROUP BY iswc").fetchall()}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _deals_by_isrc(con: duckdb.DuckDBPyConnection, isrc_query: str) -> dict[str, list[DealFact]]:
    out: dict[str, list[DealFact]] = defaultdict(list)
    rows = con.execute(
        f"SELECT dr.isrc, d.deal_id, d.use_types, d.territories_included, d.territories_excluded, d.valid_from, "
        f"d.valid_to, coalesce((SELECT sum(share) FROM rights_controllers rc WHERE rc.deal_id = d.deal_id "
        f"AND rc.isrc = dr.isrc), 0) FROM deal_recordings dr JOIN deals d USING (deal_id) "
        f"WHERE dr.isrc IN ({isrc_query})").fetchall()
    for isrc, deal_id, uses, inc, exc, vf, vt, total in rows:
        out[isrc].append(DealFact(deal_id, tuple(uses), tuple(inc), tuple(exc), vf, vt, float(total)))
    return out


def _consents_by_party(con: duckdb.DuckDBPyConnection, party_query: str) -> dict[str, list[ConsentFact]]:
    out: dict[str, list[ConsentFact]] = defaultdict(list)
    rows = con.execute(
        "SELECT consent_id, party_id, scope, scope_ref, ai_training, ai_generative_training, data_mining, "
        f"ai_inference, granted_at, revoked_at FROM consents WHERE party_id IN ({party_query}) ORDER BY consent_id"
    ).fetchall()
    for cid, party, scope, ref, t, g, m, i, granted, revoked in rows:
        values = {"ai_training": t, "ai_generative_training": g, "data_mining": m, "ai_inference": i}
        out[party].append(ConsentFact(cid, party, scope, ref, values, granted, revoked))
    return out


# One row per withdrawn track: the first open withdrawal's reason (several open ones deny alike).
_WITHDRAWN_SQL = ("SELECT track_id, min(reason) AS reason FROM track_withdrawals WHERE restored_at IS NULL "
                  "GROUP BY track_id")
_CONFLICTS_SQL = ("WITH dc AS (SELECT cluster_id FROM duplicate_clusters GROUP BY cluster_id "
                  "HAVING count(DISTINCT isrc) > 1 AND NOT bool_and(resolved))")


# --- set-based whole-catalog evaluation -----------------------------------------------------
#
# One statement: per-deal and per-consent facts are computed once, grouped per ISRC (deals) and
# per (track, party) -> track (contributors and consents, scope-'all' consents pre-aggregated per
# party), then joined to the tracks once. The reason codes of a track travel as a bit mask (bit i =
# i-th code in sorted order), turned into the sorted code list and the explanation by a join with
# a table of the masks that occur (see _publish_eval), instead of list building per row.

REASON_BITS: dict[str, int] = {code.value: 1 << i for i, code in enumerate(sorted(ReasonCode, key=lambda c: c.value))}
_MD5_LOW = "(md5_number({0}) & 18446744073709551615::UHUGEINT)::UBIGINT"  # = md5_number_upper, several times faster


def codes_of_mask(mask: int) -> list[str]:
    """The sorted reason codes a mask stands for."""
    return [code for code, bit in REASON_BITS.items() if mask & bit]


def _reason_mask_table(masks: Iterable[int]) -> pa.Table:
    """The given masks with their sorted codes and denial text (NULL for mask 0), worded as in the reference."""
    masks = list(masks)
    codes = [codes_of_mask(m) for m in masks]
    texts = [explanation_for(False, c, None, 0) if m else None for m, c in zip(masks, codes, strict=True)]
    return pa.table({"mask": pa.array(masks, pa.int64()), "reason_codes": pa.array(codes, pa.list_(pa.string())),
                     "explanation": pa.array(texts, pa.string())})


def _publish_eval(con: duckdb.DuckDBPyConnection) -> None:
    """Expose ``_eval_rows`` as ``_eval``: codes and denial texts joined from the masks that occur.

    A track's reason codes travel as a bit mask; only the few distinct masks of one evaluation
    get their code list and text, instead of a table of every possible combination.
    """
    masks = [row[0] for row in con.execute("SELECT DISTINCT mask FROM _eval_rows").fetchall()]
    con.register("_eval_mask_rows", _reason_mask_table(masks))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _eval_masks AS SELECT * FROM _eval_mask_rows")
    finally:
        con.unregister("_eval_mask_rows")
    con.execute("""
        CREATE OR REPLACE TEMP VIEW _eval AS
        SELECT e.decision_id, e.track_id, e.isrc, e.allowed, m.reason_codes,
            coalesce(e.allowed_explanation, m.explanation) AS explanation, e.inputs_hash, e.deal_id, e.consent_ids,
            e.evidence, e.mask
        FROM _eval_rows e JOIN _eval_masks m ON m.mask = e.mask""")


def _roles_sql(roles: Iterable[str]) -> str:
    quoted = [_quote(r) for r in sorted(set(roles))]
    return f"role IN ({', '.join(quoted)})" if quoted else "FALSE"


_CATALOG_SQL = """
CREATE OR REPLACE TEMP TABLE _eval_rows AS
WITH
t AS MATERIALIZED (
    SELECT tr.track_id, tr.isrc, r.iswc, (tr.ai_generated OR coalesce(r.ai_generated, FALSE)) AS ai,
           coalesce(r.ai_evidence, CASE WHEN tr.ai_generated THEN 'catalog flag' END) AS ai_evidence,
           fp.track_id IS NOT NULL AS fp
    FROM tracks tr LEFT JOIN recordings r ON r.isrc = tr.isrc
    LEFT JOIN fingerprints fp ON fp.track_id = tr.track_id {track_filter}
),
dd AS (
    SELECT deal_id, list_contains(use_types, $purpose) AS u,
        CASE WHEN $territory = 'Worldwide'
             THEN list_contains(territories_included, 'Worldwide') AND len(territories_excluded) = 0
             ELSE NOT list_contains(territories_excluded, $territory)
                  AND (list_contains(territories_included, 'Worldwide') OR list_contains(territories_included, $territory))
        END AS te,
        (valid_from IS NULL OR valid_from <= $on) AS s,
        (valid_to IS NULL OR valid_to >= $on) AS ne,
        (valid_to IS NOT NULL AND valid_to < $on) AS x
    FROM deals {deal_filter}
),
ds AS (SELECT deal_id, isrc, sum(share) AS total FROM rights_controllers {isrc_filter} GROUP BY ALL),
dl AS (
    SELECT dr.isrc, dr.deal_id, dd.u::INT + (dd.u AND dd.te)::INT * 2 + (dd.u AND dd.te AND dd.x)::INT * 4 AS f,
        CASE WHEN dd.u AND dd.te AND dd.s AND dd.ne
             THEN CASE WHEN abs(coalesce(ds.total, 0) - 100) <= $tol THEN '0' ELSE '1' END || dr.deal_id END AS rk,
        coalesce(ds.total, 0)::DOUBLE AS total,
        {md5_deal} AS sig
    FROM deal_recordings dr JOIN dd ON dd.deal_id = dr.deal_id
    LEFT JOIN ds ON ds.deal_id = dr.deal_id AND ds.isrc = dr.isrc {dr_filter}
),
da AS (
    -- rk orders covering deals: complete shares first ('0'), then by deal id; NULL when not covering
    SELECT isrc, bit_or(f) AS f, min(rk) AS best, arg_min(total, rk) AS best_total, bit_xor(sig)::VARCHAR AS deal_sig
    FROM dl GROUP BY isrc
),
tp AS (
    SELECT track_id AS tk, party_id, bool_or({listed}) AS l, bool_or({required}) AS q
    FROM (SELECT c.track_id, c.party_id, c.role FROM contributors c {contributor_filter}
          UNION ALL
          SELECT t.track_id, rc.party_id, rc.role FROM recording_contributors rc JOIN t ON t.isrc = rc.isrc
          UNION ALL
          SELECT t.track_id, wc.party_id, wc.role FROM work_contributors wc JOIN t ON t.iswc = wc.iswc)
    WHERE {listed} OR {required}
    GROUP BY track_id, party_id
),
k AS (
    SELECT consent_id, party_id, scope, scope_ref,
        CASE WHEN rv THEN 8 WHEN g THEN CASE v WHEN 'notAllowed' THEN 1 WHEN 'constrained' THEN 2
                                             WHEN 'allowed' THEN 4 ELSE 0 END ELSE 0 END AS st,
        {md5_consent} AS sig
    FROM (SELECT consent_id, party_id, scope, scope_ref, {consent_field} AS v,
                 (granted_at IS NOT NULL AND (granted_at AT TIME ZONE 'UTC')::DATE <= $on) AS g,
                 (revoked_at IS NOT NULL AND (revoked_at AT TIME ZONE 'UTC')::DATE <= $on) AS rv
          FROM consents {consent_filter})
),
ka AS (
    SELECT party_id, bit_or(st) AS st, bit_xor(sig) AS sig, count(*) AS n, list(consent_id) FILTER (WHERE st = 4) AS ids
    FROM k WHERE scope = 'all' GROUP BY party_id
),
ks AS MATERIALIZED (
    SELECT tk, party_id, bit_or(st) AS st, bit_xor(sig) AS sig, count(*) AS n, list(consent_id) FILTER (WHERE st = 4) AS ids
    FROM (SELECT t.track_id AS tk, k.* FROM k JOIN t ON k.scope = 'recording' AND k.scope_ref = t.isrc
          UNION ALL
          SELECT t.track_id AS tk, k.* FROM k JOIN t ON k.scope = 'work' AND k.scope_ref = t.iswc)
    GROUP BY tk, party_id
),
pc AS (
    SELECT tp.tk, tp.party_id, tp.l, tp.q,
        coalesce(ka.st, 0) | coalesce(ks.st, 0) AS st,
        xor(coalesce(ka.sig, 0::UBIGINT), coalesce(ks.sig, 0::UBIGINT)) AS sig,
        coalesce(ka.n, 0) + coalesce(ks.n, 0) AS n,
        CASE WHEN ks.ids IS NULL THEN ka.ids WHEN ka.ids IS NULL THEN ks.ids ELSE list_concat(ka.ids, ks.ids) END AS ids
    FROM tp LEFT JOIN ka ON ka.party_id = tp.party_id LEFT JOIN ks ON ks.tk = tp.tk AND ks.party_id = tp.party_id
),
cg AS (
    SELECT tk, bool_or(l) AS listed,
        bit_or(CASE WHEN st & 1 <> 0 THEN {b_not_allowed} WHEN st & 2 <> 0 THEN {b_constrained} WHEN st & 4 <> 0 THEN 0
                    WHEN st & 8 <> 0 THEN {b_revoked} ELSE {b_missing} END) FILTER (WHERE q) AS cmask,
        bit_xor({md5_party}) FILTER (WHERE q) AS req_sig,
        count(*) FILTER (WHERE q) AS req_count,
        bit_xor(sig) FILTER (WHERE q) AS csig,
        sum(n) FILTER (WHERE q) AS cn,
        flatten(list(ids) FILTER (WHERE q AND ids IS NOT NULL)) AS ids
    FROM pc GROUP BY tk
),
oo AS (
    SELECT track_id, string_agg(matched_ref, ',' ORDER BY matched_ref) AS refs,
        list({{'matched_ref': matched_ref, 'score': score, 'threshold': threshold}} ORDER BY matched_ref, score, threshold) AS hits
    FROM audio_matches WHERE kind = 'optout' AND score >= threshold GROUP BY track_id
),
dc AS (SELECT cluster_id FROM duplicate_clusters GROUP BY cluster_id HAVING count(DISTINCT isrc) > 1 AND NOT bool_and(resolved)),
dt AS (SELECT d.track_id, min(d.cluster_id) AS cluster_id FROM duplicate_clusters d JOIN dc ON dc.cluster_id = d.cluster_id
       GROUP BY d.track_id),
tw AS ({withdrawn_sql}),
ws AS (SELECT iswc, sum(share) AS total FROM work_contributors WHERE share IS NOT NULL GROUP BY iswc),
rcp AS ({controllers_sql}),
rcr AS (
    SELECT t.track_id AS tk, bit_xor({md5_refusal})::VARCHAR AS sig
    FROM t JOIN rcp ON rcp.isrc = t.isrc
    JOIN (SELECT consent_id, party_id, scope, scope_ref, {consent_field} AS v FROM consents
          WHERE party_id IN (SELECT party_id FROM rcp) AND granted_at IS NOT NULL
            AND (granted_at AT TIME ZONE 'UTC')::DATE <= $on
            AND NOT (revoked_at IS NOT NULL AND (revoked_at AT TIME ZONE 'UTC')::DATE <= $on)) kc
      ON kc.party_id = rcp.party_id
     AND (kc.scope = 'all' OR (kc.scope = 'recording' AND kc.scope_ref = t.isrc)
          OR (kc.scope = 'work' AND kc.scope_ref = t.iswc))
    WHERE kc.v <> 'allowed'
      AND NOT EXISTS (SELECT 1 FROM tp WHERE tp.tk = t.track_id AND tp.party_id = rcp.party_id AND tp.q)
    GROUP BY t.track_id
),
tf AS (
    SELECT coalesce(oo.track_id, dt.track_id, tw.track_id) AS track_id, oo.refs, oo.hits, dt.cluster_id, tw.reason
    FROM oo FULL JOIN dt ON dt.track_id = oo.track_id FULL JOIN tw ON tw.track_id = coalesce(oo.track_id, dt.track_id)
),
j AS (
    SELECT t.track_id, t.isrc, t.ai, t.ai_evidence, substr(da.best, 2) AS chosen, da.best_total AS chosen_total,
        coalesce(cg.listed, FALSE) AS listed, cg.req_count,
        CASE WHEN len(cg.ids) > 1 THEN list_sort(cg.ids) ELSE coalesce(cg.ids, []::VARCHAR[]) END AS consent_ids,
        tf.hits AS optout_hits, tf.cluster_id AS dup, tf.reason AS withdrawn,
        CASE WHEN da.isrc IS NULL THEN {b_no_deal} WHEN da.f & 1 = 0 THEN {b_use} WHEN da.f & 2 = 0 THEN {b_territory}
             WHEN da.best IS NULL THEN CASE WHEN da.f & 4 <> 0 THEN {b_expired} ELSE {b_not_yet} END ELSE 0 END
        | CASE WHEN $full_shares AND starts_with(da.best, '1') THEN {b_shares} ELSE 0 END
        | CASE WHEN coalesce(cg.listed, FALSE) THEN 0 ELSE {b_unknown} END
        | coalesce(cg.cmask, 0)
        | CASE WHEN tf.refs IS NOT NULL THEN {b_optout} ELSE 0 END
        | CASE WHEN tf.cluster_id IS NOT NULL THEN {b_dup} ELSE 0 END
        | CASE WHEN $exclude_ai AND t.ai THEN {b_ai} ELSE 0 END
        | CASE WHEN tf.reason IS NOT NULL THEN {b_withdrawn} ELSE 0 END
        | CASE WHEN $require_fp AND NOT t.fp THEN {b_nofp} ELSE 0 END
        | CASE WHEN $full_shares AND abs(ws.total - 100) > $tol THEN {b_pubshares} ELSE 0 END
        | CASE WHEN rcr.tk IS NOT NULL THEN {b_rcrefused} ELSE 0 END AS mask,
        sha256(concat('{version}|', t.track_id, '|', t.isrc, $mid, t.ai::INT, '|deals=', da.deal_sig,
               '|req=', cg.req_sig, '|listed=', coalesce(cg.listed, FALSE)::INT,
               '|consents=', CASE WHEN cg.cn > 0 THEN cg.csig::VARCHAR END, '|optout=', tf.refs, '|dup=', tf.cluster_id,
               CASE WHEN tf.reason IS NOT NULL THEN '|withdrawn' END,
               CASE WHEN NOT t.fp THEN '|unfingerprinted' END,
               CASE WHEN abs(ws.total - 100) > $tol THEN '|pubshares' END,
               CASE WHEN rcr.tk IS NOT NULL THEN '|rcrefused=' || rcr.sig END)) AS inputs_hash
    FROM t
    LEFT JOIN da ON da.isrc = t.isrc LEFT JOIN cg ON cg.tk = t.track_id LEFT JOIN tf ON tf.track_id = t.track_id
    LEFT JOIN ws ON ws.iswc = t.iswc LEFT JOIN rcr ON rcr.tk = t.track_id
)
SELECT
    'dec_' || left(sha256($policy_hash || '|' || j.inputs_hash), 32) AS decision_id,
    j.track_id, j.isrc, j.mask = 0 AS allowed,
    CASE WHEN j.mask = 0
         THEN 'allowed: deal ' || j.chosen || ' licenses this use here and now; ' || len(j.consent_ids)
              || ' required consent(s) in force' END AS allowed_explanation,
    j.inputs_hash, j.chosen AS deal_id, j.consent_ids,
    to_json({{'deal_id': j.chosen, 'share_total': j.chosen_total, 'optout': j.optout_hits, 'duplicate_cluster': j.dup,
              'ai_evidence': CASE WHEN j.ai THEN j.ai_evidence END, 'required_party_count': coalesce(j.req_count, 0),
              'withdrawn': j.withdrawn}}) AS evidence,
    j.mask
FROM j
"""


def _catalog_sql(rule: PurposeRule, *, subset: bool) -> str:
    bits = {f"b_{name}": REASON_BITS[code] for name, code in (
        ("not_allowed", "consent_not_allowed"), ("constrained", "consent_constrained"), ("revoked", "consent_revoked"),
        ("missing", "consent_missing"), ("no_deal", "no_deal"), ("use", "deal_use_not_licensed"),
        ("territory", "deal_territory_not_covered"), ("expired", "deal_expired"), ("not_yet", "deal_not_yet_valid"),
        ("shares", "rights_shares_incomplete"), ("unknown", "contributors_unknown"), ("optout", "optout_match"),
        ("dup", "duplicate_conflict"), ("ai", "ai_generated"), ("withdrawn", "track_withdrawn"),
        ("nofp", "audio_not_fingerprinted"), ("pubshares", "publishing_shares_incomplete"),
        ("rcrefused", "rights_controller_refused"))}
    track_filter = "WHERE tr.track_id IN (SELECT unnest($track_ids::VARCHAR[]))" if subset else ""
    return _CATALOG_SQL.format(
        track_filter=track_filter,
        isrc_filter="WHERE isrc IN (SELECT isrc FROM t)" if subset else "",
        dr_filter="WHERE dr.isrc IN (SELECT isrc FROM t)" if subset else "",
        deal_filter="WHERE deal_id IN (SELECT deal_id FROM deal_recordings WHERE isrc IN (SELECT isrc FROM t))"
                    if subset else "",
        contributor_filter="WHERE c.track_id IN (SELECT track_id FROM t)" if subset else "",
        consent_filter="WHERE party_id IN (SELECT party_id FROM tp WHERE q)" if subset else "",
        consent_field=rule.consent_field, version=INPUTS_VERSION, withdrawn_sql=_WITHDRAWN_SQL,
        listed=_roles_sql(rule.required_listed_roles), required=_roles_sql(rule.required_consent_roles),
        md5_deal=_MD5_LOW.format("dr.deal_id || ':' || dd.u::INT || dd.te::INT || dd.s::INT || dd.ne::INT || "
                                 "(abs(coalesce(ds.total, 0) - 100) <= $tol)::INT"),
        md5_consent=_MD5_LOW.format("consent_id || ':' || v || ':' || CASE WHEN rv THEN 'r' WHEN g THEN 'e' ELSE 'p' END"),
        md5_party=_MD5_LOW.format("party_id"), controllers_sql=_CONTROLLERS_SQL,
        md5_refusal=_MD5_LOW.format("kc.consent_id || ':' || kc.v"), **bits)


def evaluate_catalog_frame(con: duckdb.DuckDBPyConnection, policy: Policy, *, purpose: str, territory: str,
                           on_date: date, track_ids: Iterable[str] | None = None) -> None:
    """Evaluate (all or some) catalog tracks set-based into the temp view ``_eval``, writing nothing else."""
    territory = normalize_territory(territory)
    params: dict[str, Any] = {}
    if track_ids is not None:
        params["track_ids"] = list(track_ids)
    rule = policy.purposes.get(purpose)  # type: ignore[call-overload]
    if rule is None:
        track_filter = "WHERE track_id IN (SELECT unnest($track_ids::VARCHAR[]))" if track_ids is not None else ""
        params.update({"head": f"{INPUTS_VERSION}|", "tail": f"|{purpose}|{territory}|{on_date.isoformat()}|unknown-purpose",
                       "policy_hash": policy.content_hash, "mask": REASON_BITS["purpose_unknown"]})
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _eval_rows AS
            WITH t AS (SELECT track_id, isrc, sha256($head || track_id || '|' || isrc || $tail) AS inputs_hash
                       FROM tracks {track_filter})
            SELECT 'dec_' || left(sha256($policy_hash || '|' || inputs_hash), 32) AS decision_id, track_id, isrc,
                FALSE AS allowed, NULL::VARCHAR AS allowed_explanation, inputs_hash,
                NULL::VARCHAR AS deal_id, []::VARCHAR[] AS consent_ids, to_json({{'deal_id': NULL}}) AS evidence,
                $mask::BIGINT AS mask
            FROM t""", params)
        _publish_eval(con)
        return
    params.update({
        "purpose": purpose, "territory": territory, "on": on_date, "tol": policy.share_tolerance,
        "mid": f"|{purpose}|{territory}|{on_date.isoformat()}|ai=", "full_shares": rule.require_full_shares,
        "exclude_ai": rule.exclude_ai_generated, "require_fp": rule.require_fingerprint,
        "policy_hash": policy.content_hash,
    })
    con.execute(_catalog_sql(rule, subset=track_ids is not None), params)
    _publish_eval(con)


def require_purpose(policy: Policy, purpose: str) -> None:
    """Raise :class:`UnknownPurpose` unless the policy defines ``purpose`` (a command's input error)."""
    if purpose not in policy.purposes:
        raise UnknownPurpose(f"unknown purpose {purpose!r}: policy {policy.policy_id} {policy.version} defines "
                             f"{', '.join(sorted(policy.purposes))}")


class UnknownPurpose(ValueError):
    """A command named a purpose the policy does not define (an input error, not a decision)."""


def evaluate_catalog(con: duckdb.DuckDBPyConnection, policy: Policy, *, purpose: str, territory: str,
                     on_date: date, actor: Principal | str, track_ids: Iterable[str] | None = None,
                     roles: RoleBook | None = None) -> EvaluationSummary:
    """Decide every catalog track (or ``track_ids``) for (purpose, territory, date) and record the decisions.

    One ``rights.evaluate`` command: see :func:`decide`. Raises :class:`UnknownPurpose` for a purpose
    the policy does not define and ValueError for an invalid territory.
    """
    require_purpose(policy, purpose)
    territory = normalize_territory(territory)
    with command(con, actor, "rights.evaluate", f"{purpose}/{territory}/{on_date}", roles=roles) as w:
        summary = decide(w, policy, purpose=purpose, territory=territory, on_date=on_date, track_ids=track_ids)
    return summary


def decide(w: Writer, policy: Policy, *, purpose: str, territory: str, on_date: date,
           track_ids: Iterable[str] | None = None) -> EvaluationSummary:
    """Evaluate set-based and record the decisions, inside the caller's command.

    New decisions are appended to ``decisions`` (an identical decision, same id, is kept once) and
    ``current_decisions`` is replaced for this evaluation key (for the evaluated tracks only when
    ``track_ids`` is given) and its counts per reason in ``decision_counts`` follow
    (:mod:`licensing.decision_counts`). The command's audit payload gets the summary and the batch hash.
    """
    territory = normalize_territory(territory)
    started = time.perf_counter()
    store_policy(w, policy)
    evaluate_catalog_frame(w.con, policy, purpose=purpose, territory=territory, on_date=on_date, track_ids=track_ids)
    key = [purpose, territory, on_date, policy.content_hash]
    # A decision id hashes the policy and the inputs (purpose, territory, date included), so an
    # identical decision can only sit under the same key: the anti-join reads that key only.
    written = w.insert_query(
        "decisions", "SELECT e.decision_id, e.track_id, e.isrc, $1 AS purpose, $2 AS territory, $3 AS on_date, "
        "e.allowed, e.reason_codes, e.explanation, $4 AS policy_hash, e.inputs_hash, e.deal_id, e.consent_ids, "
        "e.evidence, now() AS decided_at FROM _eval e WHERE e.decision_id NOT IN (SELECT decision_id FROM decisions "
        "WHERE purpose = $1 AND territory = $2 AND on_date = $3 AND policy_hash = $4)", key)
    scope = "" if track_ids is None else " AND track_id IN (SELECT track_id FROM _eval_rows)"
    counted = {"purpose": purpose, "territory": territory, "on_date": on_date, "policy_hash": policy.content_hash}
    mode: decision_counts.Mode = ("whole" if track_ids is None else
                                  "delta" if decision_counts.counted(w, **counted) else "recount")
    if mode == "delta":
        decision_counts.capture_replaced(w, **counted)
    w.execute("DELETE FROM current_decisions WHERE purpose = ? AND territory = ? AND on_date = ? "
              "AND policy_hash = ?" + scope, key)
    w.execute("INSERT INTO current_decisions SELECT track_id, ?, ?, ?, ?, decision_id, allowed FROM _eval_rows", key)
    decision_counts.record(w, **counted, mode=mode)
    total, allowed, by_reason = 0, 0, dict[str, int]()
    masks = w.con.execute("SELECT mask, count(*) FROM _eval_rows GROUP BY mask").fetchall()
    for mask, count in masks:
        total += count
        allowed += count if mask == 0 else 0
        for code in codes_of_mask(mask):
            by_reason[code] = by_reason.get(code, 0) + count
    summary = EvaluationSummary(
        purpose=purpose, territory=territory, on_date=on_date, policy_hash=policy.content_hash,
        evaluated=total, allowed=allowed, denied=total - allowed, by_reason=dict(sorted(by_reason.items())),
        decisions_written=written, elapsed_s=round(time.perf_counter() - started, 3))
    evaluations = w.payload.setdefault("evaluations", [])
    evaluations.append({**summary.model_dump(mode="json", exclude={"elapsed_s"}),
                        "decisions_sha256": _batch_sha256(w.con), "subset": track_ids is not None})
    return summary


def evaluation_keys(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, date]]:
    """Every (purpose, territory, policy hash, date) decided so far or frozen in an active release."""
    return [tuple(r) for r in con.execute(  # type: ignore[misc]
        "SELECT DISTINCT purpose, territory, policy_hash, on_date FROM current_decisions "
        "UNION SELECT purpose, territory, policy_hash, on_date FROM releases WHERE status IN ('proposed', 'approved') "
        "ORDER BY ALL").fetchall()]


def redecide(w: Writer, isrcs: Iterable[str], *, today: date | None = None) -> dict[str, Any]:
    """Re-decide the catalog tracks of ``isrcs`` under every evaluation key in use, inside the caller's command.

    A rights change takes effect at once: for each (purpose, territory, policy) in use the tracks
    are decided for today and for every later date already decided, so no current decision is an
    allow the current rights deny. Only the affected tracks are evaluated.
    """
    when = today or datetime.now(UTC).date()
    wanted = sorted(set(isrcs))
    track_ids = [r[0] for r in w.con.execute("SELECT track_id FROM tracks WHERE isrc IN (SELECT unnest(?::VARCHAR[])) "
                                             "ORDER BY track_id", [wanted]).fetchall()] if wanted else []
    if not track_ids:
        return {"isrcs": len(wanted), "tracks": 0, "evaluations": 0, "became_denied": []}
    dates: dict[tuple[str, str, str], set[date]] = defaultdict(set)
    for purpose, territory, policy_hash, on in evaluation_keys(w.con):
        dates[(purpose, territory, policy_hash)].add(when)
        if on > when:
            dates[(purpose, territory, policy_hash)].add(on)
    became: set[tuple[str, str, str]] = set()
    runs = 0
    for (purpose, territory, policy_hash), days in sorted(dates.items()):
        policy = policy_by_hash(w.con, policy_hash)
        if policy is None or purpose not in policy.purposes:
            continue
        for day in sorted(days):
            before = {r[0] for r in w.con.execute(
                "SELECT track_id FROM current_decisions WHERE purpose = ? AND territory = ? AND policy_hash = ? "
                "AND on_date <= ? AND track_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY track_id "
                "HAVING arg_max(allowed, on_date)", [purpose, territory, policy_hash, day, track_ids]).fetchall()}
            decide(w, policy, purpose=purpose, territory=territory, on_date=day, track_ids=track_ids)
            runs += 1
            for (track_id,) in w.con.execute("SELECT track_id FROM _eval_rows WHERE NOT allowed").fetchall():
                if track_id in before:
                    became.add((track_id, purpose, territory))
    return {"isrcs": len(wanted), "tracks": len(track_ids), "evaluations": runs,
            "became_denied": [list(b) for b in sorted(became)]}


def _batch_sha256(con: duckdb.DuckDBPyConnection) -> str:
    """The batch's content hash: SHA-256 of every evaluated decision id, sorted, joined by commas.

    Ids hash policy and inputs, so this pins the whole batch. Sorting in DuckDB and joining in
    Arrow is about twice as fast as ``string_agg(... ORDER BY ...)`` on a million ids.
    """
    ids = con.sql("SELECT decision_id FROM _eval_rows ORDER BY decision_id").to_arrow_table().column(0).combine_chunks()
    ids = ids.cast(pa.large_string())
    joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array([0, len(ids)], pa.int64()), ids),
                            pa.scalar(",", pa.large_string()))[0]
    return hashlib.sha256(joined.as_buffer() if joined.is_valid else b"").hexdigest()


def catalog_decisions(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """The rows of the last :func:`evaluate_catalog_frame` keyed by track_id (for cross-checks)."""
    cols = ["decision_id", "track_id", "isrc", "allowed", "reason_codes", "inputs_hash", "deal_id", "consent_ids",
            "explanation"]
    return {row[1]: dict(zip(cols, row, strict=True))
            for row in con.execute(f"SELECT {', '.join(cols)} FROM _eval").fetchall()}


def inconsistent_explanations(con: duckdb.DuckDBPyConnection, *, limit: int = 20) -> list[tuple[str, str, str, str]]:
    """Decisions whose stored explanation is not the one their sealed columns give (``explanation`` is derived
    text, left out of the row hash): (decision_id, track_id, stored, expected)."""
    combos = [tuple(r[0]) for r in con.execute(
        "SELECT DISTINCT reason_codes FROM decisions WHERE NOT allowed").fetchall()]
    texts = pa.table({"codes": pa.array([list(c) for c in combos], pa.list_(pa.string())),
                      "text": pa.array([explanation_for(False, list(c), None, 0) for c in combos], pa.string())})
    con.execute("SELECT 1").fetchall()
    con.register("_denied_texts", texts)
    try:
        rows = con.execute(
            "SELECT d.decision_id, d.track_id, d.explanation, CASE WHEN d.allowed THEN 'allowed: deal ' || d.deal_id "
            "|| ' licenses this use here and now; ' || len(coalesce(d.consent_ids, [])) || ' required consent(s) in "
            "force' ELSE x.text END AS expected FROM decisions d LEFT JOIN _denied_texts x ON NOT d.allowed "
            "AND x.codes = d.reason_codes WHERE d.explanation IS DISTINCT FROM expected "
            "ORDER BY d.decided_at, d.decision_id LIMIT ?", [limit]).fetchall()
    finally:
        con.unregister("_denied_texts")
    return [(r[0], r[1], r[2], r[3]) for r in rows]
