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
from store.ledger import Writer, command
from store.paths import ledger_ref
from store.quarantine import Rejection, quarantine, resolve_stage
from store.roles import Principal, RoleBook


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


def _write_track(w: Writer, track: Track) -> None:
    """The track's new version; a re-delivery replaces the old one (kept in history) and its contributors.

    A track delivered again unchanged keeps its row (and its original ``ingested_at``).
    """
    row = {"track_id": track.track_id, "delivery_id": track.delivery_id, "isrc": track.isrc,
           "isrc_assigned": track.isrc_assigned, "title": track.title, "artists": list(track.artists),
           "album": track.album, "license_tag": track.license_tag, "ai_generated": track.ai_generated,
           "source_path": ledger_ref(w.con, track.source_path), "audio_sha256": track.audio_sha256,
           "bytes": track.bytes, "duration_s": track.duration_s, "codec": track.codec,
           "sample_rate": track.sample_rate, "channels": track.channels, "tags": json.dumps(track.tags),
           "ingested_at": track.ingested_at}
    before = w.con.execute("SELECT ingested_at FROM tracks WHERE track_id = ?", [track.track_id]).fetchone()
    if before is None or not w.unchanged("tracks", row | {"ingested_at": before[0]}, key=["track_id"]):
        w.upsert("tracks", [row], key=["track_id"])
    wanted = {(c.party_id, c.role) for c in track.contributors}
    have = set(w.con.execute("SELECT party_id, role FROM contributors WHERE track_id = ?", [track.track_id]).fetchall())
    for party_id, role in sorted(have - wanted):
        w.supersede("contributors", "track_id = ? AND party_id = ? AND role = ?", [track.track_id, party_id, role])
    w.upsert("contributors", [{"track_id": track.track_id, "party_id": c.party_id, "name": c.name, "role": c.role}
                              for c in track.contributors], key=["track_id", "party_id", "role"])


def _settle_withdrawals(w: Writer, delivery_id: str, previous: dict[str, str], written: set[str],
                        now: datetime) -> list[str]:
    """Open a withdrawal for each track the delivery held before and no longer does; close re-delivered ones."""
    if written:
        # a label's takedown (delivery_id ddex:...) is lifted by rights data only, not by audio arriving again
        w.update("track_withdrawals", "track_id IN (SELECT unnest(?::VARCHAR[])) AND restored_at IS NULL "
                 "AND NOT starts_with(delivery_id, 'ddex:')", [sorted(written)], {"restored_at": now})
    gone = sorted(set(previous) - written)
    open_already = {r[0] for r in w.con.execute(
        "SELECT track_id FROM track_withdrawals WHERE restored_at IS NULL").fetchall()}
    w.insert("track_withdrawals", [
        {"track_id": track_id, "delivery_id": delivery_id, "withdrawn_at": now,
         "reason": f"{previous[track_id]}: not in the re-delivery (removed, unreadable now, or delivered under "
                   "another ISRC)", "restored_at": None}
        for track_id in gone if track_id not in open_already])
    return gone


def ingest_delivery(con: duckdb.DuckDBPyConnection, delivery_dir: Path, *, delivery_id: str,
                    actor: Principal | str, source: str | None = None, max_audio_bytes: int | None = None,
                    roles: RoleBook | None = None) -> IngestReport:
    """Ingest every audio file of a delivery. Bad files and records are quarantined; the rest goes on.

    Re-ingesting the same delivery gives its tracks new versions (the old ones stay in history) and
    retires its earlier quarantine rows, so a re-run converges. A track the delivery held before
    and no longer holds keeps its row (lineage needs it) and gets an open ``track_withdrawals``
    entry, which the policy treats as a denial until it is re-delivered. Audio files over
    ``max_audio_bytes`` (default: :func:`catalog.audio.max_audio_bytes`) are quarantined unread, and
    so is anything under ``audio/`` that links outside it. Needs ``catalog.ingest``.
    """
    delivery_dir = Path(delivery_dir).resolve()
    audio_root = (delivery_dir / "audio").resolve()
    report = IngestReport(delivery_id)
    now = datetime.now(UTC)
    metadata, problems = read_metadata(delivery_dir)
    with command(con, actor, "catalog.ingest", f"delivery:{delivery_id}", roles=roles) as w:
        resolve_stage(w, stage="ingest", delivery_id=delivery_id)
        previous = {r[0]: r[1] for r in con.execute(
            "SELECT track_id, source_path FROM tracks WHERE delivery_id = ?", [delivery_id]).fetchall()}
        written: set[str] = set()
        seen_isrcs: dict[str, str] = {}
        manifest: list[tuple[str, str]] = []
        rejected: list[Rejection] = []

        def reject(ref: str, code: str, message: str) -> None:
            rejected.append(Rejection(ref, code, message))
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
            _write_track(w, track)
            written.add(track.track_id)
            manifest.append((rel, track.audio_sha256))
            report.ingested += 1
        for rel in sorted(described):
            reject(rel, "missing_file", f"{rel}: described in metadata but not delivered")
        quarantine(w, rejected, stage="ingest", delivery_id=delivery_id)
        withdrawn = _settle_withdrawals(w, delivery_id, previous, written, now)
        manifest_sha = hashlib.sha256(json.dumps(sorted(manifest)).encode()).hexdigest()
        w.upsert("deliveries", [{"delivery_id": delivery_id, "source": ledger_ref(con, source or delivery_dir),
                                 "received_at": now, "manifest_sha256": manifest_sha, "track_count": report.ingested,
                                 "quarantined_count": report.quarantined}], key=["delivery_id"])
        w.payload.update({"manifest_sha256": manifest_sha, "tracks": report.ingested,
                          "quarantined": dict(report.by_reason), "withdrawn": withdrawn})
    return report
