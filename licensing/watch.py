"""Noticing rights changes and reporting their impact: what the ``rights_change_sensor`` runs.

A change is a consent revoked or a deal ended early (audited as ``consent.revoke`` /
``deal.expire``), a rights import (which may carry revocations or new deal dates), a revocation
or deal end dated in the past that has come into force since the last look. For every policy in
use, :func:`licensing.releases.reevaluate_after_change` re-decides the catalog and writes
``release_alerts``; the tracks that became denied or sit in an alerted release get an impact
report, written as JSON under ``<home>/reports/``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict

from licensing.impact import impact_report
from licensing.policy import policy_by_hash
from licensing.releases import reevaluate_after_change
from store import audit
from store.database import transaction

WATCHED_ACTIONS = ("consent.revoke", "deal.expire", "rights.import")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WatchCursor(BaseModel):
    """Where the last look stopped: the audit sequence number and the time of the look."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    audit_seq: int = 0
    as_of: datetime = EPOCH

    @classmethod
    def parse(cls, text: str | None) -> WatchCursor:
        return cls() if not text else cls.model_validate_json(text)


class RightsChanges(BaseModel):
    """What changed since a cursor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    audit_entries: tuple[dict[str, Any], ...]
    consents_revoked: tuple[str, ...]   # consent ids whose revocation came into force in the window
    deals_ended: tuple[str, ...]        # deal ids whose valid_to passed in the window
    cursor: WatchCursor                 # the cursor to keep after handling these

    @property
    def any(self) -> bool:
        return bool(self.audit_entries or self.consents_revoked or self.deals_ended)


def changes_since(con: duckdb.DuckDBPyConnection, cursor: WatchCursor, *, now: datetime | None = None) -> RightsChanges:
    """Consent revocations, deal ends and rights imports after ``cursor``, up to ``now``."""
    now = now or datetime.now(UTC)
    entries = [dict(zip(("seq", "action", "subject", "actor"), row, strict=True)) for row in con.execute(
        "SELECT seq, action, subject, actor FROM audit_log WHERE seq > ? AND action IN (SELECT unnest(?::VARCHAR[])) "
        "ORDER BY seq", [cursor.audit_seq, list(WATCHED_ACTIONS)]).fetchall()]
    consents = [r[0] for r in con.execute(
        "SELECT consent_id FROM consents WHERE revoked_at > ? AND revoked_at <= ? ORDER BY consent_id",
        [cursor.as_of, now]).fetchall()]
    # Valid through valid_to: a deal stops licensing on the day after it.
    deals = [r[0] for r in con.execute(
        "SELECT deal_id FROM deals WHERE valid_to >= ? AND valid_to < ? ORDER BY deal_id",
        [cursor.as_of.astimezone(UTC).date(), now.astimezone(UTC).date()]).fetchall()]
    top = con.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()
    return RightsChanges(audit_entries=tuple(entries), consents_revoked=tuple(consents), deals_ended=tuple(deals),
                         cursor=WatchCursor(audit_seq=int(top[0]) if top else 0, as_of=now))


def handle_changes(con: duckdb.DuckDBPyConnection, changes: RightsChanges, *, reports_dir: Path, actor: str,
                   on_date: date | None = None) -> dict[str, Any]:
    """Re-decide under every policy in use, alert releases, and write one impact report (JSON).

    Returns the report (with its ``path``); the report's SHA-256 is audited as ``rights.change_report``.
    """
    when = on_date or datetime.now(UTC).date()
    hashes = [r[0] for r in con.execute(
        "SELECT DISTINCT policy_hash FROM releases WHERE status IN ('proposed', 'approved') "
        "UNION SELECT DISTINCT policy_hash FROM current_decisions ORDER BY 1").fetchall()]
    became: list[dict[str, Any]] = []
    affected: dict[str, list[str]] = {}
    alerts = 0
    for policy_hash in hashes:
        policy = policy_by_hash(con, policy_hash)
        if policy is None:
            continue
        result = reevaluate_after_change(con, policy, actor=actor, on_date=when)
        became += [t.model_dump(mode="json") | {"policy_hash": policy_hash} for t in result.became_denied]
        for release_id, tracks in result.affected_releases.items():
            affected.setdefault(release_id, [])
            affected[release_id] = sorted(set(affected[release_id]) | set(tracks))
        alerts += result.alerts_written
    track_ids = {t["track_id"] for t in became} | {t for ts in affected.values() for t in ts}
    isrcs = sorted({r[0] for r in con.execute("SELECT isrc FROM tracks WHERE track_id IN (SELECT unnest(?::VARCHAR[]))",
                                              [sorted(track_ids)]).fetchall()})
    generated = datetime.now(UTC)
    report: dict[str, Any] = {
        "generated_at": generated.isoformat(), "checked_on": when.isoformat(), "actor": actor,
        "trigger": {"audit_entries": list(changes.audit_entries), "consents_revoked": list(changes.consents_revoked),
                    "deals_ended": list(changes.deals_ended)},
        "became_denied": became, "affected_releases": affected, "alerts_written": alerts,
        "impact": [impact_report(con, isrc, on_date=when).model_dump(mode="json") for isrc in isrcs],
    }
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"rights-change-{generated:%Y%m%dT%H%M%S%fZ}.json"
    body = json.dumps(report, indent=2, sort_keys=True, default=str).encode("utf-8")
    path.write_bytes(body)
    with transaction(con):
        audit.record(con, actor=actor, action="rights.change_report", subject=str(path),
                     payload={"sha256": hashlib.sha256(body).hexdigest(), "isrcs": isrcs,
                              "affected_releases": sorted(affected), "alerts_written": alerts})
    return report | {"path": str(path)}
