"""Fanning out rights changes: what the ``rights_change_sensor`` runs.

Commands that change rights (imports, ``consent revoke``, ``rights expire-deal``) re-decide the
tracks they touch themselves, at once. What is left for the watcher:

* changes that take effect with *time*: a deal whose ``valid_to`` has passed, a revocation dated
  in the future that has come into force. Only the recordings concerned are re-decided;
* alerts: every proposed or approved release holding a recording that became denied gets a
  ``release_alerts`` row (only the affected tracks of each release are checked);
* an impact report per change, written as JSON under ``<home>/reports/``, its hash audited.

Nothing here re-evaluates the whole catalog.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict

from licensing.evaluate import redecide
from licensing.gate import denied_tracks
from licensing.impact import impact_report
from licensing.records import party_isrcs
from store import audit
from store.ledger import command
from store.paths import ledger_ref
from store.roles import Principal, RoleBook

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

    @classmethod
    def at_head(cls, con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> WatchCursor:
        """A cursor at the log's head: what a watcher starting now has already seen."""
        return cls(audit_seq=audit.head(con)[0], as_of=now or datetime.now(UTC))


class RightsChanges(BaseModel):
    """What changed since a cursor, and the recordings it concerns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    audit_entries: tuple[dict[str, Any], ...]
    consents_revoked: tuple[str, ...]   # consent ids whose revocation came into force in the window
    deals_ended: tuple[str, ...]        # deal ids whose valid_to passed in the window
    isrcs: tuple[str, ...]              # every recording concerned
    timed_isrcs: tuple[str, ...]        # those concerned by a change that took effect with time
    cursor: WatchCursor                 # the cursor to keep after handling these

    @property
    def any(self) -> bool:
        return bool(self.audit_entries or self.consents_revoked or self.deals_ended)


def changes_since(con: duckdb.DuckDBPyConnection, cursor: WatchCursor, *, now: datetime | None = None) -> RightsChanges:
    """Rights events since ``cursor``, and revocations and deal ends that came into force by ``now``."""
    now = now or datetime.now(UTC)
    entries = [dict(zip(("seq", "action", "subject", "actor"), row, strict=True)) for row in con.execute(
        "SELECT seq, action, subject, actor FROM audit_log WHERE seq > ? AND action IN (SELECT unnest(?::VARCHAR[])) "
        "ORDER BY seq", [cursor.audit_seq, list(WATCHED_ACTIONS)]).fetchall()]
    evented = {r[0] for r in con.execute(
        "SELECT DISTINCT unnest(isrcs) FROM rights_events WHERE audit_seq > ?", [cursor.audit_seq]).fetchall()}
    for (party,) in con.execute("SELECT DISTINCT unnest(party_ids) FROM rights_events WHERE audit_seq > ? "
                                "AND subject_kind = 'consent'", [cursor.audit_seq]).fetchall():
        evented |= party_isrcs(con, party)
    # Only what was recorded before the last look can come into force with time: a change recorded
    # since was re-decided by the command that recorded it.
    consents = con.execute(
        "SELECT consent_id, party_id, scope, scope_ref FROM consents WHERE revoked_at > ? AND revoked_at <= ? "
        "AND audit_seq <= ? ORDER BY consent_id", [cursor.as_of, now, cursor.audit_seq]).fetchall()
    # Valid through valid_to: a deal stops licensing on the day after it.
    deals = [r[0] for r in con.execute(
        "SELECT deal_id FROM deals WHERE valid_to >= ? AND valid_to < ? AND audit_seq <= ? ORDER BY deal_id",
        [cursor.as_of.astimezone(UTC).date(), now.astimezone(UTC).date(), cursor.audit_seq]).fetchall()]
    timed: set[str] = set()
    for _, party, scope, ref in consents:
        timed |= {ref} if scope == "recording" and ref else party_isrcs(con, party)
    if deals:
        timed |= {r[0] for r in con.execute("SELECT isrc FROM deal_recordings WHERE deal_id IN "
                                            "(SELECT unnest(?::VARCHAR[]))", [deals]).fetchall()}
    top = audit.head(con)[0]
    return RightsChanges(audit_entries=tuple(entries), consents_revoked=tuple(c[0] for c in consents),
                         deals_ended=tuple(deals), isrcs=tuple(sorted(evented | timed)), timed_isrcs=tuple(sorted(timed)),
                         cursor=WatchCursor(audit_seq=max(top, cursor.audit_seq), as_of=now))


def handle_changes(con: duckdb.DuckDBPyConnection, changes: RightsChanges, *, reports_dir: Path,
                   actor: Principal | str, on_date: date | None = None, roles: RoleBook | None = None) -> dict[str, Any]:
    """Re-decide what time changed, alert the releases that hold newly denied tracks, write one impact report.

    One ``release.alert`` command. Returns the report (with its ``path``); its SHA-256 is in the audit entry.
    """
    when = on_date or datetime.now(UTC).date()
    generated = datetime.now(UTC)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"rights-change-{generated:%Y%m%dT%H%M%S%fZ}.json"
    with command(con, actor, "release.alert", ledger_ref(con, path), roles=roles) as w:
        redecided = redecide(w, changes.timed_isrcs, today=when) if changes.timed_isrcs else None
        track_ids = [r[0] for r in con.execute("SELECT track_id FROM tracks WHERE isrc IN "
                                               "(SELECT unnest(?::VARCHAR[]))", [list(changes.isrcs)]).fetchall()]
        affected: dict[str, list[str]] = {}
        alerts: list[dict[str, Any]] = []
        releases = con.execute(
            "SELECT DISTINCT r.release_id FROM releases r JOIN release_tracks rt USING (release_id) "
            "WHERE r.status IN ('proposed', 'approved') AND rt.track_id IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY 1", [track_ids]).fetchall() if track_ids else []
        for (release_id,) in releases:
            denied = denied_tracks(con, release_id, on_date=max(when, _release_date(con, release_id)),
                                   track_ids=set(track_ids)) or ()
            if not denied:
                continue
            affected[release_id] = [d.track_id for d in denied]
            known = {r[0] for r in con.execute("SELECT track_id FROM release_alerts WHERE release_id = ?",
                                               [release_id]).fetchall()}
            alerts += [{"release_id": release_id, "track_id": d.track_id, "isrc": d.isrc,
                        "reason_codes": list(d.reason_codes), "checked_on": when, "detected_at": generated}
                       for d in denied if d.track_id not in known]
        w.insert("release_alerts", alerts)
        denied_isrcs = sorted({r[0] for r in con.execute(
            "SELECT isrc FROM tracks WHERE track_id IN (SELECT unnest(?::VARCHAR[]))",
            [sorted({t for ts in affected.values() for t in ts})]).fetchall()})
        report: dict[str, Any] = {
            "generated_at": generated.isoformat(), "checked_on": when.isoformat(), "actor": w.actor,
            "trigger": {"audit_entries": list(changes.audit_entries), "consents_revoked": list(changes.consents_revoked),
                        "deals_ended": list(changes.deals_ended), "isrcs": list(changes.isrcs)},
            "redecided": redecided, "affected_releases": affected, "alerts_written": len(alerts),
            "impact": [impact_report(con, isrc, on_date=when).model_dump(mode="json")
                       for isrc in sorted(set(changes.isrcs) | set(denied_isrcs))],
        }
        body = json.dumps(report, indent=2, sort_keys=True, default=str).encode("utf-8")
        path.write_bytes(body)
        w.payload.update({"report_sha256": hashlib.sha256(body).hexdigest(), "isrcs": list(changes.isrcs),
                          "affected_releases": sorted(affected), "alerts_written": len(alerts),
                          "redecided": redecided})
    return report | {"path": str(path)}


def _release_date(con: duckdb.DuckDBPyConnection, release_id: str) -> date:
    return con.execute("SELECT on_date FROM releases WHERE release_id = ?", [release_id]).fetchall()[0][0]
