"""Fingerprints, the opt-out registry and audio matches in the DuckDB ledger.

Every audio-identity decision is written with its evidence (score, the threshold it was
held to, offset, overlapping span, bit error rate) so a denial can be explained later.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from fingerprinting.batch import FingerprintOutcome, fingerprint_many
from fingerprinting.chromaprint import ITEM_SECONDS, FingerprintError, fingerprint_file
from fingerprinting.index import FingerprintIndex, Match, item_digest
from schemas.canonical import canonical_json, sha256_text
from schemas.identifiers import normalize_isrc
from store.audit import record
from store.database import transaction
from store.digest import sha256_file

SCHEMA_VERSION = 1
# score = 1 - 2*BER. Transformed copies and excerpts of the demo catalog score >= 0.85;
# distinct recordings stay below 0.6 (see bench/results/fingerprint.md).
MATCH_THRESHOLD = 0.7
MIN_SPAN_S = 10.0
SHORT_SPAN_FLOOR_S = 2.0
TRACK_PREFIX = "track:"
OPTOUT_PREFIX = "optout:"
DEFAULT_ACTOR = "linernotes.fingerprinting"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreSummary(_Frozen):
    """What :func:`store_fingerprints` wrote."""

    schema_version: int = SCHEMA_VERSION
    delivery_id: str
    stored: int
    quarantined: int
    by_reason: dict[str, int]


class OptOut(_Frozen):
    """A recording whose rights holder has opted out of AI training."""

    schema_version: int = SCHEMA_VERSION
    optout_id: str
    claimant: str
    isrc: str | None = None
    title: str | None = None
    note: str | None = None
    audio_sha256: str
    duration_s: float
    item_count: int


class AudioMatch(_Frozen):
    """Evidence that a catalog track's audio matches another recording."""

    schema_version: int = SCHEMA_VERSION
    track_id: str
    kind: Literal["optout", "duplicate"]
    matched_ref: str
    score: float
    threshold: float
    offset_s: float
    span_s: float
    bit_error_rate: float
    query_start_s: float
    ref_start_s: float
    votes: int


class MatchSummary(_Frozen):
    """What :func:`match_catalog` found."""

    schema_version: int = SCHEMA_VERSION
    tracks: int
    optouts: int
    index_added: int
    index_removed: int
    optout_matches: int
    tracks_denied_by_optout: int
    duplicate_pairs: int
    duplicate_clusters: int
    tracks_in_clusters: int
    threshold: float
    min_span_s: float


def is_match(m: Match, query_length_s: float, *, threshold: float = MATCH_THRESHOLD,
             min_span_s: float = MIN_SPAN_S) -> bool:
    """Whether a query result is strong enough to act on.

    The overlap must reach ``min_span_s``, or 80% of the shorter recording when that is
    shorter (a 6-second jingle can still be recognised), and never less than 2 s.
    """
    shorter = min(query_length_s, m.ref_length_s or query_length_s)
    needed = min(min_span_s, max(SHORT_SPAN_FLOOR_S, 0.8 * shorter))
    return m.score >= threshold and m.span_s >= needed


def _now() -> datetime:
    return datetime.now(UTC)


def store_fingerprints(con: duckdb.DuckDBPyConnection, outcomes_with_track_ids: Iterable[tuple[str, FingerprintOutcome]],
                       delivery_id: str, *, actor: str = DEFAULT_ACTOR) -> StoreSummary:
    """Write fingerprints, and quarantine rows for files that could not be fingerprinted.

    Re-running for the same tracks replaces their rows: a track that now fails loses its
    old fingerprint, so nothing downstream matches on audio we can no longer read.
    """
    now = _now()
    good: dict[str, FingerprintOutcome] = {}
    bad: dict[str, FingerprintOutcome] = {}
    for track_id, outcome in outcomes_with_track_ids:
        (good if outcome.ok else bad)[track_id] = outcome
        (bad if outcome.ok else good).pop(track_id, None)
    touched = sorted([*good, *bad])
    with transaction(con):
        if touched:
            ids = pa.table({"track_id": pa.array(touched, pa.string())})
            con.register("_fp_touched", ids)
            con.execute("DELETE FROM fingerprints WHERE track_id IN (SELECT track_id FROM _fp_touched)")
            con.execute("DELETE FROM quarantine WHERE stage = 'fingerprint' AND delivery_id = ? "
                        "AND source_ref IN (SELECT track_id FROM _fp_touched)", [delivery_id])
            con.unregister("_fp_touched")
        if good:
            rows = {k: [] for k in ("track_id", "algorithm", "duration_s", "seconds_used", "items", "fingerprint",
                                    "computed_at", "delivery_id", "source_path", "items_sha256")}
            for track_id, outcome in good.items():
                fp = outcome.fingerprint
                if fp is None:
                    continue
                for key, value in (("track_id", track_id), ("algorithm", fp.algorithm), ("duration_s", fp.duration_s),
                                   ("seconds_used", fp.seconds_used), ("items", fp.items),
                                   ("fingerprint", fp.encoded()), ("computed_at", now), ("delivery_id", delivery_id),
                                   ("source_path", str(outcome.path)), ("items_sha256", item_digest(fp.items))):
                    rows[key].append(value)
            table = pa.table({
                **{k: v for k, v in rows.items() if k != "items"},
                "items": pa.array([np.asarray(v, dtype=np.uint32) for v in rows["items"]], pa.list_(pa.uint32())),
            })
            con.register("_fp_new", table)
            con.execute("INSERT INTO fingerprints (track_id, algorithm, duration_s, seconds_used, items, fingerprint, "
                        "computed_at, delivery_id, source_path, items_sha256) SELECT track_id, algorithm, duration_s, "
                        "seconds_used, items, fingerprint, computed_at, delivery_id, source_path, items_sha256 FROM _fp_new")
            con.unregister("_fp_new")
        for track_id, outcome in bad.items():
            con.execute("INSERT INTO quarantine VALUES (?, 'fingerprint', ?, ?, ?, ?)",
                        [delivery_id, track_id, outcome.reason_code, outcome.message or str(outcome.path), now])
        by_reason = dict(sorted(Counter(str(o.reason_code) for o in bad.values()).items()))
        summary = StoreSummary(delivery_id=delivery_id, stored=len(good), quarantined=len(bad), by_reason=by_reason)
        record(con, actor=actor, action="fingerprint.store", subject=f"delivery:{delivery_id}", payload={
            **summary.model_dump(), "track_ids_sha256": sha256_text(canonical_json(touched)),
            "quarantined_tracks": {t: o.reason_code for t, o in sorted(bad.items())}})
    return summary


def fingerprint_delivery(connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]], delivery_id: str,
                         *, max_seconds: float | None = None, actor: str = DEFAULT_ACTOR) -> StoreSummary:
    """Fingerprint every track of a delivery (whole files by default) and store the outcomes.

    ``connect`` opens the ledger; it is held only to read the track list and to write the
    results, never while audio is being decoded.
    """
    with connect() as con:
        rows = con.execute("SELECT track_id, source_path FROM tracks WHERE delivery_id = ? ORDER BY track_id",
                           [delivery_id]).fetchall()
    by_path = {Path(p): t for t, p in rows}
    outcomes = list(fingerprint_many(list(by_path), max_seconds=max_seconds))
    with connect() as con:
        return store_fingerprints(con, [(by_path[Path(o.path)], o) for o in outcomes], delivery_id, actor=actor)


def register_optout(con: duckdb.DuckDBPyConnection, *, optout_id: str, claimant: str,
                    audio_path: str | os.PathLike[str], isrc: str | None = None, title: str | None = None,
                    note: str | None = None, actor: str) -> OptOut:
    """Fingerprint an opted-out recording (whole file) and enter it in the registry.

    Catalog tracks whose audio matches it are denied whatever their metadata says (see
    :func:`match_catalog`). Re-registering the same id replaces the entry. Raises
    :class:`~fingerprinting.chromaprint.FingerprintError` when the audio is unusable and
    ValueError for a malformed ISRC.
    """
    path = Path(audio_path)
    fp = fingerprint_file(path, max_seconds=None)
    entry = OptOut(optout_id=optout_id, claimant=claimant, isrc=normalize_isrc(isrc) if isrc else None, title=title,
                   note=note, audio_sha256=sha256_file(path), duration_s=fp.duration_s, item_count=len(fp.items))
    with transaction(con):
        existed = con.execute("SELECT count(*) FROM optout_registry WHERE optout_id = ?", [optout_id]).fetchone()
        con.execute("DELETE FROM optout_registry WHERE optout_id = ?", [optout_id])
        con.execute(
            "INSERT INTO optout_registry (optout_id, claimant, isrc, title, note, audio_sha256, items, registered_at, "
            "registered_by, duration_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [optout_id, claimant, entry.isrc, title, note, entry.audio_sha256, fp.items.tolist(), _now(), actor,
             fp.duration_s])
        record(con, actor=actor, action="optout.replace" if existed and existed[0] else "optout.register",
               subject=f"optout:{optout_id}", payload={**entry.model_dump(), "audio_path": str(path)})
    return entry


class RegistryReport(_Frozen):
    """What :func:`register_registry` registered, and what it quarantined (stage ``optout``)."""

    schema_version: int = SCHEMA_VERSION
    registry: str
    registered: tuple[str, ...]
    quarantined: int
    by_reason: dict[str, int]


def register_registry(con: duckdb.DuckDBPyConnection, registry_path: str | os.PathLike[str], *,
                      actor: str) -> RegistryReport:
    """Register every entry of an opt-out registry file (``{"entries": [{optout_id, claimant, file, ...}]}``).

    Audio paths are relative to the registry's folder and may not leave it. An unreadable file, a
    malformed entry, an escaping path or unusable audio is written to ``quarantine`` (stage
    ``optout``) with a reason code; the other entries are registered.
    """

    registry = Path(registry_path)
    root = registry.parent.resolve()
    problems: list[tuple[str, str, str]] = []
    registered: list[str] = []
    try:
        doc = json.loads(registry.read_text(encoding="utf-8"))
        entries = doc.get("entries") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise ValueError("top level must be an object with an 'entries' list")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        problems.append((str(registry), "malformed_registry", f"{registry}: {type(exc).__name__}: {exc}"))
        entries = []
    fields = {"optout_id", "claimant", "file", "isrc", "title", "note"}
    for i, entry in enumerate(entries):
        ref = f"{registry}#entries/{i}"
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) and entry[k].strip()
                                                  for k in ("optout_id", "claimant", "file")):
            problems.append((ref, "malformed_record", f"{ref}: needs optout_id, claimant and file as text"))
            continue
        ref = f"{ref} ({entry['optout_id']})"
        if set(entry) - fields or not all(entry.get(k) is None or isinstance(entry[k], str) for k in fields):
            problems.append((ref, "malformed_record", f"{ref}: only text fields {sorted(fields)} are accepted"))
            continue
        audio = (root / entry["file"]).resolve()
        if "\x00" in entry["file"] or not audio.is_relative_to(root):
            problems.append((ref, "path_escape", f"{ref}: file {entry['file']!r} leaves {root}"))
            continue
        try:
            register_optout(con, optout_id=entry["optout_id"], claimant=entry["claimant"], audio_path=audio,
                            isrc=entry.get("isrc"), title=entry.get("title"), note=entry.get("note"), actor=actor)
        except FingerprintError as exc:
            problems.append((ref, exc.reason_code, f"{ref}: {exc.message}"))
            continue
        except ValueError as exc:
            problems.append((ref, "invalid_identifier", f"{ref}: {exc}"))
            continue
        registered.append(entry["optout_id"])
    now = _now()
    with transaction(con):
        con.execute("DELETE FROM quarantine WHERE stage = 'optout' AND (source_ref = ? OR starts_with(source_ref, ?))",
                    [str(registry), f"{registry}#"])
        for ref, code, message in problems:
            con.execute("INSERT INTO quarantine VALUES (NULL, 'optout', ?, ?, ?, ?)", [ref, code, message, now])
        by_reason = dict(sorted(Counter(code for _, code, _ in problems).items()))
        record(con, actor=actor, action="optout.registry", subject=str(registry),
               payload={"registered": registered, "quarantined": len(problems), "by_reason": by_reason})
    return RegistryReport(registry=str(registry), registered=tuple(registered), quarantined=len(problems),
                          by_reason=by_reason)


def sync_index(con: duckdb.DuckDBPyConnection, index: FingerprintIndex) -> tuple[int, int]:
    """Make the index hold exactly the ledger's fingerprints and opt-outs; (added, removed)."""
    wanted: dict[str, np.ndarray] = {}
    for track_id, items in con.execute("SELECT track_id, items FROM fingerprints").fetchall():
        wanted[TRACK_PREFIX + track_id] = np.asarray(items, dtype=np.uint32)
    for optout_id, items in con.execute("SELECT optout_id, items FROM optout_registry").fetchall():
        wanted[OPTOUT_PREFIX + optout_id] = np.asarray(items, dtype=np.uint32)
    removed = 0
    for ref in index.refs():
        if ref not in wanted:
            removed += index.remove(ref)
    added = 0
    for ref, items in wanted.items():
        if index.digest(ref) != item_digest(items):
            index.add(ref, items)
            added += 1
    index.commit()
    return added, removed


def index_delivery(con: duckdb.DuckDBPyConnection, index: FingerprintIndex, delivery_id: str) -> tuple[int, int]:
    """Bring one delivery's tracks in the index up to date with the ledger; (added, removed).

    A track whose fingerprint changed is re-added; a track of the delivery that no longer has
    a fingerprint (quarantined on a re-run) is removed. Other deliveries are left alone.
    """
    rows = con.execute("SELECT t.track_id, f.items FROM tracks t LEFT JOIN fingerprints f USING (track_id) "
                       "WHERE t.delivery_id = ? ORDER BY t.track_id", [delivery_id]).fetchall()
    added = removed = 0
    for track_id, items in rows:
        ref = TRACK_PREFIX + track_id
        if items is None:
            removed += index.remove(ref)
            continue
        arr = np.asarray(items, dtype=np.uint32)
        if index.digest(ref) != item_digest(arr):
            index.add(ref, arr)
            added += 1
    index.commit()
    return added, removed


def _evidence(track_id: str, kind: Literal["optout", "duplicate"], ref: str, m: Match, threshold: float) -> AudioMatch:
    return AudioMatch(track_id=track_id, kind=kind, matched_ref=ref, score=round(m.score, 6), threshold=threshold,
                      offset_s=round(m.offset_s, 4), span_s=round(m.span_s, 4),
                      bit_error_rate=round(m.bit_error_rate, 6), query_start_s=round(m.query_start_s, 4),
                      ref_start_s=round(m.ref_start_s, 4), votes=m.votes)


def _clusters(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for node in parent:
        groups.setdefault(find(node), []).append(node)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def match_catalog(con: duckdb.DuckDBPyConnection, index_dir: str | os.PathLike[str], *,
                  threshold: float = MATCH_THRESHOLD, min_span_s: float = MIN_SPAN_S,
                  actor: str = DEFAULT_ACTOR) -> MatchSummary:
    """Match every fingerprinted track against the opt-out registry and the rest of the catalog.

    Brings the index under ``index_dir`` up to date with the ledger, then rewrites
    ``audio_matches`` (kind 'optout' or 'duplicate', with the evidence and threshold) and
    ``duplicate_clusters``. Re-running on unchanged data changes nothing but the audit log.
    """
    index = FingerprintIndex.open(index_dir)
    added, removed = sync_index(con, index)
    tracks = con.execute("SELECT f.track_id, f.items, t.isrc FROM fingerprints f "
                         "LEFT JOIN tracks t USING (track_id) ORDER BY f.track_id").fetchall()
    optouts = con.execute("SELECT count(*) FROM optout_registry").fetchone()
    found: list[AudioMatch] = []
    for track_id, items, _isrc in tracks:
        matches = index.query(np.asarray(items, dtype=np.uint32), limit=50, min_score=threshold,
                              exclude=TRACK_PREFIX + track_id)
        query_length_s = len(items) * ITEM_SECONDS
        for m in matches:
            if not is_match(m, query_length_s, threshold=threshold, min_span_s=min_span_s):
                continue
            if m.ref.startswith(OPTOUT_PREFIX):
                found.append(_evidence(track_id, "optout", m.ref[len(OPTOUT_PREFIX):], m, threshold))
            elif m.ref.startswith(TRACK_PREFIX):
                found.append(_evidence(track_id, "duplicate", m.ref[len(TRACK_PREFIX):], m, threshold))
    # A pair is a duplicate when either direction matched; record both directions.
    dup_pairs = {tuple(sorted((a.track_id, a.matched_ref))) for a in found if a.kind == "duplicate"}
    by_key = {(a.track_id, a.kind, a.matched_ref): a for a in found}
    for x, y in dup_pairs:
        for q, r in ((x, y), (y, x)):
            if (q, "duplicate", r) not in by_key:
                twin = by_key[(r, "duplicate", q)]
                by_key[(q, "duplicate", r)] = twin.model_copy(update={
                    "track_id": q, "matched_ref": r, "offset_s": -twin.offset_s,
                    "query_start_s": twin.ref_start_s, "ref_start_s": twin.query_start_s})
    isrc_of = {t: i for t, _, i in tracks}
    clusters = _clusters(dup_pairs)
    now = _now()
    with transaction(con):
        previous = {(r[0], r[1], r[2]): r[3:] for r in con.execute(
            "SELECT track_id, kind, matched_ref, score, threshold, offset_s, span_s, bit_error_rate, matched_at "
            "FROM audio_matches").fetchall()}
        resolved = {(c, t): r for c, t, r in con.execute(
            "SELECT cluster_id, track_id, resolved FROM duplicate_clusters").fetchall()}
        con.execute("DELETE FROM audio_matches")
        for key, a in sorted(by_key.items()):
            old = previous.get(key)
            same = old is not None and list(old[:5]) == [a.score, a.threshold, a.offset_s, a.span_s, a.bit_error_rate]
            con.execute("INSERT INTO audio_matches (track_id, kind, matched_ref, score, threshold, offset_s, span_s, "
                        "bit_error_rate, matched_at, query_start_s, ref_start_s, votes) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [a.track_id, a.kind, a.matched_ref, a.score, a.threshold, a.offset_s, a.span_s,
                         a.bit_error_rate, old[5] if same and old else now, a.query_start_s, a.ref_start_s, a.votes])
        con.execute("DELETE FROM duplicate_clusters")
        for members in clusters:
            cluster_id = "dup-" + sha256_text(",".join(members))[:16]
            for track_id in members:
                con.execute("INSERT INTO duplicate_clusters (cluster_id, track_id, isrc, resolved) VALUES (?, ?, ?, ?)",
                            [cluster_id, track_id, isrc_of.get(track_id) or "", resolved.get((cluster_id, track_id), False)])
        optout_rows = [a for a in by_key.values() if a.kind == "optout"]
        summary = MatchSummary(
            tracks=len(tracks), optouts=int(optouts[0]) if optouts else 0, index_added=added, index_removed=removed,
            optout_matches=len(optout_rows), tracks_denied_by_optout=len({a.track_id for a in optout_rows}),
            duplicate_pairs=len(dup_pairs), duplicate_clusters=len(clusters),
            tracks_in_clusters=sum(len(c) for c in clusters), threshold=threshold, min_span_s=min_span_s)
        changed = {k for k in by_key if k not in previous} | {k for k in previous if k not in by_key}
        record(con, actor=actor, action="fingerprint.match_catalog", subject="catalog", payload={
            **summary.model_dump(), "matches_added_or_removed": sorted("|".join(k) for k in changed)[:1000]})
    return summary


def optout_matches(con: duckdb.DuckDBPyConnection, track_id: str) -> list[AudioMatch]:
    """The opt-out matches recorded for one track (empty: no audio evidence of an opt-out)."""
    rows = con.execute(
        "SELECT track_id, kind, matched_ref, score, threshold, offset_s, span_s, bit_error_rate, "
        "coalesce(query_start_s, 0), coalesce(ref_start_s, 0), coalesce(votes, 0) FROM audio_matches "
        "WHERE track_id = ? AND kind = 'optout' ORDER BY score DESC", [track_id]).fetchall()
    keys = list(AudioMatch.model_fields)[1:]
    return [AudioMatch(**dict(zip(keys, row, strict=True))) for row in rows]
