"""A small, real catalog delivery for pipeline tests: generated audio, metadata and rights records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from catalog.ingest import party_id_for
from tests.audio_fixtures import music_like, write_audio

GENERATIVE = "UseForTrainingGenerativeAI"


def make_delivery(root: Path, *, prefix: str, tracks: int, seed: int, unlicensed: int = 1,
                  seconds: float = 6.0) -> list[str]:
    """Write a delivery folder; return its ISRCs. The last ``unlicensed`` tracks get no deal."""
    isrcs = [f"ZZ{prefix[:2]}{seed % 10}26{i:05d}" for i in range(tracks)]
    artist = f"Artist {prefix}"
    party_id = party_id_for(artist)
    metadata, deals = [], []
    for i, isrc in enumerate(isrcs):
        rel = f"audio/{prefix.lower()}-{i}.ogg"
        write_audio(root / rel, music_like(seconds, seed=seed * 100 + i), tags={"TITLE": f"{prefix} {i}", "ARTIST": artist})
        metadata.append({"file": rel, "isrc": isrc, "artists": [artist]})
        if i < tracks - unlicensed:
            deals.append({
                "deal_id": f"D-{isrc}", "licensor": party_id, "license": "CC-BY-4.0", "isrcs": [isrc],
                "use_types": [GENERATIVE], "territories": {"include": ["Worldwide"], "exclude": []},
                "valid_from": "2000-01-01", "valid_to": None, "conditions": ["attribution_required"],
                "rights_controllers": [{"party_id": party_id, "isrc": isrc, "share": 100.0}],
            })
    evidence = f"test://consent/{party_id}"
    consent = {"consent_id": f"C-{party_id}", "party_id": party_id, "scope": "all", "scope_ref": None,
               "ai_training": "allowed", "ai_generative_training": "allowed", "data_mining": "allowed",
               "ai_inference": "notAllowed", "evidence_ref": evidence,
               "evidence_sha256": hashlib.sha256(evidence.encode()).hexdigest(),
               "granted_at": "2026-01-15T00:00:00Z", "revoked_at": None}
    (root / "metadata.json").write_text(json.dumps({"schema_version": 1, "tracks": metadata}), encoding="utf-8")
    rights = root / "rights" / "rights.json"
    rights.parent.mkdir(parents=True, exist_ok=True)
    rights.write_text(json.dumps({"schema_version": 1, "parties": [
        {"party_id": party_id, "name": artist, "isni": None, "ipi": None}], "deals": deals, "consents": [consent]}),
        encoding="utf-8")
    return isrcs


def party_file(path: Path, n: int) -> Path:
    """A rights file holding one extra party, as a rights team imports by hand."""
    path.write_text(json.dumps({"schema_version": 1, "parties": [
        {"party_id": f"P-EXTRA-{n}", "name": f"Extra {n}", "isni": None, "ipi": None}], "deals": [], "consents": []}),
        encoding="utf-8")
    return path
