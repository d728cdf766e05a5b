"""Seed test ledgers through the write path: every row sealed by a command, decisions by the real evaluator.

The catalog, rights and release functions of this branch (``catalog.ingest``, the rights importers,
``licensing.evaluate.evaluate_catalog``, ``licensing.releases.propose_release``/``approve_release``)
are being moved onto the write path separately and still write sealed tables with raw SQL here. Until
they are, fixtures write the same rows with :func:`store.ledger.command` and ``Writer.insert``, and
decide tracks with the set-based evaluator itself (:func:`licensing.evaluate.evaluate_catalog_frame`),
so the decisions a release freezes are the ones the release gate re-derives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from licensing.evaluate import evaluate_catalog_frame
from licensing.policy import load_policy
from schemas.canonical import canonical_json, sha256_text
from schemas.policy import Policy
from store.ledger import command

POLICY = load_policy()  # the packaged default policy
SEEDER = "tester"  # an admin in tests/roles.py


def write_rows(con: duckdb.DuckDBPyConnection, action: str, subject: str,
               rows: Mapping[str, Sequence[Mapping[str, Any]]], *, actor: str = SEEDER) -> int:
    """Insert ``{table: rows}`` in one command; return its audit sequence number."""
    with command(con, actor, action, subject) as w:
        for table, table_rows in rows.items():
            w.insert(table, list(table_rows))
    return w.seq


def policy_row(policy: Policy = POLICY) -> dict[str, Any]:
    return {"policy_hash": policy.content_hash, "policy_id": policy.policy_id, "version": policy.version,
            "content": canonical_json(policy.model_dump(mode="json")), "loaded_at": datetime.now(UTC)}


def fingerprint_row(track_id: str, n: int, *, delivery_id: str) -> dict[str, Any]:
    """A stand-in fingerprint, so ``require_fingerprint`` holds (the audio is never matched)."""
    return {"track_id": track_id, "algorithm": 1, "duration_s": 30.0, "seconds_used": 30.0, "items": [n],
            "fingerprint": "stand-in", "computed_at": datetime.now(UTC), "delivery_id": delivery_id}


def consent_row(consent_id: str, party_id: str, *, value: str = "allowed", scope: str = "all",
                scope_ref: str | None = None, granted_at: datetime, source: str = "fixture") -> dict[str, Any]:
    return {"consent_id": consent_id, "party_id": party_id, "scope": scope, "scope_ref": scope_ref,
            "ai_training": value, "ai_generative_training": value, "data_mining": value, "ai_inference": "notAllowed",
            "evidence_ref": f"test://consent/{consent_id}", "evidence_sha256": "e" * 64, "granted_at": granted_at,
            "revoked_at": None, "source": source}


def decide(con: duckdb.DuckDBPyConnection, *, purpose: str, territory: str, on_date: date,
           policy: Policy = POLICY, actor: str = SEEDER, track_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """Decide the catalog (or ``track_ids``) and record the decisions in one ``rights.evaluate`` command, as
    ``licensing.evaluate.evaluate_catalog`` does; return ``{track_id: (decision_id, allowed, reason_codes)}``."""
    with command(con, actor, "rights.evaluate", f"{purpose}/{territory}/{on_date}") as w:
        if not con.execute("SELECT 1 FROM policies WHERE policy_hash = ?", [policy.content_hash]).fetchone():
            w.insert("policies", [policy_row(policy)])
        evaluate_catalog_frame(con, policy, purpose=purpose, territory=territory, on_date=on_date,
                               track_ids=list(track_ids) if track_ids is not None else None)
        key = [purpose, territory, on_date, policy.content_hash]
        w.insert_query("decisions", "SELECT e.decision_id, e.track_id, e.isrc, ? AS purpose, ? AS territory, "
                                    "? AS on_date, e.allowed, e.reason_codes, e.explanation, ? AS policy_hash, "
                                    "e.inputs_hash, e.deal_id, e.consent_ids, e.evidence, now() AS decided_at "
                                    "FROM _eval e WHERE e.decision_id NOT IN (SELECT decision_id FROM decisions)", key)
        w.execute("DELETE FROM current_decisions WHERE purpose = ? AND territory = ? AND on_date = ? "
                  "AND policy_hash = ? AND track_id IN (SELECT track_id FROM _eval)", key)
        w.execute("INSERT INTO current_decisions SELECT track_id, ?, ?, ?, ?, decision_id, allowed FROM _eval", key)
        rows = con.execute("SELECT track_id, decision_id, allowed, reason_codes FROM _eval").fetchall()
        w.payload.update({"purpose": purpose, "territory": territory, "on_date": on_date.isoformat(),
                          "policy_hash": policy.content_hash, "evaluated": len(rows)})
    return {t: (d, a, tuple(c)) for t, d, a, c in rows}


def propose_release(con: duckdb.DuckDBPyConnection, release_id: str, *, purpose: str, territory: str,
                    on_date: date, proposed_by: str = "mira.ml", proposed_at: datetime | None = None,
                    policy: Policy = POLICY) -> list[tuple[str, str, str]]:
    """Decide the catalog and freeze its allowed tracks as a proposed release, as
    ``licensing.releases.propose_release`` does; return its (track_id, isrc, decision_id) rows."""
    decided = decide(con, purpose=purpose, territory=territory, on_date=on_date, policy=policy)
    isrcs = dict(con.execute("SELECT track_id, isrc FROM tracks").fetchall())
    tracks = sorted((t, isrcs[t], d) for t, (d, allowed, _) in decided.items() if allowed)
    if not tracks:
        denied = {t: codes for t, (_, _, codes) in decided.items()}
        raise AssertionError(f"fixture release {release_id} would be empty: {denied}")
    content = {"purpose": purpose, "territory": territory, "on_date": on_date.isoformat(),
               "policy_hash": policy.content_hash, "tracks": [list(t) for t in tracks]}
    write_rows(con, "release.propose", release_id, {
        "releases": [{"release_id": release_id, "purpose": purpose, "territory": territory, "on_date": on_date,
                      "policy_hash": policy.content_hash, "status": "proposed", "proposed_by": proposed_by,
                      "proposed_at": proposed_at or datetime.now(UTC), "track_count": len(tracks),
                      "content_sha256": sha256_text(canonical_json(content))}],
        "release_tracks": [{"release_id": release_id, "track_id": t, "isrc": i, "decision_id": d}
                           for t, i, d in tracks]}, actor=proposed_by)
    return tracks


def decide_release(con: duckdb.DuckDBPyConnection, release_id: str, action: str, *, actor: str = "rita.rights",
                   comment: str = "checked", at: datetime | None = None) -> None:
    """approve / reject / revoke, as ``licensing.releases`` records them: a new release version and an approvals row."""
    status = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}[action]
    when = at or datetime.now(UTC)
    with command(con, actor, f"release.{action}", release_id) as w:
        w.update("releases", "release_id = ?", [release_id], {"status": status})
        w.insert("approvals", [{"release_id": release_id, "actor": actor, "action": action, "comment": comment,
                                "recorded_at": when}])


def refuse_recording(con: duckdb.DuckDBPyConnection, party_id: str, isrc: str, *, at: datetime,
                     actor: str = "rita.rights") -> str:
    """The party withdraws consent for one recording: a recording-scoped refusal, which beats any permission."""
    consent_id = f"C-refusal-{party_id}-{isrc}"
    write_rows(con, "consent.revoke", f"party:{party_id}", {"consents": [
        consent_row(consent_id, party_id, value="notAllowed", scope="recording", scope_ref=isrc,
                    granted_at=at, source="withdrawal")]}, actor=actor)
    return consent_id


def withdraw_refusal(con: duckdb.DuckDBPyConnection, consent_id: str, *, actor: str = "rita.rights") -> None:
    """The refusal was entered in error: it leaves the current record (kept in history)."""
    with command(con, actor, "rights.supersede", consent_id) as w:
        w.supersede("consents", "consent_id = ?", [consent_id])


def later(moment: datetime, hours: int) -> datetime:
    return moment + timedelta(hours=hours)
