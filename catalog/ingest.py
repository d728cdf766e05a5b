"""Ingest a catalog delivery: probe every audio file, merge metadata, write tracks; quarantine the rest."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import ValidationError

from catalog.audio import AudioInfo, AudioProbeError, probe
from catalog.delivery import audio_files, is_audio_name, read_metadata
from schemas.catalog import Contributor, Track
from schemas.identifiers import normalize_isrc
from store.audit import record
from store.database import transaction


@dataclass
class IngestReport:
    delivery_id: str
    ingested: int = 0
    quarantined: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def track_id_for(isrc: str) -> str:
    return "trk_" + hashlib.sha256(isrc.encode()).hexdigest()[:16]


def party_id_for(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"P-{slug or hashlib.sha256(name.encode()).hexdigest()[:12]}"


def local_isrc(audio_sha256: str) -> str:
    """A well-formed placeholder ISRC (``ZZ`` country, registrant ``LNX``) for files delivered without one."""
    number = int(audio_sha256[:12], 16) % 10_000_000
    return f"ZZLNX{number // 100000 % 100:02d}{number % 100000:05d}"


def _split_names(value: str | None) -> list[str]:
    if not value:
        return []
    return [n.strip() for n in re.split(r";|/| & |, ", value) if n.strip()]


def _build_track(info: AudioInfo, rel: str, meta: dict[str, Any], delivery_id: str, now: datetime) -> Track:
    tags = info.tags
    raw_isrc = meta.get("isrc") or tags.get("ISRC") or tags.get("TSRC")
    assigned = not raw_isrc
    isrc = normalize_isrc(raw_isrc) if raw_isrc else local_isrc(info.sha256)
    artists = list(meta.get("artists") or _split_names(tags.get("ARTIST")))
    composers = list(meta.get("composers") or _split_names(tags.get("COMPOSER")))
    contributors = {(party_id_for(n), "MainArtist"): n for n in artists}
    contributors.update({(party_id_for(n), "Composer"): n for n in composers})
    return Track(
        track_id=track_id_for(isrc),
        delivery_id=delivery_id,
        isrc=isrc,
        isrc_assigned=assigned,
        title=meta.get("title") or tags.get("TITLE") or Path(rel).stem,
        artists=tuple(artists),
        album=meta.get("album") or tags.get("ALBUM"),
        license_tag=meta.get("license") or tags.get("LICENSE"),
        ai_generated=bool(meta.get("ai_generated") or tags.get("AI_GENERATED", "").lower() in {"1", "true", "yes"}),
        contributors=tuple(Contributor(party_id=p, name=n, role=r) for (p, r), n in sorted(contributors.items())),
        source_path=str(info.path),
        audio_sha256=info.sha256,
        bytes=info.bytes,
        duration_s=info.duration_s,
        codec=info.codec,
        sample_rate=info.sample_rate,
        channels=info.channels,
        tags=tags,
        ingested_at=now,
    )


def quarantine(con: duckdb.DuckDBPyConnection, *, delivery_id: str | None, stage: str, source_ref: str,
               reason_code: str, message: str) -> None:
    """Write a rejected input down with its reason; callers go on with the rest of the batch."""
    con.execute(
        "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?)",
        [delivery_id, stage, source_ref, reason_code, message, datetime.now(UTC)],
    )


def _write_track(con: duckdb.DuckDBPyConnection, track: Track) -> None:
    con.execute("DELETE FROM contributors WHERE track_id = ?", [track.track_id])
    con.execute("DELETE FROM tracks WHERE track_id = ?", [track.track_id])
    con.execute(
        "INSERT INTO tracks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [track.track_id, track.delivery_id, track.isrc, track.isrc_assigned, track.title, list(track.artists),
         track.album, track.license_tag, track.ai_generated, track.source_path, track.audio_sha256, track.bytes,
         track.duration_s, track.codec, track.sample_rate, track.channels, json.dumps(track.tags), track.ingested_at],
    )
    for c in track.contributors:
        con.execute("INSERT INTO contributors VALUES (?, ?, ?, ?)", [track.track_id, c.party_id, c.name, c.role])


def _settle_withdrawals(con: duckdb.DuckDBPyConnection, delivery_id: str, previous: dict[str, str],
                        written: set[str], now: datetime) -> list[str]:
    """Open a withdrawal for each track the delivery held before and no longer does; close re-delivered ones."""
    for track_id in sorted(written):
        con.execute("UPDATE track_withdrawals SET restored_at = ? WHERE track_id = ? AND restored_at IS NULL",
                    [now, track_id])
    gone = sorted(set(previous) - written)
    for track_id in gone:
        open_already = con.execute("SELECT 1 FROM track_withdrawals WHERE track_id = ? AND restored_at IS NULL",
                                   [track_id]).fetchone()
        if not open_already:
            con.execute("INSERT INTO track_withdrawals VALUES (?, ?, ?, ?, NULL)",
                        [track_id, delivery_id, now, f"{previous[track_id]}: not in the re-delivery "
                                                     "(removed, unreadable now, or delivered under another ISRC)"])
    return gone


def ingest_delivery(con: duckdb.DuckDBPyConnection, delivery_dir: Path, *, delivery_id: str, actor: str,
                    source: str | None = None, max_audio_bytes: int | None = None) -> IngestReport:
    """Ingest every audio file of a delivery. Bad files and records are quarantined; the rest goes on.

    Re-ingesting the same delivery replaces its tracks and quarantine rows, so a re-run converges.
    A track the delivery held before and no longer holds keeps its row (lineage needs it) and gets
    an open ``track_withdrawals`` entry, which the policy treats as a denial until it is re-delivered.
    Audio files over ``max_audio_bytes`` (default: :func:`catalog.audio.max_audio_bytes`) are
    quarantined unread, and so is anything under ``audio/`` that links outside it.
    """
    delivery_dir = Path(delivery_dir).resolve()
    audio_root = (delivery_dir / "audio").resolve()
    report = IngestReport(delivery_id)
    now = datetime.now(UTC)
    metadata, problems = read_metadata(delivery_dir)
    with transaction(con):
        con.execute("DELETE FROM quarantine WHERE delivery_id = ? AND stage = 'ingest'", [delivery_id])
        previous = {r[0]: r[1] for r in con.execute(
            "SELECT track_id, source_path FROM tracks WHERE delivery_id = ?", [delivery_id]).fetchall()}
        written: set[str] = set()
        seen_isrcs: dict[str, str] = {}
        manifest: list[tuple[str, str]] = []

        def reject(ref: str, code: str, message: str) -> None:
            quarantine(con, delivery_id=delivery_id, stage="ingest", source_ref=ref, reason_code=code, message=message)
            report.quarantined += 1
            report.by_reason[code] += 1
            report.errors.append(message)

        for problem in problems:
            reject(problem.source_ref, problem.reason_code, problem.message)
        described = set(metadata)
        contained = audio_root.is_relative_to(delivery_dir)
        if not contained:
            reject("audio", "path_escape", f"audio: the audio folder links outside the delivery ({audio_root})")
        for path in audio_files(delivery_dir) if contained else []:
            rel = path.relative_to(delivery_dir).as_posix()
            described.discard(rel)
            if not path.resolve().is_relative_to(audio_root):
                reject(rel, "path_escape", f"{rel}: links outside the delivery's audio/ folder")
                continue
            if not is_audio_name(path):
                reject(rel, "not_audio", f"{rel}: not an audio file type ({path.suffix or 'no extension'})")
                continue
            try:
                info = probe(path, max_bytes=max_audio_bytes)
                track = _build_track(info, rel, metadata.get(rel, {}), delivery_id, now)
            except AudioProbeError as exc:
                reject(rel, exc.reason_code, str(exc))
                continue
            except ValidationError as exc:
                first = exc.errors()[0]
                reject(rel, "invalid_metadata", f"{rel}: {'.'.join(map(str, first['loc']))}: {first['msg']}")
                continue
            except ValueError as exc:
                reject(rel, "invalid_identifier", f"{rel}: {exc}")
                continue
            if track.isrc in seen_isrcs:
                reject(rel, "duplicate_isrc", f"{rel}: ISRC {track.isrc} already used by {seen_isrcs[track.isrc]}")
                continue
            seen_isrcs[track.isrc] = rel
            _write_track(con, track)
            written.add(track.track_id)
            manifest.append((rel, track.audio_sha256))
            report.ingested += 1
        for rel in sorted(described):
            reject(rel, "missing_file", f"{rel}: described in metadata but not delivered")
        withdrawn = _settle_withdrawals(con, delivery_id, previous, written, now)
        manifest_sha = hashlib.sha256(json.dumps(sorted(manifest)).encode()).hexdigest()
        con.execute("DELETE FROM deliveries WHERE delivery_id = ?", [delivery_id])
        con.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?)",
            [delivery_id, source or str(delivery_dir), now, manifest_sha, report.ingested, report.quarantined],
        )
        record(con, actor=actor, action="ingest", subject=f"delivery:{delivery_id}",
               payload={"manifest_sha256": manifest_sha, "tracks": report.ingested,
                        "quarantined": dict(report.by_reason), "withdrawn": withdrawn})
    return report
