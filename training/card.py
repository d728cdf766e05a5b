"""Model cards whose data section is generated from lineage, never typed by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from schemas.runs import AttributionStatement, ModelCard, ModelCardData, RunRecord


def card_data(con: duckdb.DuckDBPyConnection, record: RunRecord, statement: AttributionStatement) -> ModelCardData:
    """Release, purpose, policy, counts and licenses of the data a run actually trained on."""
    release = con.execute(
        "SELECT purpose, territory, policy_hash FROM releases WHERE release_id = ?", [record.release_id]
    ).fetchone()
    in_release = con.execute(
        "SELECT count(*) FROM release_tracks WHERE release_id = ?", [record.release_id]
    ).fetchone()
    seen = [t.track_id for t in statement.tracks]
    licenses: list[str] = []
    if seen:
        rows = con.execute(
            """
            SELECT DISTINCT coalesce(dl.license, t.license_tag, 'unknown')
            FROM release_tracks rt
            LEFT JOIN decisions d ON d.decision_id = rt.decision_id
            LEFT JOIN deals dl ON dl.deal_id = d.deal_id
            LEFT JOIN tracks t ON t.track_id = rt.track_id
            WHERE rt.release_id = ? AND list_contains(?, rt.track_id)
            ORDER BY 1
            """,
            [record.release_id, seen],
        ).fetchall()
        licenses = [row[0] for row in rows]
    holders = [h for h in statement.rights_holders if h.party_id != "unattributed"]
    return ModelCardData(
        release_id=record.release_id,
        purpose=release[0] if release else None,
        territory=release[1] if release else None,
        policy_hash=record.policy_hash or (release[2] if release else None),
        manifest_uri=record.manifest_uri,
        manifest_sha256=record.manifest_sha256,
        tracks_in_release=int(in_release[0]) if in_release else 0,
        tracks_seen=len(seen),
        rights_holders=len(holders),
        licenses=tuple(licenses),
        samples_consumed=statement.total_samples,
        acknowledgement=record.acknowledgement,
    )


def build_card(con: duckdb.DuckDBPyConnection, record: RunRecord, statement: AttributionStatement) -> ModelCard:
    return ModelCard(
        run_id=record.run_id, model=record.config.model if record.script is None else f"script:{record.script}",
        checkpoint_uri=record.checkpoint_uri, checkpoint_sha256=record.checkpoint_sha256, code=record.code,
        torch_version=record.torch_version, device=record.device, config=record.config, metrics=record.metrics,
        data=card_data(con, record, statement), generated_at=datetime.now(UTC),
    )


def render_markdown(card: ModelCard, statement: AttributionStatement, top: int = 20) -> str:
    """The human-readable card; the JSON twin carries the same facts."""
    d = card.data
    lines = [
        f"# Model card: {card.run_id}",
        "",
        f"- Model: `{card.model}`",
        f"- Checkpoint: `{card.checkpoint_uri}` (sha256 `{card.checkpoint_sha256}`)",
        f"- Code: `{card.code.commit}`" + (" (uncommitted changes)" if card.code.dirty else ""),
        f"- torch {card.torch_version} on {card.device}",
        f"- Config: epochs {card.config.epochs}, batch size {card.config.batch_size}, "
        f"learning rate {card.config.learning_rate}, seed {card.config.seed}, processes {card.config.nproc}",
        "",
        "## Training data (generated from lineage)",
        "",
        f"- Release: `{d.release_id}` for purpose `{d.purpose}` in `{d.territory}`",
        f"- Policy hash: `{d.policy_hash}`",
        f"- Shard manifest: `{d.manifest_uri}` (sha256 `{d.manifest_sha256}`)",
        f"- Tracks: {d.tracks_seen} seen of {d.tracks_in_release} in the release",
        f"- Rights holders: {d.rights_holders}",
        f"- Licenses: {', '.join(d.licenses) or 'none'}",
        f"- Samples consumed (all ranks and epochs): {d.samples_consumed}",
    ]
    if d.acknowledgement:
        a = d.acknowledgement
        lines += ["", f"**Trained despite {len(a.track_ids)} track(s) denied after approval**, acknowledged by "
                  f"{a.actor}: {a.reason}"]
    lines += ["", "## Metrics", "", "| epoch | steps | samples | other |", "|---|---|---|---|"]
    for m in card.metrics:
        extra = {k: v for k, v in m.model_dump().items() if k not in ("epoch", "steps", "samples")}
        other = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(extra.items()))
        lines.append(f"| {m.epoch} | {m.steps} | {m.samples} | {other} |")
    lines += ["", "## Attribution (top rights holders)", "", "| rights holder | tracks | samples | share |",
              "|---|---|---|---|"]
    for h in statement.rights_holders[:top]:
        lines.append(f"| {h.name} (`{h.party_id}`) | {h.tracks} | {h.samples:.3f} | {h.fraction:.2%} |")
    lines += ["", "Full statement: `attribution.json`, `attribution_tracks.csv`, `attribution_holders.csv`.", ""]
    return "\n".join(lines)


def write_card(card: ModelCard, statement: AttributionStatement, directory: Path) -> dict[str, Path]:
    paths = {"md": directory / "MODEL_CARD.md", "json": directory / "model_card.json"}
    paths["md"].write_text(render_markdown(card, statement), encoding="utf-8")
    paths["json"].write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    return paths
