"""Build test ledgers the way the pipeline does: catalog rows through a command, rights through the importer,
releases through ``licensing.releases``, rights changes through ``licensing.revocation``.

Only the catalog rows are written directly (one ``catalog.ingest`` command), so fixtures choose their
track ids and can record a wrong audio hash; their audio gets a stand-in fingerprint row so the
policy's fingerprint requirement holds (the audio is never matched against anything).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from store.ledger import command

POLICY = load_policy()  # the packaged default policy
AI_USES = ["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining"]


def write_rows(con: duckdb.DuckDBPyConnection, action: str, subject: str,
               rows: Mapping[str, Sequence[Mapping[str, Any]]], *, actor: str = "tester") -> int:
    """Insert ``{table: rows}`` in one command; return its audit sequence number."""
    with command(con, actor, action, subject) as w:
        for table, table_rows in rows.items():
            w.insert(table, list(table_rows))
    return w.seq


def catalog(con: duckdb.DuckDBPyConnection, tracks: Sequence[Mapping[str, Any]], *, delivery_id: str,
            received_at: datetime, actor: str = "pipeline") -> None:
    """A delivery's tracks (``artists`` become MainArtist contributors) with stand-in fingerprints."""
    now = datetime.now(UTC)
    rows = [{"delivery_id": delivery_id, "isrc_assigned": False, "ai_generated": False, "ingested_at": received_at,
             **{k: v for k, v in t.items() if k != "party_ids"}} for t in tracks]
    write_rows(con, "catalog.ingest", f"delivery:{delivery_id}", {
        "deliveries": [{"delivery_id": delivery_id, "source": "fixture", "received_at": received_at,
                        "track_count": len(rows), "quarantined_count": 0}],
        "tracks": rows,
        "contributors": [{"track_id": t["track_id"], "party_id": p, "name": n, "role": "MainArtist"}
                         for t in tracks for p, n in zip(t["party_ids"], t["artists"], strict=True)],
        "fingerprints": [{"track_id": t["track_id"], "algorithm": 1, "duration_s": 30.0, "seconds_used": 30.0,
                          "items": [n], "fingerprint": "stand-in", "computed_at": now, "delivery_id": delivery_id}
                         for n, t in enumerate(tracks)],
    }, actor=actor)


def party(party_id: str, name: str) -> dict[str, Any]:
    return {"party_id": party_id, "name": name, "isni": None, "ipi": None}


def deal(deal_id: str, licensor: str, license_: str, controllers: Sequence[tuple[str, str, float]], *,
         valid_from: str = "2024-01-01") -> dict[str, Any]:
    """A Worldwide deal for every AI use; ``controllers`` are (party_id, isrc, share)."""
    return {"deal_id": deal_id, "licensor": licensor, "license": license_,
            "isrcs": sorted({isrc for _, isrc, _ in controllers}), "use_types": AI_USES,
            "territories": {"include": ["Worldwide"], "exclude": []}, "valid_from": valid_from, "valid_to": None,
            "conditions": [], "rights_controllers": [{"party_id": p, "isrc": i, "share": s} for p, i, s in controllers]}


def consent(consent_id: str, party_id: str, *, granted: str = "2024-06-01T00:00:00Z") -> dict[str, Any]:
    """A catalog-wide consent allowing every AI use."""
    return {"consent_id": consent_id, "party_id": party_id, "scope": "all", "scope_ref": None,
            "ai_training": "allowed", "ai_generative_training": "allowed", "data_mining": "allowed",
            "ai_inference": "notAllowed", "evidence_ref": f"test://consent/{consent_id}", "evidence_sha256": "e" * 64,
            "granted_at": granted, "revoked_at": None}


def import_rights(con: duckdb.DuckDBPyConnection, path: Path, *, parties: Sequence[dict[str, Any]],
                  deals: Sequence[dict[str, Any]], consents: Sequence[dict[str, Any]],
                  actor: str = "rita.rights") -> None:
    """Write a rights file and import it with the real importer (every record must be accepted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 1, "parties": list(parties), "deals": list(deals),
                                "consents": list(consents)}), encoding="utf-8")
    report = import_rights_file(con, path, actor=actor)
    if report.rejected or report.errors:
        raise AssertionError(f"fixture rights file {path} was not imported whole: {report}")


def today() -> date:
    return datetime.now(UTC).date()
