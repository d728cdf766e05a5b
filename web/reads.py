"""What the pages show: bounded, set-based reads of the ledger (one query per part, LIMIT/OFFSET paging).

Nothing here writes; every change goes through the domain commands the handlers call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from licensing import decision_counts
from licensing.policy import load_policy, policy_by_hash
from schemas.decisions import REASON_TEXT

PAGE = 50
_ISRC = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}\d{7}$")


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> dict[str, Any] | None:
    found = rows(con, sql, params)
    return found[0] if found else None


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    row = con.execute(sql, params).fetchone()
    return row[0] if row else None


def overview(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    return {
        "tracks": scalar(con, "SELECT count(*) FROM tracks"),
        "releases": dict(con.execute("SELECT status, count(*) FROM releases GROUP BY ALL ORDER BY 1").fetchall()),
        "quarantined": scalar(con, "SELECT count(*) FROM quarantine"),
        "runs": scalar(con, "SELECT count(*) FROM training_runs"),
        "parties": scalar(con, "SELECT count(*) FROM parties"),
        "deals": scalar(con, "SELECT count(*) FROM deals"),
    }


# Search -------------------------------------------------------------------------------------------

def search_tracks(con: duckdb.DuckDBPyConnection, q: str, *, page: int = 1) -> tuple[list[dict[str, Any]], int]:
    """Tracks matching ``q``: an ISRC, a deal id or a party id when it is one (looked up exactly), otherwise
    tracks whose title or artists, or whose contributors' or parties' names, contain it."""
    q = q.strip()
    if not q:
        return [], 0
    isrc = q.upper().replace("-", "")
    if _ISRC.match(isrc) and scalar(con, "SELECT count(*) FROM tracks WHERE isrc = ?", [isrc]):
        matched, params = "SELECT track_id FROM tracks WHERE isrc = $q", {"q": isrc}
    elif scalar(con, "SELECT count(*) FROM deals WHERE deal_id = ?", [q]):
        matched, params = ("SELECT t.track_id FROM deal_recordings dr JOIN tracks t USING (isrc) "
                           "WHERE dr.deal_id = $q"), {"q": q}
    elif scalar(con, "SELECT count(*) FROM parties WHERE party_id = ?", [q]):
        matched, params = "SELECT DISTINCT track_id FROM contributors WHERE party_id = $q", {"q": q}
    else:
        matched = """
            SELECT track_id FROM tracks WHERE title ILIKE $like
            UNION SELECT track_id FROM contributors WHERE name ILIKE $like  -- artists are contributors too
               OR party_id IN (SELECT party_id FROM parties WHERE name ILIKE $like)"""
        params = {"like": f"%{q}%"}
    con.execute(f"CREATE OR REPLACE TEMP TABLE _search AS {matched}", params)
    total = scalar(con, "SELECT count(*) FROM _search")
    found = rows(con, "SELECT t.track_id, t.isrc, t.title, t.artists, t.delivery_id FROM _search s JOIN tracks t "
                      "USING (track_id) ORDER BY t.isrc, t.track_id LIMIT ? OFFSET ?", [PAGE, (page - 1) * PAGE])
    con.execute("DROP TABLE IF EXISTS _search")
    return found, int(total or 0)


# Track --------------------------------------------------------------------------------------------

def _policy(con: duckdb.DuckDBPyConnection, policy_hash: str, cache: dict[str, Any]) -> Any:
    if policy_hash not in cache:
        pol = policy_by_hash(con, policy_hash)
        if pol is None:
            default = load_policy()
            pol = default if default.content_hash == policy_hash else None
        cache[policy_hash] = pol
    return cache[policy_hash]


def _consent_words(consent: dict[str, Any], field: str | None, on: date) -> str:
    value = consent.get(field) if field else None
    revoked = consent.get("revoked_at")
    if revoked is not None and revoked.date() <= on:
        return f"revoked on {revoked:%Y-%m-%d}"
    granted = consent.get("granted_at")
    if granted is not None and granted.date() > on:
        return f"not yet granted (from {granted:%Y-%m-%d})"
    return {"allowed": "allows it", "notAllowed": "does not allow it",
            "constrained": "allows it only with constraints (counts as no)"}.get(str(value), f"says {value!r}")


def track_page(con: duckdb.DuckDBPyConnection, track_id: str) -> dict[str, Any] | None:
    """The track, its contributors and their consents, every current decision explained, matches and history."""
    track = one(con, "SELECT * EXCLUDE (row_sha256, audit_seq) FROM tracks WHERE track_id = ?", [track_id])
    if track is None:
        return None
    contributors = rows(con, "SELECT c.party_id, c.name, c.role, p.name AS party_name FROM contributors c "
                             "LEFT JOIN parties p USING (party_id) WHERE c.track_id = ? ORDER BY c.role, c.name",
                        [track_id])
    consents = rows(con, "SELECT consent_id, party_id, scope, scope_ref, ai_training, ai_generative_training, "
                         "data_mining, ai_inference, evidence_ref, evidence_sha256, granted_at, revoked_at, source "
                         "FROM consents WHERE party_id IN (SELECT party_id FROM contributors WHERE track_id = ?) "
                         "AND (scope = 'all' OR (scope = 'recording' AND scope_ref = ?) OR scope = 'work') "
                         "ORDER BY party_id, consent_id", [track_id, track["isrc"]])
    names = {c["party_id"]: c["party_name"] or c["name"] for c in contributors}
    decisions = rows(con, """
        SELECT d.decision_id, d.purpose, d.territory, d.on_date, d.allowed, d.reason_codes, d.explanation,
               d.policy_hash, d.deal_id, d.consent_ids, d.evidence, d.decided_at
        FROM decisions d  -- by its track-id index
        JOIN (SELECT decision_id, on_date, policy_hash FROM current_decisions WHERE track_id = $t) c USING (decision_id)
        WHERE d.track_id = $t
        -- the decision in force now: the latest decided date up to today, else the nearest later one. Not the
        -- newest row: an identical decision is stored once, so a decision restored after a denial is older
        QUALIFY row_number() OVER (PARTITION BY d.purpose, d.territory ORDER BY c.on_date <= $today DESC,
            CASE WHEN c.on_date <= $today THEN c.on_date END DESC NULLS LAST, c.on_date, d.decided_at DESC) = 1
        ORDER BY d.purpose, d.territory""", {"t": track_id, "today": datetime.now(UTC).date()})
    deals = {r["deal_id"]: r for r in rows(con, "SELECT d.deal_id, d.license, d.licensor_party_id, d.valid_from, "
                                                "d.valid_to, d.use_types, d.territories_included FROM deals d "
                                                "JOIN deal_recordings dr USING (deal_id) WHERE dr.isrc = ?",
                                           [track["isrc"]])}
    cache: dict[str, Any] = {}
    for d in decisions:
        pol = _policy(con, d["policy_hash"], cache)
        rule = pol.purposes.get(d["purpose"]) if pol is not None else None
        field = getattr(rule, "consent_field", None)
        d["reasons"] = [(code, REASON_TEXT.get(code, code)) for code in d["reason_codes"]]
        d["deal"] = deals.get(d["deal_id"])
        d["consent_field"] = field
        evidence = d["evidence"] if isinstance(d["evidence"], dict) else _json(d["evidence"])
        d["evidence"] = evidence
        roles = set(getattr(rule, "required_consent_roles", ()) or ())
        required = evidence.get("required_parties") or sorted({c["party_id"] for c in contributors
                                                               if c["role"] in roles})
        d["parties"] = [{"party_id": p, "name": names.get(p, p),
                         "consents": [{"consent_id": k["consent_id"], "evidence_ref": k["evidence_ref"],
                                       "words": _consent_words(k, field, d["on_date"])}
                                      for k in consents if k["party_id"] == p]} for p in required]
    matches = rows(con, "SELECT kind, matched_ref, coalesce(method, 'chromaprint') AS method, score, threshold, "
                         "offset_s, span_s, speed, matched_at FROM audio_matches "
                        "WHERE track_id = ? ORDER BY kind, score DESC", [track_id])
    duplicates = rows(con, "SELECT o.track_id, o.isrc, o.resolved, o.cluster_id FROM duplicate_clusters c "
                           "JOIN duplicate_clusters o USING (cluster_id) WHERE c.track_id = ? AND o.track_id <> ? "
                           "ORDER BY o.isrc", [track_id, track_id])
    return {"track": track, "contributors": contributors, "consents": consents, "decisions": decisions,
            "matches": matches, "duplicates": duplicates}


def _json(value: Any) -> dict[str, Any]:
    try:
        out = json.loads(value) if isinstance(value, str) else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


# Denied tracks and quarantine ---------------------------------------------------------------------

def decision_keys(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return decision_counts.decided_keys(con)


_LATEST = "(SELECT max(on_date) FROM current_decisions WHERE purpose = $purpose AND territory = $territory)"
_DENIED_KEYS = f"""
    SELECT track_id, decision_id FROM current_decisions
    WHERE purpose = $purpose AND territory = $territory AND NOT allowed AND on_date = {_LATEST}"""
_DENIED = f"""
    FROM ({_DENIED_KEYS}) c JOIN decisions d USING (decision_id) JOIN tracks t ON t.track_id = c.track_id"""


def denied(con: duckdb.DuckDBPyConnection, purpose: str, territory: str, *, page: int = 1,
           reason: str | None = None, after: str | None = None) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    """One page of the tracks denied for (purpose, territory) at the latest date decided (in track-id order,
    after ``after`` when given, else at ``page``), the total, and the counts per reason (with ``reason``,
    only the tracks denied for it).

    Counts come from ``decision_counts``, kept as decisions are written; they also say which range of
    track ids holds the page, so only that range of ``current_decisions`` is read, and only the page's
    50 rows are looked up in ``decisions`` and ``tracks`` (by their track-id indexes).
    """
    on = decision_counts.latest_date(con, purpose, territory)
    if on is None:
        return [], 0, {}
    total, by_reason = decision_counts.denied_by_reason(con, purpose, territory, on)
    if reason:
        total = by_reason.get(reason, 0)
    params: dict[str, Any] = {"purpose": purpose, "territory": territory, "on": on}
    hashes = decision_counts.policy_hashes(con, purpose, territory, on)
    skip = 0 if after else (page - 1) * PAGE
    if len(hashes) == 1:
        win = decision_counts.window(con, purpose, territory, on, hashes[0], size=PAGE, skip=skip, after=after,
                                     reason=reason)
        if win is None:
            return [], total, by_reason
        cond, more = decision_counts.window_sql(win)
        params.update(more)
        skip = win.skip
    else:  # several policies decided on that date: their ranges differ, so the whole list is read
        cond = "track_id > $after" if after else "TRUE"
        params.update({"after": after} if after else {})
    keys = ("SELECT track_id, decision_id FROM current_decisions WHERE purpose = $purpose AND territory = $territory "
            f"AND on_date = $on AND NOT allowed AND {cond}")
    if reason:
        params["reason"] = reason
        keys += (f" AND decision_id IN (SELECT decision_id FROM decisions WHERE {cond} AND purpose = $purpose "
                 "AND territory = $territory AND on_date = $on AND list_contains(reason_codes, $reason))")
    page_keys = con.execute(f"{keys} ORDER BY track_id LIMIT {PAGE} OFFSET {int(skip)}", params).fetchall()
    if not page_keys:
        return [], total, by_reason
    ids = [k[0] for k in page_keys]
    wanted = {k[1] for k in page_keys}
    found = [r for r in rows(con, """
        SELECT t.track_id, t.isrc, t.title, t.artists, d.reason_codes, d.on_date, d.deal_id, d.decision_id
        FROM (SELECT * FROM decisions WHERE track_id = ANY($ids::VARCHAR[])) d
        JOIN (SELECT * FROM tracks WHERE track_id = ANY($ids::VARCHAR[])) t USING (track_id)
        ORDER BY t.track_id""", {"ids": ids}) if r["decision_id"] in wanted]
    return found, total, by_reason


def denied_csv(con: duckdb.DuckDBPyConnection, purpose: str, territory: str, *, batch: int = 10_000) -> Iterator[list[Any]]:
    """Every denied track for (purpose, territory), streamed in batches: ISRC, track, title, artists, reasons, explanation."""
    cur = con.execute(f"SELECT t.isrc, t.track_id, t.title, array_to_string(t.artists, '; '), "
                      f"array_to_string(d.reason_codes, ' '), d.explanation, d.on_date, d.decision_id {_DENIED} "
                      "ORDER BY t.isrc, t.track_id", {"purpose": purpose, "territory": territory})
    while chunk := cur.fetchmany(batch):
        yield from (list(r) for r in chunk)


def quarantine(con: duckdb.DuckDBPyConnection, *, page: int = 1) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    total = scalar(con, "SELECT count(*) FROM quarantine")
    by_reason = dict(con.execute("SELECT reason_code, count(*) FROM quarantine GROUP BY 1 ORDER BY 2 DESC, 1").fetchall())
    found = rows(con, "SELECT recorded_at, stage, delivery_id, source_ref, reason_code, message FROM quarantine "
                      "ORDER BY recorded_at DESC, source_ref LIMIT ? OFFSET ?", [PAGE, (page - 1) * PAGE])
    return found, int(total or 0), by_reason


# Parties, deals, consents -------------------------------------------------------------------------

def _filter(q: str, where: str) -> tuple[str, dict[str, Any]]:
    return (f"WHERE {where}", {"like": f"%{q.strip()}%"}) if q.strip() else ("", {})


def parties(con: duckdb.DuckDBPyConnection, q: str, *, page: int = 1) -> tuple[list[dict[str, Any]], int]:
    where, params = _filter(q, "name ILIKE $like OR party_id ILIKE $like")
    total = scalar(con, f"SELECT count(*) FROM parties {where}", params)
    found = rows(con, f"SELECT party_id, name, isni, ipi FROM parties {where} ORDER BY name, party_id "
                      f"LIMIT {PAGE} OFFSET {(page - 1) * PAGE}", params)
    return found, int(total or 0)


def party(con: duckdb.DuckDBPyConnection, party_id: str) -> dict[str, Any] | None:
    found = one(con, "SELECT party_id, name, isni, ipi FROM parties WHERE party_id = ?", [party_id])
    if found is None:
        return None
    found["consents"] = rows(con, "SELECT consent_id, scope, scope_ref, ai_training, ai_generative_training, "
                                  "data_mining, granted_at, revoked_at, evidence_ref FROM consents WHERE party_id = ? "
                                  "ORDER BY consent_id", [party_id])
    found["deals"] = rows(con, "SELECT deal_id, license, valid_from, valid_to FROM deals WHERE licensor_party_id = ? "
                               "UNION SELECT DISTINCT d.deal_id, d.license, d.valid_from, d.valid_to FROM deals d "
                               "JOIN rights_controllers rc USING (deal_id) WHERE rc.party_id = ? ORDER BY 1 LIMIT 200",
                          [party_id, party_id])
    found["track_count"] = scalar(con, "SELECT count(DISTINCT track_id) FROM contributors WHERE party_id = ?",
                                  [party_id])
    return found


def deals(con: duckdb.DuckDBPyConnection, q: str, *, page: int = 1) -> tuple[list[dict[str, Any]], int]:
    where, params = _filter(q, "deal_id ILIKE $like OR licensor_party_id ILIKE $like OR coalesce(license, '') "
                               "ILIKE $like")
    total = scalar(con, f"SELECT count(*) FROM deals {where}", params)
    found = rows(con, f"SELECT deal_id, licensor_party_id, license, valid_from, valid_to, use_types FROM deals "
                      f"{where} ORDER BY deal_id LIMIT {PAGE} OFFSET {(page - 1) * PAGE}", params)
    return found, int(total or 0)


def deal(con: duckdb.DuckDBPyConnection, deal_id: str) -> dict[str, Any] | None:
    found = one(con, "SELECT * EXCLUDE (row_sha256, audit_seq) FROM deals WHERE deal_id = ?", [deal_id])
    if found is None:
        return None
    found["recording_count"] = scalar(con, "SELECT count(*) FROM deal_recordings WHERE deal_id = ?", [deal_id])
    found["controllers"] = rows(con, "SELECT rc.isrc, rc.party_id, p.name, rc.share FROM rights_controllers rc "
                                     "LEFT JOIN parties p USING (party_id) WHERE rc.deal_id = ? "
                                     "ORDER BY rc.isrc, rc.share DESC LIMIT 200", [deal_id])
    found["expiries"] = rows(con, "SELECT previous_valid_to, valid_to, evidence_ref, reason, actor, recorded_at "
                                  "FROM deal_expiries WHERE deal_id = ? ORDER BY recorded_at", [deal_id])
    return found


def deal_isrcs(con: duckdb.DuckDBPyConnection, deal_id: str) -> list[str]:
    return [r[0] for r in con.execute("SELECT isrc FROM deal_recordings WHERE deal_id = ? ORDER BY isrc",
                                      [deal_id]).fetchall()]


def consents(con: duckdb.DuckDBPyConnection, q: str, *, page: int = 1) -> tuple[list[dict[str, Any]], int]:
    where, params = _filter(q, "c.consent_id ILIKE $like OR c.party_id ILIKE $like OR c.party_id IN "
                               "(SELECT party_id FROM parties WHERE name ILIKE $like)")
    total = scalar(con, f"SELECT count(*) FROM consents c {where}", params)
    found = rows(con, f"""
        WITH page AS (SELECT * FROM consents c {where} ORDER BY c.consent_id LIMIT {PAGE} OFFSET {(page - 1) * PAGE})
        SELECT c.consent_id, c.party_id, p.name, c.scope, c.scope_ref, c.ai_training, c.ai_generative_training,
               c.data_mining, c.granted_at, c.revoked_at
        FROM page c LEFT JOIN parties p USING (party_id) ORDER BY c.consent_id""", params)
    return found, int(total or 0)


def consent(con: duckdb.DuckDBPyConnection, consent_id: str) -> dict[str, Any] | None:
    return one(con, "SELECT c.* EXCLUDE (row_sha256, audit_seq), p.name FROM consents c LEFT JOIN parties p "
                    "USING (party_id) WHERE c.consent_id = ?", [consent_id])


# Releases and models ------------------------------------------------------------------------------

def release_counts(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return rows(con, "SELECT purpose, territory, count(*) FILTER (WHERE status = 'proposed') AS proposed, "
                     "count(*) FILTER (WHERE status = 'approved') AS approved, "
                     "count(*) FILTER (WHERE status = 'rejected') AS rejected, "
                     "count(*) FILTER (WHERE status = 'revoked') AS revoked FROM releases GROUP BY ALL ORDER BY 1, 2")


def releases(con: duckdb.DuckDBPyConnection, status: str | None, *, page: int = 1) -> tuple[list[dict[str, Any]], int]:
    total = scalar(con, "SELECT count(*) FROM releases WHERE $s IS NULL OR status = $s", {"s": status})
    found = rows(con, "SELECT release_id, status, purpose, territory, on_date, track_count, proposed_by, proposed_at "
                      f"FROM releases WHERE $s IS NULL OR status = $s ORDER BY status = 'proposed' DESC, "
                      f"proposed_at DESC LIMIT {PAGE} OFFSET {(page - 1) * PAGE}", {"s": status})
    return found, int(total or 0)


def models(con: duckdb.DuckDBPyConnection, *, page: int = 1) -> tuple[list[dict[str, Any]], int]:
    total = scalar(con, "SELECT count(*) FROM training_runs")
    found = rows(con, "SELECT run_id, model, release_id, status, actor, samples_consumed, started_at, ended_at "
                      "FROM training_runs ORDER BY started_at DESC LIMIT ? OFFSET ?", [PAGE, (page - 1) * PAGE])
    return found, int(total or 0)


def audit_tail(con: duckdb.DuckDBPyConnection, *, page: int = 1) -> tuple[list[dict[str, Any]], int]:
    total = scalar(con, "SELECT count(*) FROM audit_log")
    found = rows(con, "SELECT seq, recorded_at, actor, action, subject, payload->>'$.principal.method' AS method, "
                      "payload->>'$.principal.via' AS via, payload->>'$.code' AS code FROM audit_log "
                      "ORDER BY seq DESC LIMIT ? OFFSET ?", [PAGE, (page - 1) * PAGE])
    return found, int(total or 0)
