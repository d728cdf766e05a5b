"""The attribution statement: samples seen per track and per rights holder, from recorded exposure.

Per-holder numbers apply the ownership shares in ``rights_controllers`` for the deal behind each
track's release decision. They are kept in thousandths of a sample and apportioned per track with
the largest-remainder method, so every column sums exactly to the samples consumed. A share not
covered by any recorded controller is credited to ``unattributed`` rather than spread over the rest.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from schemas.runs import AttributionStatement, HolderExposure, TrackExposure
from store.ledger import Writer

UNATTRIBUTED = "unattributed"
MILLI = 1000


def _apportion(total: int, weights: dict[str, Fraction]) -> dict[str, int]:
    """Split an integer ``total`` in proportion to ``weights`` so the parts sum exactly to it."""
    weight_sum = sum(weights.values(), Fraction(0))
    if weight_sum == 0:
        return {UNATTRIBUTED: total}
    exact = {key: total * w / weight_sum for key, w in weights.items()}
    parts = {key: int(value) for key, value in exact.items()}
    leftover = total - sum(parts.values())
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - parts[k]), k))
    for key in by_remainder[:leftover]:
        parts[key] += 1
    return parts


def _holder_weights(shares: list[tuple[str, float]]) -> dict[str, Fraction]:
    weights: dict[str, Fraction] = defaultdict(Fraction)
    for party_id, share in shares:
        if share > 0:
            weights[party_id] += Fraction(str(share))
    covered = sum(weights.values(), Fraction(0))
    if covered < 100:
        weights[UNATTRIBUTED] += Fraction(100) - covered
    return dict(weights)


def build_statement(con: duckdb.DuckDBPyConnection, *, run_id: str, release_id: str,
                    manifest_sha256: str | None, exposure: pa.Table) -> AttributionStatement:
    """Aggregate one run's exposure rows into per-track and per-holder totals."""
    sample_ids: list[str] = []
    epochs = ranks = 0
    if exposure.num_rows:
        rows = exposure.filter(pc.equal(exposure["run_id"], run_id))
        sample_ids = rows.column("sample_id").to_pylist()
        epochs = len(set(rows.column("epoch").to_pylist()))
        ranks = len(set(rows.column("rank").to_pylist()))
    per_track: Counter[str] = Counter(sid.rsplit(":", 1)[0] for sid in sample_ids)
    total = sum(per_track.values())

    meta = {
        track_id: (isrc, title, deal_id)
        for track_id, isrc, title, deal_id in con.execute(
            """
            SELECT rt.track_id, rt.isrc, t.title, d.deal_id
            FROM release_tracks rt
            LEFT JOIN tracks t ON t.track_id = rt.track_id
            LEFT JOIN decisions d ON d.decision_id = rt.decision_id
            WHERE rt.release_id = ?
            """,
            [release_id],
        ).fetchall()
    }
    controllers: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for deal_id, isrc, party_id, share in con.execute(
        "SELECT deal_id, isrc, party_id, share FROM rights_controllers"
    ).fetchall():
        controllers[(deal_id, isrc)].append((party_id, share))
    names = dict(con.execute("SELECT party_id, name FROM parties").fetchall())
    names[UNATTRIBUTED] = "No recorded rights controller share"

    tracks: list[TrackExposure] = []
    holder_milli: Counter[str] = Counter()
    holder_tracks: Counter[str] = Counter()
    for track_id in sorted(per_track):
        samples = per_track[track_id]
        isrc, title, deal_id = meta.get(track_id, ("", None, None))
        tracks.append(TrackExposure(track_id=track_id, isrc=isrc, title=title, samples=samples,
                                    fraction=samples / total))
        weights = _holder_weights(controllers.get((deal_id, isrc), []) if deal_id else [])
        for party_id, milli in _apportion(samples * MILLI, weights).items():
            if milli:
                holder_milli[party_id] += milli
                holder_tracks[party_id] += 1
    holders = tuple(
        HolderExposure(party_id=party_id, name=names.get(party_id, party_id), tracks=holder_tracks[party_id],
                       samples_milli=milli, samples=milli / MILLI, fraction=milli / (total * MILLI))
        for party_id, milli in sorted(holder_milli.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return AttributionStatement(run_id=run_id, release_id=release_id, manifest_sha256=manifest_sha256,
                                total_samples=total, epochs=epochs, ranks=ranks, tracks=tuple(tracks),
                                rights_holders=holders)


def _milli_text(milli: int) -> str:
    return f"{milli // MILLI}.{milli % MILLI:03d}"


def tracks_csv(statement: AttributionStatement) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["track_id", "isrc", "title", "samples", "fraction"])
    for t in statement.tracks:
        writer.writerow([t.track_id, t.isrc, t.title or "", t.samples, f"{t.fraction:.9f}"])
    return out.getvalue()


def holders_csv(statement: AttributionStatement) -> str:
    """Per-holder rows; ``samples`` is exact to the thousandth, so the column sums to the total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["party_id", "name", "tracks", "samples", "fraction"])
    for h in statement.rights_holders:
        writer.writerow([h.party_id, h.name, h.tracks, _milli_text(h.samples_milli), f"{h.fraction:.9f}"])
    return out.getvalue()


def write_statement(statement: AttributionStatement, directory: Path) -> dict[str, Path]:
    """Export the statement as JSON and two CSVs (per track, per rights holder) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / "attribution.json",
        "tracks_csv": directory / "attribution_tracks.csv",
        "holders_csv": directory / "attribution_holders.csv",
    }
    paths["json"].write_text(json.dumps(statement.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    paths["tracks_csv"].write_text(tracks_csv(statement), encoding="utf-8")
    paths["holders_csv"].write_text(holders_csv(statement), encoding="utf-8")
    return paths


def record_statement(w: Writer, statement: AttributionStatement) -> None:
    """Replace the run's rows in ``training_exposure`` and ``training_attribution`` (earlier ones go to history)."""
    for table in ("training_exposure", "training_attribution"):
        w.supersede(table, "run_id = ?", [statement.run_id])
    w.insert("training_exposure", [{"run_id": statement.run_id, "track_id": t.track_id, "isrc": t.isrc,
                                    "samples": t.samples, "fraction": t.fraction} for t in statement.tracks])
    w.insert("training_attribution", [{"run_id": statement.run_id, "party_id": h.party_id, "name": h.name,
                                       "tracks": h.tracks, "samples_milli": h.samples_milli, "fraction": h.fraction}
                                      for h in statement.rights_holders])
