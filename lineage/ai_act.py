"""EU AI Act public summary of training content for a model, generated from lineage.

Follows the sections of the AI Office's template for the public summary of training content
(July 2025): 1 general information (provider, model, modalities, training data size per
modality), 2 list of data sources (publicly available datasets, private licensed data, data
crawled or scraped online, user data, synthetic data, other), 3 data processing aspects (respect
of reservations of rights / opt-outs, removal of unwanted content). Every figure is read from the
ledger: nothing is typed by hand.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict

from lineage.trace import TraceNotFound
from store.digest import sha256_file
from store.ledger import command
from store.paths import ledger_ref
from store.roles import Principal, RoleBook

TEMPLATE = "AI Office template for the public summary of training content for general-purpose AI models (July 2025)"


class AiActSummary(BaseModel):
    """The summary as data; :func:`render_markdown` writes the human version of the same values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1
    template: str = TEMPLATE
    generated_at: datetime
    general_information: dict[str, Any]
    data_sources: dict[str, Any]
    data_processing: dict[str, Any]


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> Any:
    row = con.execute(sql, params).fetchone()
    return row[0] if row else None


def build_summary(con: duckdb.DuckDBPyConnection, run_id: str, *, provider: str, contact: str | None = None,
                  model_name: str | None = None) -> AiActSummary:
    """The public summary of the data a training run actually consumed."""
    run = con.execute("SELECT release_id, model, status, started_at, ended_at, samples_consumed, manifest_uri, "
                      "manifest_sha256, policy_hash, config FROM training_runs WHERE run_id = ?", [run_id]).fetchone()
    if run is None:
        raise TraceNotFound(f"training run {run_id} does not exist")
    release_id, model, status, started_at, ended_at, samples, manifest_uri, manifest_sha, policy_hash, _ = run
    release = con.execute("SELECT purpose, territory, on_date, policy_hash FROM releases WHERE release_id = ?",
                          [release_id]).fetchone()
    purpose, territory, on_date, release_policy = release if release else (None, None, None, None)
    config = con.execute("SELECT config FROM shard_builds WHERE manifest_uri = ? OR manifest_sha256 = ? "
                         "ORDER BY built_at DESC LIMIT 1", [manifest_uri, manifest_sha]).fetchone()
    crop_s = float(json.loads(config[0]).get("crop_seconds", 4.0)) if config else 4.0
    used = con.execute("""
        SELECT count(*) AS tracks, coalesce(sum(t.duration_s), 0) AS seconds, max(dv.received_at) AS latest,
               min(dv.received_at) AS earliest
        FROM training_exposure e JOIN tracks t USING (track_id) LEFT JOIN deliveries dv USING (delivery_id)
        WHERE e.run_id = ?""", [run_id]).fetchone()
    tracks_used, source_seconds, latest, earliest = used if used else (0, 0.0, None, None)
    deliveries = [dict(zip(("delivery_id", "received_at", "tracks_used"), r, strict=True)) for r in con.execute("""
        SELECT t.delivery_id, any_value(dv.received_at), count(*)
        FROM training_exposure e JOIN tracks t USING (track_id) LEFT JOIN deliveries dv USING (delivery_id)
        WHERE e.run_id = ? GROUP BY ALL ORDER BY 1""", [run_id]).fetchall()]
    licensors = [dict(zip(("licensor", "name", "license", "tracks"), r, strict=True)) for r in con.execute("""
        SELECT dl.licensor_party_id, coalesce(p.name, dl.licensor_party_id), coalesce(dl.license, 'unspecified'),
               count(*)
        FROM training_exposure e
        JOIN release_tracks rt ON rt.release_id = ? AND rt.track_id = e.track_id
        JOIN decisions d ON d.decision_id = rt.decision_id JOIN deals dl ON dl.deal_id = d.deal_id
        LEFT JOIN parties p ON p.party_id = dl.licensor_party_id
        WHERE e.run_id = ? GROUP BY ALL ORDER BY 4 DESC, 1""", [release_id, run_id]).fetchall()]
    key = [purpose, territory, on_date, release_policy]
    denied = dict(con.execute("""
        SELECT code, count(*) FROM current_decisions c JOIN decisions d USING (decision_id), unnest(d.reason_codes) u(code)
        WHERE c.purpose = ? AND c.territory = ? AND c.on_date = ? AND c.policy_hash = ? AND NOT c.allowed
        GROUP BY code ORDER BY 2 DESC, code""", key).fetchall())
    evaluated = _one(con, "SELECT count(*) FROM current_decisions WHERE purpose = ? AND territory = ? AND "
                          "on_date = ? AND policy_hash = ?", key) or 0
    optout_entries = _one(con, "SELECT count(*) FROM optout_registry", []) or 0
    optout_hits = con.execute("SELECT count(DISTINCT track_id) FROM audio_matches "
                              "WHERE kind = 'optout' AND score >= threshold", []).fetchone()
    # Each method scores on its own scale (Chromaprint 0..1, landmarks in agreeing hashes); Chromaprint holds
    # a short overlap to a higher threshold, so every threshold a recorded match was held to is listed.
    thresholds = dict(con.execute("SELECT coalesce(method, 'chromaprint'), list(DISTINCT threshold ORDER BY threshold) "
                                  "FROM audio_matches WHERE kind = 'optout' GROUP BY ALL ORDER BY ALL", []).fetchall())
    consents = con.execute("SELECT count(*), count(*) FILTER (WHERE revoked_at IS NOT NULL) FROM consents").fetchone()
    quarantined = dict(con.execute("SELECT stage || ':' || reason_code, count(*) FROM quarantine GROUP BY ALL "
                                   "ORDER BY ALL").fetchall())
    excluded = dict(con.execute("SELECT reason_code, count(*) FROM shard_exclusions WHERE release_id = ? "
                                "GROUP BY ALL ORDER BY ALL", [release_id]).fetchall())
    duplicates = _one(con, "SELECT count(DISTINCT cluster_id) FROM duplicate_clusters", []) or 0
    audio_hours = samples * crop_s / 3600

    general = {
        "provider": {"name": provider, "contact": contact},
        "model": {"name": model_name or model, "training_run": run_id, "status": status,
                  "training_started": started_at, "training_ended": ended_at},
        "modalities": ["audio"],
        "training_data_size": {"audio": {
            "samples_consumed": samples, "crop_seconds": crop_s, "audio_hours_consumed": round(audio_hours, 4),
            "recordings": tracks_used, "source_audio_hours": round(float(source_seconds) / 3600, 4),
            "size_band": "less than 1,000 hours" if audio_hours < 1000 else "1,000 hours or more"}},
        "content_types": "music recordings (sound recordings and the underlying musical works)",
        "data_acquisition_period": {"earliest_delivery": earliest, "latest_delivery": latest},
    }
    sources = {
        "publicly_available_datasets": {"used": False, "datasets": []},
        "private_datasets_from_third_parties": {
            "used": tracks_used > 0,
            "commercially_licensed_by_rightsholders": {
                "description": "catalog deliveries licensed by the rights holders for this AI use, "
                               f"frozen in release {release_id} and approved by the rights team",
                "deliveries": deliveries, "licensors": licensors},
            "other_private_datasets": []},
        "crawled_or_scraped_online": {"used": False, "crawlers": [], "note": "no data was crawled or scraped"},
        "user_data": {"used": False},
        "synthetic_data": {"used": False, "note": "recordings declared AI-generated are excluded by policy "
                                                  f"({denied.get('ai_generated', 0)} excluded for this release)"},
        "other_sources": [],
    }
    processing = {
        "rights_reservations": {
            "policy": {"deny_by_default": True, "policy_hash": release_policy or policy_hash, "purpose": purpose,
                       "territory": territory, "on_date": on_date},
            "measures": [
                "Every recording needs a license (deal) naming this AI use, in force and covering the territory.",
                "Every required contributor needs a recorded consent allowing this use; a refusal or revocation "
                "denies the recording.",
                "Audio is fingerprinted twice (Chromaprint, and spectral-peak landmarks that survive band-limiting, "
                "mixing and speed changes) and matched against the opt-out registry; a match above either method's "
                "threshold denies the recording whatever its metadata says.",
                "Only recordings allowed by these rules are frozen into a release; the rights team approves it; "
                "shards, training and this summary are built from that release only.",
            ],
            "catalog_evaluated": evaluated, "denied_by_reason": denied,
            "opt_out_registry": {"entries": optout_entries, "recordings_matched": optout_hits[0] if optout_hits else 0,
                                 "match_thresholds": thresholds},
            "consents": {"recorded": consents[0] if consents else 0, "revoked": consents[1] if consents else 0},
        },
        "removal_of_unwanted_content": {
            "quarantined_at_ingest_or_fingerprinting": quarantined,
            "duplicate_clusters": duplicates,
            "excluded_when_cutting_shards": excluded,
        },
        "other_information": {"shard_manifest": manifest_uri, "shard_manifest_sha256": manifest_sha},
    }
    return AiActSummary(generated_at=datetime.now(UTC), general_information=general, data_sources=sources,
                        data_processing=processing)


def _yes(flag: bool) -> str:
    return "Yes" if flag else "No"


def render_markdown(s: AiActSummary) -> str:
    """The summary as Markdown, in the template's section order."""
    g, d, p = s.general_information, s.data_sources, s.data_processing
    size = g["training_data_size"]["audio"]
    lic = d["private_datasets_from_third_parties"]["commercially_licensed_by_rightsholders"]
    rr = p["rights_reservations"]
    removal = p["removal_of_unwanted_content"]
    lines = [
        f"# Public summary of training content: {g['model']['name']}", "",
        f"Following the {s.template}. Generated from lineage records on {s.generated_at:%Y-%m-%d %H:%M} UTC.", "",
        "## 1. General information", "",
        f"- **1.1 Provider:** {g['provider']['name']}" + (f" ({g['provider']['contact']})" if g['provider']['contact']
                                                          else ""),
        f"- **1.2 Model:** {g['model']['name']}, training run `{g['model']['training_run']}` "
        f"({g['model']['status']}, {g['model']['training_started']} to {g['model']['training_ended']})",
        f"- **1.3 Modalities:** {', '.join(g['modalities'])}; content: {g['content_types']}",
        f"- **Training data size (audio):** {size['samples_consumed']} samples of {size['crop_seconds']:g} s "
        f"({size['audio_hours_consumed']} hours, band: {size['size_band']}) cut from {size['recordings']} "
        f"recordings ({size['source_audio_hours']} hours of source audio)",
        f"- **Data acquisition period:** {g['data_acquisition_period']['earliest_delivery']} to "
        f"{g['data_acquisition_period']['latest_delivery']}", "",
        "## 2. List of data sources", "",
        f"### 2.1 Publicly available datasets: {_yes(d['publicly_available_datasets']['used'])}", "",
        "### 2.2 Private non-publicly available datasets obtained from third parties: "
        f"{_yes(d['private_datasets_from_third_parties']['used'])}", "",
        f"2.2.1 Datasets commercially licensed by rights holders: {lic['description']}.", "",
        "| delivery | received | recordings used |", "| --- | --- | --- |",
        *[f"| {x['delivery_id']} | {x['received_at']} | {x['tracks_used']} |" for x in lic["deliveries"]], "",
        "| licensor | license | recordings used |", "| --- | --- | --- |",
        *[f"| {x['name']} ({x['licensor']}) | {x['license']} | {x['tracks']} |" for x in lic["licensors"]], "",
        f"### 2.3 Data crawled or scraped from online sources: {_yes(d['crawled_or_scraped_online']['used'])}", "",
        f"### 2.4 User data: {_yes(d['user_data']['used'])}", "",
        f"### 2.5 Synthetic data: {_yes(d['synthetic_data']['used'])}; {d['synthetic_data']['note']}", "",
        f"### 2.6 Other sources of data: {'None' if not d['other_sources'] else d['other_sources']}", "",
        "## 3. Data processing aspects", "",
        "### 3.1 Respect of reservations of rights (opt-outs)", "",
        f"Policy `{rr['policy']['policy_hash']}` for {rr['policy']['purpose']} in {rr['policy']['territory']} on "
        f"{rr['policy']['on_date']}, deny by default:", "",
        *[f"- {m}" for m in rr["measures"]], "",
        f"Of {rr['catalog_evaluated']} catalog recordings evaluated, denied by reason: "
        f"{', '.join(f'{k} {v}' for k, v in rr['denied_by_reason'].items()) or 'none'}. Opt-out registry: "
        f"{rr['opt_out_registry']['entries']} entries, {rr['opt_out_registry']['recordings_matched']} catalog "
        f"recording(s) matched (thresholds: {_thresholds(rr['opt_out_registry']['match_thresholds'])}). "
        "Consents recorded: "
        f"{rr['consents']['recorded']} ({rr['consents']['revoked']} revoked).", "",
        "### 3.2 Removal of unwanted content", "",
        f"- quarantined at ingest or fingerprinting: {removal['quarantined_at_ingest_or_fingerprinting'] or 'none'}",
        f"- duplicate clusters resolved before release: {removal['duplicate_clusters']}",
        f"- excluded when cutting shards: {removal['excluded_when_cutting_shards'] or 'none'}",
        "", "### 3.3 Other information", "",
        f"Shard manifest `{p['other_information']['shard_manifest']}` (sha256 "
        f"`{p['other_information']['shard_manifest_sha256']}`).", "",
    ]
    return "\n".join(lines)


def write_summary(summary: AiActSummary, directory: Path) -> dict[str, Path]:
    """Write ``ai_act_summary.json`` and ``ai_act_summary.md`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "ai_act_summary.json", "markdown": directory / "ai_act_summary.md"}
    paths["json"].write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(summary), encoding="utf-8")
    return paths


def export_summary(con: duckdb.DuckDBPyConnection, run_id: str, directory: Path, *, actor: Principal | str,
                   provider: str, contact: str | None = None, model_name: str | None = None,
                   roles: RoleBook | None = None) -> tuple[AiActSummary, dict[str, Path]]:
    """Build and write the summary as the audited ``audit.export`` command (the files' hashes in its entry)."""
    with command(con, actor, "audit.export", run_id, roles=roles) as w:
        summary = build_summary(con, run_id, provider=provider, contact=contact, model_name=model_name)
        paths = write_summary(summary, directory)
        w.payload.update({"export": "ai_act_summary",
                          "files": {k: {"path": ledger_ref(con, p), "sha256": sha256_file(p)} for k, p in paths.items()}})
    return summary, paths


def _thresholds(by_method: dict[str, list[float]]) -> str:
    return ", ".join(f"{method} {' / '.join(f'{v:g}' for v in values)}" for method, values in by_method.items()
                     ) or "no matches recorded"
