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

from licensing.policy import store_policy
from lineage import audit
from schemas.decisions import REASON_TEXT, Decision, EvaluationSummary, ReasonCode, explanation_for
from schemas.identifiers import normalize_territory
from schemas.policy import Policy, PurposeRule

INPUTS_VERSION = "v2"


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


def _utc_date(ts: datetime) -> date:
    return ts.astimezone(UTC).date() if ts.tzinfo else ts.date()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest_sum(pieces: Iterable[str]) -> str:
    """Order-free digest of a set of facts: the sum of the first 8 MD5 bytes (little-endian) of each.

    It is what DuckDB's ``sum(md5_number_upper(x))`` computes, so both evaluators agree without
    sorting per-track lists (which dominated the set-based run time). Empty set -> ''.
    """
    total, seen = 0, False
    for piece in pieces:
        total += int.from_bytes(hashlib.md5(piece.encode("utf-8")).digest()[:8], "little")
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

    roles = set(facts.contributors)
    listed = any(role in rule.required_listed_roles for _, role in roles)
    if not listed:
        codes.add(ReasonCode.CONTRIBUTORS_UNKNOWN)
    required = sorted({party for party, role in roles if role in rule.required_consent_roles})
    applicable: list[tuple[ConsentFact, str, str]] = []  # (consent, value, state)
    consent_codes: set[str] = set()
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
        if "notAllowed" in effective:
            consent_codes.add(ReasonCode.CONSENT_NOT_ALLOWED)
        elif "constrained" in effective:
            consent_codes.add(ReasonCode.CONSENT_CONSTRAINED)
        elif "allowed" in effective:
            pass
        elif any(st == "r" for _, _, st in mine):
            consent_codes.add(ReasonCode.CONSENT_REVOKED)
        else:
            consent_codes.add(ReasonCode.CONSENT_MISSING)
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
    evidence["required_parties"] = required
    evidence["required_party_count"] = len(required)

    inputs = (f"{INPUTS_VERSION}|{facts.track_id or ''}|{facts.isrc}|{purpose}|{territory}|{on_date.isoformat()}"
              f"|ai={int(facts.ai_generated)}|deals={deal_sig}|req={_digest_sum(required)}|listed={int(listed)}"
              f"|consents={consent_sig}|optout={','.join(m.matched_ref for m in hits)}"
              f"|dup={facts.duplicate_conflict or ''}")
    return _decision(facts, policy, purpose, territory, on_date, codes, deal_id, consent_ids, inputs, evidence, decided_at)


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
            "JOIN recording_contributors rc ON rc.isrc = t.isrc").fetchall():
        contributors[track_id].add((party, role))
    consents = _consents_by_party(con, "SELECT DISTINCT party_id FROM contributors c JOIN _facts_tracks USING (track_id) "
                                       "UNION SELECT DISTINCT party_id FROM recording_contributors rc "
                                       "JOIN _facts_tracks t ON t.isrc = rc.isrc")
    optouts: dict[str, list[OptoutMatch]] = defaultdict(list)
    for track_id, ref, score, threshold in con.execute(
            "SELECT m.track_id, m.matched_ref, m.score, m.threshold FROM audio_matches m "
            "JOIN _facts_tracks USING (track_id) WHERE m.kind = 'optout'").fetchall():
        optouts[track_id].append(OptoutMatch(ref, score, threshold))
    conflicts = dict(con.execute(_CONFLICTS_SQL + " SELECT d.track_id, d.cluster_id FROM duplicate_clusters d "
                                 "JOIN dc USING (cluster_id) JOIN _facts_tracks USING (track_id)").fetchall())
    for track_id, track_isrc, iswc, ai, ai_evidence in tracks:
        parties = contributors.get(track_id, set())
        yield TrackFacts(
            track_id=track_id, isrc=track_isrc, iswc=iswc, ai_generated=bool(ai), ai_evidence=ai_evidence,
            deals=tuple(deals_by_isrc.get(track_isrc, ())), contributors=tuple(sorted(parties)),
            consents=tuple(k for party in sorted({p for p, _ in parties}) for k in consents.get(party, ())),
            optout_matches=tuple(optouts.get(track_id, ())), duplicate_conflict=conflicts.get(track_id),
        )


def recording_facts(con: duckdb.DuckDBPyConnection, isrc: str) -> TrackFacts:
    """Facts for a recording known from rights data but with no audio in the catalog."""
    row = con.execute("SELECT iswc, ai_generated, ai_evidence FROM recordings WHERE isrc = ?", [isrc]).fetchone()
    contributors = tuple(sorted(con.execute(
        "SELECT DISTINCT party_id, role FROM recording_contributors WHERE isrc = ?", [isrc]).fetchall()))
    consents = _consents_by_party(con, "SELECT DISTINCT party_id FROM recording_contributors WHERE isrc = "
                                       + _quote(isrc))
    deals = _deals_by_isrc(con, "SELECT " + _quote(isrc)).get(isrc, [])
    return TrackFacts(
        track_id=None, isrc=isrc, iswc=row[0] if row else None, ai_generated=bool(row and row[1]),
        ai_evidence=row[2] if row else None, deals=tuple(deals), contributors=contributors,
        consents=tuple(k for party in sorted({p for p, _ in contributors}) for k in consents.get(party, ())),
    )


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


_CONFLICTS_SQL = ("WITH dc AS (SELECT cluster_id FROM duplicate_clusters GROUP BY cluster_id "
                  "HAVING count(DISTINCT isrc) > 1 AND NOT bool_and(resolved))")


# --- set-based whole-catalog evaluation -----------------------------------------------------

def _text_case(column: str) -> str:
    whens = " ".join(f"WHEN '{code}' THEN '{text.replace(chr(39), chr(39) * 2)}'" for code, text in REASON_TEXT.items())
    return f"CASE {column} {whens} ELSE {column} END"


_CATALOG_SQL = """
CREATE OR REPLACE TEMP TABLE _eval AS
WITH
t AS (
    SELECT tr.track_id, tr.isrc, r.iswc, (tr.ai_generated OR coalesce(r.ai_generated, FALSE)) AS ai,
           coalesce(r.ai_evidence, CASE WHEN tr.ai_generated THEN 'catalog flag' END) AS ai_evidence
    FROM tracks tr LEFT JOIN recordings r ON r.isrc = tr.isrc {track_filter}
),
ds AS (SELECT deal_id, isrc, sum(share) AS total FROM rights_controllers GROUP BY ALL),
dl AS (
    SELECT t.track_id, d.deal_id, d.valid_to,
        list_contains(d.use_types, $purpose) AS u,
        CASE WHEN $territory = 'Worldwide'
             THEN list_contains(d.territories_included, 'Worldwide') AND len(d.territories_excluded) = 0
             ELSE NOT list_contains(d.territories_excluded, $territory)
                  AND (list_contains(d.territories_included, 'Worldwide') OR list_contains(d.territories_included, $territory))
        END AS te,
        (d.valid_from IS NULL OR d.valid_from <= $on) AS s,
        (d.valid_to IS NULL OR d.valid_to >= $on) AS ne,
        coalesce(ds.total, 0)::DOUBLE AS total,
        abs(coalesce(ds.total, 0) - 100) <= $tol AS c
    FROM t JOIN deal_recordings dr ON dr.isrc = t.isrc JOIN deals d ON d.deal_id = dr.deal_id
    LEFT JOIN ds ON ds.deal_id = d.deal_id AND ds.isrc = t.isrc
),
da AS (
    SELECT track_id, bool_or(u) AS any_u, bool_or(u AND te) AS any_ut,
        bool_or(u AND te AND valid_to IS NOT NULL AND valid_to < $on) AS any_expired,
        min(deal_id) FILTER (WHERE u AND te AND s AND ne AND c) AS best_complete,
        arg_min(total, deal_id) FILTER (WHERE u AND te AND s AND ne AND c) AS best_complete_total,
        min(deal_id) FILTER (WHERE u AND te AND s AND ne) AS best_any,
        arg_min(total, deal_id) FILTER (WHERE u AND te AND s AND ne) AS best_any_total,
        sum(md5_number_upper(deal_id || ':' || u::INT || te::INT || s::INT || ne::INT || c::INT))::VARCHAR AS deal_sig
    FROM dl GROUP BY track_id
),
tc AS (
    SELECT t.track_id, c.party_id, c.role FROM t JOIN contributors c ON c.track_id = t.track_id
    UNION
    SELECT t.track_id, rc.party_id, rc.role FROM t JOIN recording_contributors rc ON rc.isrc = t.isrc
),
listed AS (SELECT DISTINCT track_id FROM tc WHERE list_contains($listed_roles, role)),
req AS (SELECT DISTINCT track_id, party_id FROM tc WHERE list_contains($required_roles, role)),
ca AS (
    SELECT req.track_id, req.party_id, k.consent_id, k.{consent_field} AS v,
        (k.granted_at IS NOT NULL AND (k.granted_at AT TIME ZONE 'UTC')::DATE <= $on) AS g,
        (k.revoked_at IS NOT NULL AND (k.revoked_at AT TIME ZONE 'UTC')::DATE <= $on) AS rv
    FROM req JOIN t ON t.track_id = req.track_id JOIN consents k ON k.party_id = req.party_id
    WHERE k.scope = 'all' OR (k.scope = 'recording' AND k.scope_ref = t.isrc)
       OR (k.scope = 'work' AND k.scope_ref = t.iswc)
),
cp AS (
    SELECT track_id, party_id,
        CASE WHEN bool_or(g AND NOT rv AND v = 'notAllowed') THEN 'consent_not_allowed'
             WHEN bool_or(g AND NOT rv AND v = 'constrained') THEN 'consent_constrained'
             WHEN bool_or(g AND NOT rv AND v = 'allowed') THEN 'ok'
             WHEN bool_or(rv) THEN 'consent_revoked'
             ELSE 'consent_missing' END AS code
    FROM ca GROUP BY ALL
),
cc AS (
    SELECT req.track_id,
        list_distinct(list(coalesce(cp.code, 'consent_missing')) FILTER (WHERE coalesce(cp.code, 'consent_missing') <> 'ok')) AS codes,
        sum(md5_number_upper(req.party_id))::VARCHAR AS req_sig,
        count(*) AS req_count
    FROM req LEFT JOIN cp ON cp.track_id = req.track_id AND cp.party_id = req.party_id
    GROUP BY req.track_id
),
cs AS (
    SELECT track_id,
        list_sort(list(consent_id) FILTER (WHERE g AND NOT rv AND v = 'allowed')) AS consent_ids,
        sum(md5_number_upper(consent_id || ':' || v || ':' || CASE WHEN rv THEN 'r' WHEN g THEN 'e' ELSE 'p' END))::VARCHAR
            AS consent_sig
    FROM ca GROUP BY track_id
),
oo AS (
    SELECT m.track_id, array_to_string(list_sort(list(m.matched_ref)), ',') AS refs,
        list_sort(list({{'matched_ref': m.matched_ref, 'score': m.score, 'threshold': m.threshold}})) AS hits
    FROM audio_matches m JOIN t ON t.track_id = m.track_id
    WHERE m.kind = 'optout' AND m.score >= m.threshold GROUP BY m.track_id
),
dc AS (SELECT cluster_id FROM duplicate_clusters GROUP BY cluster_id
       HAVING count(DISTINCT isrc) > 1 AND NOT bool_and(resolved)),
dt AS (SELECT d.track_id, d.cluster_id FROM duplicate_clusters d JOIN dc ON dc.cluster_id = d.cluster_id),
j AS (
    SELECT t.*, da.any_u, da.any_ut, da.any_expired, da.best_complete, da.best_any, da.deal_sig, cc.codes AS consent_codes, cc.req_sig, cc.req_count, cs.consent_ids, cs.consent_sig,
        listed.track_id IS NOT NULL AS is_listed, oo.refs AS optout_refs, oo.hits AS optout_hits,
        dt.cluster_id AS dup_cluster, da.track_id IS NOT NULL AS has_deal,
        coalesce(da.best_complete, da.best_any) AS chosen,
        coalesce(da.best_complete_total, da.best_any_total) AS chosen_total
    FROM t
    LEFT JOIN da ON da.track_id = t.track_id LEFT JOIN cc ON cc.track_id = t.track_id
    LEFT JOIN cs ON cs.track_id = t.track_id LEFT JOIN listed ON listed.track_id = t.track_id
    LEFT JOIN oo ON oo.track_id = t.track_id LEFT JOIN dt ON dt.track_id = t.track_id
),
r AS (
    SELECT j.*,
        list_sort(list_filter([
            CASE WHEN NOT has_deal THEN 'no_deal'
                 WHEN NOT any_u THEN 'deal_use_not_licensed'
                 WHEN NOT any_ut THEN 'deal_territory_not_covered'
                 WHEN best_any IS NULL THEN CASE WHEN any_expired THEN 'deal_expired' ELSE 'deal_not_yet_valid' END
            END,
            CASE WHEN $full_shares AND best_any IS NOT NULL AND best_complete IS NULL THEN 'rights_shares_incomplete' END,
            CASE WHEN NOT is_listed THEN 'contributors_unknown' END,
            CASE WHEN optout_refs IS NOT NULL THEN 'optout_match' END,
            CASE WHEN dup_cluster IS NOT NULL THEN 'duplicate_conflict' END,
            CASE WHEN $exclude_ai AND ai THEN 'ai_generated' END
        ], lambda x: x IS NOT NULL) || coalesce(consent_codes, [])) AS reason_codes,
        sha256('{version}|' || track_id || '|' || isrc || '|' || $purpose || '|' || $territory || '|'
               || strftime($on, '%Y-%m-%d') || '|ai=' || ai::INT || '|deals=' || coalesce(deal_sig, '')
               || '|req=' || coalesce(req_sig, '') || '|listed=' || is_listed::INT
               || '|consents=' || coalesce(consent_sig, '') || '|optout=' || coalesce(optout_refs, '')
               || '|dup=' || coalesce(dup_cluster, '')) AS inputs_hash
    FROM j
)
SELECT
    'dec_' || left(sha256($policy_hash || '|' || inputs_hash), 32) AS decision_id,
    track_id, isrc, len(reason_codes) = 0 AS allowed, reason_codes,
    CASE WHEN len(reason_codes) = 0
         THEN 'allowed: deal ' || chosen || ' licenses this use here and now; '
              || len(coalesce(consent_ids, [])) || ' required consent(s) in force'
         ELSE 'denied: ' || array_to_string(list_transform(reason_codes, lambda x: {text_case}), '; ') END AS explanation,
    inputs_hash, chosen AS deal_id, coalesce(consent_ids, []::VARCHAR[]) AS consent_ids,
    to_json({{'deal_id': chosen, 'share_total': chosen_total, 'optout': optout_hits,
              'duplicate_cluster': dup_cluster, 'ai_evidence': CASE WHEN ai THEN ai_evidence END,
              'required_party_count': coalesce(req_count, 0)}}) AS evidence
FROM r
"""


def _catalog_sql(rule: PurposeRule, track_filter: str) -> str:
    return _CATALOG_SQL.format(track_filter=track_filter, consent_field=rule.consent_field,
                               version=INPUTS_VERSION, text_case=_text_case("x"))


def evaluate_catalog_frame(con: duckdb.DuckDBPyConnection, policy: Policy, *, purpose: str, territory: str,
                           on_date: date, track_ids: Iterable[str] | None = None) -> None:
    """Evaluate (all or some) catalog tracks set-based into the temp table ``_eval``, writing nothing else."""
    territory = normalize_territory(territory)
    track_filter, params = "", {}
    if track_ids is not None:
        track_filter = "WHERE tr.track_id IN (SELECT unnest($track_ids::VARCHAR[]))"
        params["track_ids"] = list(track_ids)
    rule = policy.purposes.get(purpose)  # type: ignore[call-overload]
    if rule is None:
        params.update({"purpose": purpose, "territory": territory, "on": on_date.isoformat(),
                       "policy_hash": policy.content_hash,
                       "explanation": explanation_for(False, ["purpose_unknown"], None, 0)})
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _eval AS
            WITH t AS (SELECT track_id, isrc, sha256('{INPUTS_VERSION}|' || track_id || '|' || isrc || '|' || $purpose
                       || '|' || $territory || '|' || $on || '|unknown-purpose') AS inputs_hash
                       FROM tracks tr {track_filter})
            SELECT 'dec_' || left(sha256($policy_hash || '|' || inputs_hash), 32) AS decision_id, track_id, isrc,
                FALSE AS allowed, ['purpose_unknown'] AS reason_codes, $explanation AS explanation, inputs_hash,
                NULL::VARCHAR AS deal_id, []::VARCHAR[] AS consent_ids, to_json({{'deal_id': NULL}}) AS evidence
            FROM t""", params)
        return
    params.update({
        "purpose": purpose, "territory": territory, "on": on_date, "tol": policy.share_tolerance,
        "listed_roles": list(rule.required_listed_roles), "required_roles": list(rule.required_consent_roles),
        "full_shares": rule.require_full_shares, "exclude_ai": rule.exclude_ai_generated,
        "policy_hash": policy.content_hash,
    })
    con.execute(_catalog_sql(rule, track_filter), params)


def evaluate_catalog(con: duckdb.DuckDBPyConnection, policy: Policy, *, purpose: str, territory: str,
                     on_date: date, actor: str, track_ids: Iterable[str] | None = None) -> EvaluationSummary:
    """Decide every catalog track for (purpose, territory, date) in DuckDB and record the decisions."""
    territory = normalize_territory(territory)
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    try:
        store_policy(con, policy)
        evaluate_catalog_frame(con, policy, purpose=purpose, territory=territory, on_date=on_date, track_ids=track_ids)
        key = [purpose, territory, on_date, policy.content_hash]
        before = con.execute("SELECT count(*) FROM decisions").fetchone()[0]  # type: ignore[index]
        con.execute(
            "INSERT INTO decisions SELECT e.decision_id, e.track_id, e.isrc, ?, ?, ?, e.allowed, e.reason_codes, "
            "e.explanation, ?, e.inputs_hash, e.deal_id, e.consent_ids, e.evidence, now() FROM _eval e "
            "WHERE NOT EXISTS (SELECT 1 FROM decisions d WHERE d.decision_id = e.decision_id)",
            [purpose, territory, on_date, policy.content_hash])
        written = con.execute("SELECT count(*) FROM decisions").fetchone()[0] - before  # type: ignore[index]
        scope = "" if track_ids is None else " AND track_id IN (SELECT track_id FROM _eval)"
        con.execute("DELETE FROM current_decisions WHERE purpose = ? AND territory = ? AND on_date = ? "
                    "AND policy_hash = ?" + scope, key)
        con.execute("INSERT INTO current_decisions SELECT track_id, ?, ?, ?, ?, decision_id, allowed FROM _eval", key)
        total, allowed = con.execute("SELECT count(*), count(*) FILTER (WHERE allowed) FROM _eval").fetchone()  # type: ignore[misc]
        by_reason = dict(con.execute("SELECT code, count(*) FROM (SELECT unnest(reason_codes) AS code FROM _eval) "
                                     "GROUP BY code ORDER BY code").fetchall())
        summary = EvaluationSummary(
            purpose=purpose, territory=territory, on_date=on_date, policy_hash=policy.content_hash,
            evaluated=total, allowed=allowed, denied=total - allowed, by_reason=by_reason,
            decisions_written=written, elapsed_s=round(time.perf_counter() - started, 3))
        # The batch's content hash: every decision id in force after it (ids hash policy and inputs).
        batch = con.execute("SELECT coalesce(string_agg(decision_id, ',' ORDER BY decision_id), '') FROM _eval").fetchone()
        audit.record(con, actor=actor, action="rights.evaluate", subject=f"{purpose}/{territory}/{on_date}",
                     payload={**summary.model_dump(mode="json", exclude={"elapsed_s"}),
                              "decisions_sha256": audit.sha256_text(batch[0] if batch else "")})
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return summary


def catalog_decisions(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """The rows of the last :func:`evaluate_catalog_frame` keyed by track_id (for cross-checks)."""
    cols = ["decision_id", "track_id", "isrc", "allowed", "reason_codes", "inputs_hash", "deal_id", "consent_ids",
            "explanation"]
    return {row[1]: dict(zip(cols, row, strict=True))
            for row in con.execute(f"SELECT {', '.join(cols)} FROM _eval").fetchall()}
