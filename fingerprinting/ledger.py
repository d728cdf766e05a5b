"""Fingerprints, the opt-out registry and audio matches in the DuckDB ledger.

Every audio-identity decision is written with its evidence (score, the threshold it was
held to, offset, overlapping span, bit error rate) so a denial can be explained later.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from fingerprinting.batch import FingerprintOutcome, fingerprint_many
from fingerprinting.chromaprint import ITEM_SECONDS, FingerprintError, fingerprint_file
from fingerprinting.index import CHROMAPRINT, LANDMARK, FingerprintIndex, Match, Method, item_digest
from fingerprinting.landmarks import FANOUT, QUERY_FANOUT, query_landmarks
from schemas.canonical import canonical_json, sha256_text
from schemas.identifiers import normalize_isrc
from store.digest import sha256_file
from store.ledger import Writer, authorize, command
from store.outbox import BatchHeader, BatchRejected
from store.paths import ledger_path, ledger_ref
from store.quarantine import Rejection, quarantine, resolve_stage
from store.roles import Principal, RoleBook

SCHEMA_VERSION = 1
# score = 1 - 2*BER. Transformed copies and excerpts of the demo catalog score >= 0.85;
# distinct recordings stay below 0.6 (see bench/results/fingerprint.md).
MATCH_THRESHOLD = 0.7
# Over an overlap shorter than MIN_SPAN_S few items vote and chance agreement is larger: band-limited
# 3-6 s overlaps of unrelated music reached 0.83, while positives' own-source scores stay above it
# (the span curve in bench/results/robustness.md).
SHORT_SPAN_THRESHOLD = 0.85
# Landmark hashes agreeing on one offset (and speed) within 10 s, the query read with its denser peaks.
# Calibrated on the demo catalog (bench/results/robustness.md): over 3,167 queries the highest score
# against a recording other than the query's source was 64; recall on mixed copies is flat from 65 to 80.
LANDMARK_THRESHOLD = 80.0
MIN_SPAN_S = 10.0
SHORT_SPAN_FLOOR_S = 2.0
# A Chromaprint overlap under 3 s is a handful of items: over the quiet end of a track an unrelated
# excerpt agreed at 0.906 over 2.7 s (seed 23 in bench/results/robustness.md), above any score threshold
# the short-span curve allows. Chromaprint evidence needs at least this much overlap.
CHROMAPRINT_SPAN_FLOOR_S = 3.0
LANDMARK_SPAN_SHARE = 0.5  # the first and last agreeing hash of a short query lie at least this far apart
LANDMARK_INDEX_DIR = "landmarks"  # beside the Chromaprint index's segments, under its directory
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
    bit_error_rate: float | None
    query_start_s: float
    ref_start_s: float
    votes: int
    method: Method = CHROMAPRINT
    speed: float = 1.0


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
    landmark_threshold: float = LANDMARK_THRESHOLD
    short_span_threshold: float = SHORT_SPAN_THRESHOLD
    matches_by_method: dict[str, int] = {}


def match_threshold(m: Match, *, threshold: float = MATCH_THRESHOLD, min_span_s: float = MIN_SPAN_S,
                    landmark_threshold: float = LANDMARK_THRESHOLD,
                    short_span_threshold: float = SHORT_SPAN_THRESHOLD) -> float:
    """The score ``m`` is held to: its method's threshold, higher for a short Chromaprint overlap."""
    if m.method == LANDMARK:
        return landmark_threshold
    return threshold if m.span_s >= min_span_s else max(threshold, short_span_threshold)


def is_match(m: Match, query_length_s: float, *, threshold: float = MATCH_THRESHOLD,
             min_span_s: float = MIN_SPAN_S, landmark_threshold: float = LANDMARK_THRESHOLD,
             short_span_threshold: float = SHORT_SPAN_THRESHOLD) -> bool:
    """Whether a query result is strong enough to act on.

    Chromaprint: the overlap must reach ``min_span_s``, or 80% of the shorter recording when
    that is shorter (a 6-second jingle can still be recognised), and never less than
    ``CHROMAPRINT_SPAN_FLOOR_S`` (3 s); an
    overlap shorter than ``min_span_s`` needs ``short_span_threshold`` rather than ``threshold``.
    Landmarks: at least ``landmark_threshold`` agreeing hashes, the first and last of them
    ``min_span_s`` apart or half the shorter recording, and never less than 2 s.
    """
    shorter = min(query_length_s, m.ref_length_s or query_length_s)
    held_to = match_threshold(m, threshold=threshold, min_span_s=min_span_s, landmark_threshold=landmark_threshold,
                              short_span_threshold=short_span_threshold)
    if m.method == LANDMARK:
        needed = min(min_span_s, max(SHORT_SPAN_FLOOR_S, LANDMARK_SPAN_SHARE * shorter))
    else:
        needed = min(min_span_s, max(CHROMAPRINT_SPAN_FLOOR_S, 0.8 * shorter))
    return m.score >= held_to and m.span_s >= needed


def landmark_index_dir(index_dir: str | os.PathLike[str]) -> Path:
    """Where the landmark index lives for the Chromaprint index under ``index_dir``."""
    return Path(index_dir) / LANDMARK_INDEX_DIR


def _write_landmarks(w: Writer, rows: Iterable[tuple[str, np.ndarray, np.ndarray | None]], now: datetime) -> None:
    """Insert (ref, landmark array, packed query peaks or None) into ``landmark_fingerprints`` and
    ``landmark_query_peaks``; the caller has superseded the refs' earlier rows."""
    rows = list(rows)
    if not rows:
        return
    w.insert("landmark_fingerprints", pa.table({
        "ref": [r for r, _, _ in rows],
        "landmark_count": pa.array([len(lm) // 2 for _, lm, _ in rows], pa.int32()),
        "landmarks": pa.array([np.asarray(lm, dtype=np.uint32) for _, lm, _ in rows], pa.list_(pa.uint32())),
        "landmarks_sha256": [item_digest(lm) for _, lm, _ in rows],
        "computed_at": pa.array([now] * len(rows), pa.timestamp("us", tz="UTC")),
    }))
    peaks = [(r, qp) for r, _, qp in rows if qp is not None]
    if peaks:
        w.insert("landmark_query_peaks", pa.table({
            "ref": [r for r, _ in peaks],
            "peak_count": pa.array([len(qp) for _, qp in peaks], pa.int32()),
            "query_peaks": pa.array([np.asarray(qp, dtype=np.uint32) for _, qp in peaks], pa.list_(pa.uint32())),
            "computed_at": pa.array([now] * len(peaks), pa.timestamp("us", tz="UTC")),
        }))


def _supersede_landmarks(w: Writer, refs: list[str]) -> None:
    for table in ("landmark_fingerprints", "landmark_query_peaks"):
        w.supersede(table, "ref IN (SELECT unnest(?::VARCHAR[]))", [refs])


def _now() -> datetime:
    return datetime.now(UTC)


def store_fingerprints(con: duckdb.DuckDBPyConnection, outcomes_with_track_ids: Iterable[tuple[str, FingerprintOutcome]],
                       delivery_id: str, *, actor: Principal | str = DEFAULT_ACTOR,
                       roles: RoleBook | None = None) -> StoreSummary:
    """Write fingerprints, and quarantine rows for files that could not be fingerprinted (``fingerprint.store``).

    Re-running for the same tracks replaces their rows (the old ones stay in history): a track that
    now fails loses its fingerprint, so nothing downstream matches on audio we can no longer read.
    """
    now = _now()
    good: dict[str, FingerprintOutcome] = {}
    bad: dict[str, FingerprintOutcome] = {}
    for track_id, outcome in outcomes_with_track_ids:
        (good if outcome.ok else bad)[track_id] = outcome
        (bad if outcome.ok else good).pop(track_id, None)
    touched = sorted([*good, *bad])
    with command(con, actor, "fingerprint.store", f"delivery:{delivery_id}", roles=roles) as w:
        if touched:
            w.supersede("fingerprints", "track_id IN (SELECT unnest(?::VARCHAR[]))", [touched])
            _supersede_landmarks(w, [TRACK_PREFIX + t for t in touched])
            resolve_stage(w, stage="fingerprint", delivery_id=delivery_id, source_refs=touched)
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
                                   ("source_path", ledger_ref(con, outcome.path)),
                                   ("items_sha256", item_digest(fp.items))):
                    rows[key].append(value)
            w.insert("fingerprints", pa.table({
                **{k: v for k, v in rows.items() if k != "items"},
                "items": pa.array([np.asarray(v, dtype=np.uint32) for v in rows["items"]], pa.list_(pa.uint32())),
            }))
            with_landmarks = [(TRACK_PREFIX + t, o.fingerprint.landmarks, o.fingerprint.query_peaks)
                              for t, o in good.items()
                              if o.fingerprint is not None and o.fingerprint.landmarks is not None]
            _write_landmarks(w, with_landmarks, now)
        quarantine(w, [Rejection(track_id, str(outcome.reason_code), outcome.message or str(outcome.path))
                       for track_id, outcome in bad.items()], stage="fingerprint", delivery_id=delivery_id)
        by_reason = dict(sorted(Counter(str(o.reason_code) for o in bad.values()).items()))
        summary = StoreSummary(delivery_id=delivery_id, stored=len(good), quarantined=len(bad), by_reason=by_reason)
        w.payload.update({**summary.model_dump(), "track_ids_sha256": sha256_text(canonical_json(touched)),
                          "quarantined_tracks": {t: o.reason_code for t, o in sorted(bad.items())}})
    return summary


def fingerprint_delivery(connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]], delivery_id: str,
                         *, max_seconds: float | None = None, actor: Principal | str = DEFAULT_ACTOR,
                         roles: RoleBook | None = None) -> StoreSummary:
    """Fingerprint every track of a delivery (whole files by default) and store the outcomes.

    ``connect`` opens the ledger; it is held only to read the track list and to write the
    results, never while audio is being decoded.
    """
    with connect() as con:
        authorize(con, actor, "fingerprint.store", f"delivery:{delivery_id}", roles=roles)  # before any decoding
        rows = con.execute("SELECT track_id, source_path FROM tracks WHERE delivery_id = ? ORDER BY track_id",
                           [delivery_id]).fetchall()
        by_path = {Path(ledger_path(con, p)): t for t, p in rows}
    outcomes = list(fingerprint_many(list(by_path), max_seconds=max_seconds, landmarks=True))
    with connect() as con:
        return store_fingerprints(con, [(by_path[Path(o.path)], o) for o in outcomes], delivery_id, actor=actor,
                                  roles=roles)


def register_optout(con: duckdb.DuckDBPyConnection, *, optout_id: str, claimant: str,
                    audio_path: str | os.PathLike[str], isrc: str | None = None, title: str | None = None,
                    note: str | None = None, actor: Principal | str, roles: RoleBook | None = None) -> OptOut:
    """Fingerprint an opted-out recording (whole file) and enter it in the registry (``optout.register``).

    Catalog tracks whose audio matches it are denied whatever their metadata says (see
    :func:`match_catalog`). Re-registering the same id replaces the entry (the old one stays in
    history). Raises :class:`~fingerprinting.chromaprint.FingerprintError` when the audio is
    unusable and ValueError for a malformed ISRC.
    """
    path = Path(audio_path)
    fp = fingerprint_file(path, max_seconds=None, landmarks=True)
    entry = OptOut(optout_id=optout_id, claimant=claimant, isrc=normalize_isrc(isrc) if isrc else None, title=title,
                   note=note, audio_sha256=sha256_file(path), duration_s=fp.duration_s, item_count=len(fp.items))
    with command(con, actor, "optout.register", f"optout:{optout_id}", roles=roles) as w:
        w.payload.update(_register(w, entry, fp.items.tolist(), path, fp.landmarks, fp.query_peaks))
    return entry


def _register(w: Writer, entry: OptOut, items: list[int], path: Path,
              landmarks: np.ndarray | None, query_peaks: np.ndarray | None = None) -> dict[str, Any]:
    """Enter (or replace) one registry entry; the same claim registered again changes nothing."""
    same = w.con.execute("SELECT count(*) FROM optout_registry WHERE optout_id = ? AND audio_sha256 = ? AND "
                         "claimant = ? AND isrc IS NOT DISTINCT FROM ? AND title IS NOT DISTINCT FROM ? AND "
                         "note IS NOT DISTINCT FROM ?", [entry.optout_id, entry.audio_sha256, entry.claimant,
                                                         entry.isrc, entry.title, entry.note]).fetchall()[0][0]
    ref = OPTOUT_PREFIX + entry.optout_id
    digest = item_digest(landmarks) if landmarks is not None else None
    same_landmarks = w.con.execute(
        "SELECT count(*) FROM landmark_fingerprints WHERE ref = ? AND landmarks_sha256 IS NOT DISTINCT FROM ? AND "
        "(? OR ref IN (SELECT ref FROM landmark_query_peaks))", [ref, digest, query_peaks is None]
    ).fetchall()[0][0] or digest is None
    detail = {**entry.model_dump(), "audio_path": ledger_ref(w.con, path), "landmarks_sha256": digest}
    if same and same_landmarks:
        return {**detail, "unchanged": True}
    _supersede_landmarks(w, [ref])
    if landmarks is not None:
        _write_landmarks(w, [(ref, landmarks, query_peaks)], _now())
    if same:
        return {**detail, "landmarks_added": True}
    existed = w.supersede("optout_registry", "optout_id = ?", [entry.optout_id])
    w.insert("optout_registry", [{"optout_id": entry.optout_id, "claimant": entry.claimant, "isrc": entry.isrc,
                                  "title": entry.title, "note": entry.note, "audio_sha256": entry.audio_sha256,
                                  "items": items, "registered_at": _now(), "registered_by": w.actor,
                                  "duration_s": entry.duration_s}])
    return {**detail, "replaced": bool(existed)}


class RegistryReport(_Frozen):
    """What :func:`register_registry` registered, and what it quarantined (stage ``optout``)."""

    schema_version: int = SCHEMA_VERSION
    registry: str
    registered: tuple[str, ...]
    quarantined: int
    by_reason: dict[str, int]


def register_registry(con: duckdb.DuckDBPyConnection, registry_path: str | os.PathLike[str], *,
                      actor: Principal | str, roles: RoleBook | None = None) -> RegistryReport:
    """Register every entry of an opt-out registry file (``{"entries": [{optout_id, claimant, file, ...}]}``).

    Audio paths are relative to the registry's folder and may not leave it. An unreadable file, a
    malformed entry, an escaping path or unusable audio is written to ``quarantine`` (stage
    ``optout``) with a reason code; the other entries are registered, all in one command.
    """
    registry = Path(registry_path)
    root = registry.parent.resolve()
    problems: list[tuple[str, str, str]] = []
    accepted: list[tuple[OptOut, list[int], Path, np.ndarray | None, np.ndarray | None]] = []
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
            fp = fingerprint_file(audio, max_seconds=None, landmarks=True)
            accepted.append((OptOut(
                optout_id=entry["optout_id"], claimant=entry["claimant"],
                isrc=normalize_isrc(entry["isrc"]) if entry.get("isrc") else None, title=entry.get("title"),
                note=entry.get("note"), audio_sha256=sha256_file(audio), duration_s=fp.duration_s,
                item_count=len(fp.items)), fp.items.tolist(), audio, fp.landmarks, fp.query_peaks))
        except FingerprintError as exc:
            problems.append((ref, exc.reason_code, f"{ref}: {exc.message}"))
        except ValueError as exc:
            problems.append((ref, "invalid_identifier", f"{ref}: {exc}"))
    by_reason = dict(sorted(Counter(code for _, code, _ in problems).items()))
    with command(con, actor, "optout.register", ledger_ref(con, registry), roles=roles) as w:
        entries = [_register(w, optout, items, audio, lm, qp) for optout, items, audio, lm, qp in accepted]
        resolve_stage(w, stage="optout", prefix=str(registry))
        quarantine(w, [Rejection(ref, code, message) for ref, code, message in problems], stage="optout")
        w.payload.update({"registered": [a[0].optout_id for a in accepted], "entries": entries,
                          "quarantined": len(problems), "by_reason": by_reason})
    return RegistryReport(registry=str(registry), registered=tuple(a[0].optout_id for a in accepted),
                          quarantined=len(problems), by_reason=by_reason)


def sync_index(con: duckdb.DuckDBPyConnection, index: FingerprintIndex) -> tuple[int, int]:
    """Make the index hold exactly the ledger's fingerprints and opt-outs (of its method); (added, removed)."""
    wanted: dict[str, np.ndarray] = {}
    if index.method == LANDMARK:
        for ref, landmarks in con.execute("SELECT ref, landmarks FROM landmark_fingerprints").fetchall():
            wanted[ref] = np.asarray(landmarks, dtype=np.uint32)
    else:
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
    if index.method == LANDMARK:
        rows = con.execute("SELECT t.track_id, l.landmarks FROM tracks t LEFT JOIN landmark_fingerprints l "
                           "ON l.ref = ? || t.track_id WHERE t.delivery_id = ? ORDER BY t.track_id",
                           [TRACK_PREFIX, delivery_id]).fetchall()
    else:
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
                      bit_error_rate=None if m.bit_error_rate is None else round(m.bit_error_rate, 6),
                      query_start_s=round(m.query_start_s, 4), ref_start_s=round(m.ref_start_s, 4), votes=m.votes,
                      method=m.method, speed=round(m.speed, 4))


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


def _reversed(a: AudioMatch, track_id: str, kind: Literal["optout", "duplicate"], ref: str) -> AudioMatch:
    """The evidence of a match seen from the other recording's side."""
    return a.model_copy(update={"track_id": track_id, "kind": kind, "matched_ref": ref, "offset_s": -a.offset_s,
                                "query_start_s": a.ref_start_s, "ref_start_s": a.query_start_s,
                                "speed": round(1.0 / a.speed, 4) if a.speed else 1.0})


def match_catalog(con: duckdb.DuckDBPyConnection, index_dir: str | os.PathLike[str], *,
                  threshold: float = MATCH_THRESHOLD, min_span_s: float = MIN_SPAN_S,
                  landmark_threshold: float = LANDMARK_THRESHOLD, short_span_threshold: float = SHORT_SPAN_THRESHOLD,
                  actor: Principal | str = DEFAULT_ACTOR, roles: RoleBook | None = None) -> MatchSummary:
    """Match every fingerprinted track against the opt-out registry and the rest of the catalog.

    Both fingerprints are used: Chromaprint (the index under ``index_dir``) and landmarks (the
    index under ``index_dir/landmarks``), which find copies that are band-limited, mixed with
    other music, noisy or played at a slightly different speed. Opt-outs are also looked up
    against the catalog, so a short opted-out excerpt inside a long track is found. Brings both
    indexes up to date with the ledger, then brings ``audio_matches`` (kind 'optout' or
    'duplicate', with method, score, threshold, offset and span) and ``duplicate_clusters`` up to
    date (``fingerprint.match``); matches no longer found move to history. Where both methods
    match, the Chromaprint evidence is kept. Re-running on unchanged data changes nothing but the
    audit log.
    """
    authorize(con, actor, "fingerprint.match", "catalog", roles=roles)  # before the index is touched
    index = FingerprintIndex.open(index_dir)
    added, removed = sync_index(con, index)
    lm_index = FingerprintIndex.open(landmark_index_dir(index_dir), method=LANDMARK)
    lm_added, lm_removed = sync_index(con, lm_index)
    tracks = con.execute("SELECT f.track_id, f.items, t.isrc FROM fingerprints f "
                         "LEFT JOIN tracks t USING (track_id) ORDER BY f.track_id").fetchall()
    optouts = con.execute("SELECT count(*) FROM optout_registry").fetchone()
    # Each recording looks others up with its denser query peaks (older rows without them: its landmarks).
    lookup_of = {ref: (query_landmarks(qp), QUERY_FANOUT) if qp is not None else (np.asarray(lm, np.uint32), FANOUT)
                 for ref, lm, qp in con.execute("SELECT l.ref, l.landmarks, q.query_peaks FROM landmark_fingerprints l "
                                                "LEFT JOIN landmark_query_peaks q USING (ref)").fetchall()}
    rule = {"threshold": threshold, "min_span_s": min_span_s, "landmark_threshold": landmark_threshold,
            "short_span_threshold": short_span_threshold}
    by_key: dict[tuple[str, str, str], AudioMatch] = {}

    def keep(a: AudioMatch) -> None:
        key = (a.track_id, a.kind, a.matched_ref)
        old = by_key.get(key)
        if old is None or (old.method == LANDMARK and a.method == CHROMAPRINT) or (
                old.method == a.method and a.score > old.score):
            by_key[key] = a

    def lookups(ref: str, items: np.ndarray | None, length_s: float) -> list[Match]:
        found = []
        if items is not None:
            found += index.query(items, limit=50, min_score=threshold, exclude=ref)
        if ref in lookup_of:
            landmarks, fanout = lookup_of[ref]
            found += lm_index.query(landmarks, limit=50, min_score=landmark_threshold, exclude=ref, fanout=fanout)
        return [m for m in found if is_match(m, length_s, **rule)]

    for track_id, items, _isrc in tracks:
        for m in lookups(TRACK_PREFIX + track_id, np.asarray(items, dtype=np.uint32), len(items) * ITEM_SECONDS):
            if m.ref.startswith(OPTOUT_PREFIX):
                keep(_evidence(track_id, "optout", m.ref[len(OPTOUT_PREFIX):], m, match_threshold(m, **rule)))
            elif m.ref.startswith(TRACK_PREFIX):
                keep(_evidence(track_id, "duplicate", m.ref[len(TRACK_PREFIX):], m, match_threshold(m, **rule)))
    for optout_id, duration_s in con.execute("SELECT optout_id, duration_s FROM optout_registry").fetchall():
        ref = OPTOUT_PREFIX + optout_id
        for m in lookups(ref, None, duration_s or 0.0):
            if m.ref.startswith(TRACK_PREFIX):
                track_id = m.ref[len(TRACK_PREFIX):]
                seen = _evidence(optout_id, "optout", track_id, m, match_threshold(m, **rule))
                keep(_reversed(seen, track_id, "optout", optout_id))
    # A pair is a duplicate when either direction matched; record both directions.
    dup_pairs = {tuple(sorted((a.track_id, a.matched_ref))) for a in by_key.values() if a.kind == "duplicate"}
    for x, y in dup_pairs:
        for q, r in ((x, y), (y, x)):
            if (q, "duplicate", r) not in by_key:
                by_key[(q, "duplicate", r)] = _reversed(by_key[(r, "duplicate", q)], q, "duplicate", r)
    isrc_of = {t: i for t, _, i in tracks}
    clusters = _clusters(dup_pairs)
    now = _now()
    with command(con, actor, "fingerprint.match", "catalog", roles=roles) as w:
        previous = {(r[0], r[1], r[2]): r[3:] for r in con.execute(
            "SELECT track_id, kind, matched_ref, score, threshold, offset_s, span_s, bit_error_rate, "
            "coalesce(method, 'chromaprint'), matched_at FROM audio_matches").fetchall()}
        resolved = {(c, t): r for c, t, r in con.execute(
            "SELECT cluster_id, track_id, resolved FROM duplicate_clusters").fetchall()}
        rows = []
        for key, a in sorted(by_key.items()):
            old = previous.get(key)
            same = old is not None and list(old[:6]) == [a.score, a.threshold, a.offset_s, a.span_s, a.bit_error_rate,
                                                         a.method]
            rows.append({"track_id": a.track_id, "kind": a.kind, "matched_ref": a.matched_ref, "score": a.score,
                         "threshold": a.threshold, "offset_s": a.offset_s, "span_s": a.span_s,
                         "bit_error_rate": a.bit_error_rate, "matched_at": old[6] if same and old else now,
                         "query_start_s": a.query_start_s, "ref_start_s": a.ref_start_s, "votes": a.votes,
                         "method": a.method, "speed": a.speed})
        gone = sorted(set(previous) - set(by_key))
        for track_id, kind, ref in gone:
            w.supersede("audio_matches", "track_id = ? AND kind = ? AND matched_ref = ?", [track_id, kind, ref])
        w.upsert("audio_matches", rows, key=["track_id", "kind", "matched_ref"])
        members_now = []
        for members in clusters:
            cluster_id = "dup-" + sha256_text(",".join(members))[:16]
            members_now += [{"cluster_id": cluster_id, "track_id": track_id, "isrc": isrc_of.get(track_id) or "",
                             "resolved": resolved.get((cluster_id, track_id), False)} for track_id in members]
        kept = [m["track_id"] for m in members_now]
        w.supersede("duplicate_clusters", "track_id NOT IN (SELECT unnest(?::VARCHAR[]))", [kept])
        w.upsert("duplicate_clusters", members_now, key=["track_id"])
        optout_rows = [a for a in by_key.values() if a.kind == "optout"]
        summary = MatchSummary(
            tracks=len(tracks), optouts=int(optouts[0]) if optouts else 0, index_added=added, index_removed=removed,
            optout_matches=len(optout_rows), tracks_denied_by_optout=len({a.track_id for a in optout_rows}),
            duplicate_pairs=len(dup_pairs), duplicate_clusters=len(clusters),
            tracks_in_clusters=sum(len(c) for c in clusters), threshold=threshold, min_span_s=min_span_s,
            landmark_threshold=landmark_threshold, short_span_threshold=short_span_threshold,
            matches_by_method=dict(sorted(Counter(a.method for a in by_key.values()).items())))
        changed = {k for k in by_key if k not in previous} | {k for k in previous if k not in by_key}
        w.payload.update({**summary.model_dump(),
                          "landmark_index_added": lm_added, "landmark_index_removed": lm_removed,
                          "matches_added_or_removed": sorted("|".join(k) for k in changed)[:1000]})
    return summary


def optout_matches(con: duckdb.DuckDBPyConnection, track_id: str) -> list[AudioMatch]:
    """The opt-out matches recorded for one track (empty: no audio evidence of an opt-out)."""
    rows = con.execute(
        "SELECT track_id, kind, matched_ref, score, threshold, offset_s, span_s, bit_error_rate, "
        "coalesce(query_start_s, 0), coalesce(ref_start_s, 0), coalesce(votes, 0), coalesce(method, 'chromaprint'), "
        "coalesce(speed, 1.0) FROM audio_matches "
        "WHERE track_id = ? AND kind = 'optout' ORDER BY score DESC", [track_id]).fetchall()
    keys = list(AudioMatch.model_fields)[1:]
    return [AudioMatch(**dict(zip(keys, row, strict=True))) for row in rows]


FINGERPRINT_COLUMNS = ("track_id", "algorithm", "duration_s", "seconds_used", "items", "fingerprint", "computed_at",
                       "delivery_id")


def apply_fingerprint_batch(w: Writer, tables: Mapping[str, pa.Table], header: BatchHeader) -> dict[str, Any]:
    """Outbox handler for ``fingerprint.store``: fingerprints computed on another machine, written as if here.

    The batch holds one table, ``fingerprints`` (:data:`FINGERPRINT_COLUMNS`); a track fingerprinted again
    replaces its earlier row (kept in history) and loses its landmark fingerprint (the batch has none).
    """
    if set(tables) != {"fingerprints"}:
        raise BatchRejected("unexpected_tables", f"fingerprint.store takes a 'fingerprints' table, got {sorted(tables)}")
    rows = tables["fingerprints"]
    missing = sorted(set(FINGERPRINT_COLUMNS) - set(rows.column_names))
    extra = sorted(set(rows.column_names) - set(FINGERPRINT_COLUMNS) - {"source_path", "items_sha256"})
    if missing or extra:
        raise BatchRejected("unknown_column", f"fingerprints: missing {missing}, unknown {extra}")
    track_ids = rows.column("track_id").to_pylist()
    if len(set(track_ids)) != len(track_ids):
        raise BatchRejected("duplicate_track", "fingerprints: a track appears twice in one batch")
    replaced = w.supersede("fingerprints", "track_id IN (SELECT unnest(?::VARCHAR[]))", [track_ids])
    # Landmarks are not carried by the batch: those computed earlier may be of other audio.
    _supersede_landmarks(w, [TRACK_PREFIX + t for t in track_ids])
    w.insert("fingerprints", rows)
    return {"tracks": len(track_ids), "replaced": replaced, "delivery_ids": sorted(set(rows.column("delivery_id")
                                                                                        .to_pylist()))}
