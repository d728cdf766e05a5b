"""Small builders for rights fixtures written as real rights files and catalog rows."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from store.ledger import command

EVIDENCE = hashlib.sha256(b"signed consent form").hexdigest()
AI_USES = ["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining"]


def party(pid: str) -> dict[str, Any]:
    return {"party_id": pid, "name": pid.removeprefix("P-").title(), "isni": None, "ipi": None}


def deal(deal_id: str, isrcs: list[str], *, licensor: str = "P-label", uses: list[str] | None = None,
         include: list[str] | None = None, exclude: list[str] | None = None, valid_from: str | None = "2020-01-01",
         valid_to: str | None = None, shares: list[tuple[str, str, float]] | None = None) -> dict[str, Any]:
    return {"deal_id": deal_id, "licensor": licensor, "license": "contract-1", "isrcs": isrcs,
            "use_types": uses or AI_USES, "territories": {"include": include or ["Worldwide"], "exclude": exclude or []},
            "valid_from": valid_from, "valid_to": valid_to, "conditions": ["attribution_required"],
            "rights_controllers": [{"party_id": p, "isrc": i, "share": s}
                                   for p, i, s in (shares if shares is not None else [(licensor, x, 100.0) for x in isrcs])]}


def consent(cid: str, pid: str, *, value: str = "allowed", scope: str = "all", scope_ref: str | None = None,
            granted: str = "2026-01-15T00:00:00Z", revoked: str | None = None, **fields: str) -> dict[str, Any]:
    values = {f: value for f in ("ai_training", "ai_generative_training", "data_mining")}
    values.update(fields)
    return {"consent_id": cid, "party_id": pid, "scope": scope, "scope_ref": scope_ref, **values,
            "ai_inference": "notAllowed", "evidence_ref": f"test://consent/{cid}", "evidence_sha256": EVIDENCE,
            "granted_at": granted, "revoked_at": revoked}


def write_rights(path: Path, parties: list[str], deals: list[dict[str, Any]],
                 consents: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"schema_version": 1, "parties": [party(p) for p in parties], "deals": deals,
                                "consents": consents}), encoding="utf-8")
    return path


def add_track(con: duckdb.DuckDBPyConnection, n: int, isrc: str, contributors: list[tuple[str, str]],
              *, ai: bool = False, fingerprinted: bool = True) -> str:
    """A catalog track (written through the write path); unless ``fingerprinted`` is False its audio also has a
    (stand-in) fingerprint row."""
    track_id = f"trk_{n:016x}"
    now = datetime.now(UTC)
    with command(con, "ops", "catalog.ingest", f"track:{track_id}") as w:
        w.insert("tracks", [{"track_id": track_id, "delivery_id": "d-test", "isrc": isrc, "ai_generated": ai,
                             "source_path": f"/audio/{n}.flac", "audio_sha256": hashlib.sha256(str(n).encode()).hexdigest(),
                             "ingested_at": now}])
        if fingerprinted:
            w.insert("fingerprints", [{"track_id": track_id, "algorithm": 1, "duration_s": 30, "seconds_used": 30,
                                       "items": [n], "fingerprint": "stand-in", "computed_at": now,
                                       "delivery_id": "d-test"}])
        w.insert("contributors", [{"track_id": track_id, "party_id": pid, "name": pid, "role": role}
                                  for pid, role in contributors])
    return track_id
