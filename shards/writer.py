"""Build attribution-tagged Parquet shards from an approved release, then its manifest, last.

One row per training sample: a 4 s mono 16 kHz int16 crop in the ``audio`` column, and beside it
who owns the recording and why it was allowed (deal, rights holders and shares, consents, decision,
policy hash, release). The same release, config and seed give byte-identical shards; shard file
names carry their content hash, so a rebuild never overwrites a shard an older manifest points to.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from licensing.gate import ReleaseRefused, decide, refusal_code
from schemas.gate import GateDecision, GateReason
from schemas.shards import (
    FORMAT_VERSION,
    Acknowledgement,
    ExcludedTrack,
    ShardConfig,
    ShardEntry,
    ShardManifest,
)
from shards import acknowledgements
from shards.audio import AudioError, crop_offsets, verified_pcm
from shards.merkle import merkle_root
from store.ledger import Writer, command, record_refusal
from store.objects import ObjectStore, join
from store.paths import ledger_ref, resolve
from store.roles import Principal, RoleBook, as_principal, data_root

__all__ = ["ShardConfig", "build_shards", "MANIFEST_NAME", "SHARD_SCHEMA", "code_version", "load_manifest"]

MANIFEST_NAME = "manifest.json"
SHARD_NAME = re.compile(r"^shard-\d{5}-[0-9a-f]{16}\.parquet$")
# ObjectStore.put's temporary files: one is left behind when a build is killed mid-write.
TORN_SHARD = re.compile(r"^\.shard-\d{5}-[0-9a-f]{16}\.parquet\..+\.tmp$")

RIGHTS_HOLDER = pa.struct([("party_id", pa.string()), ("name", pa.string()), ("share", pa.float64())])
SHARD_SCHEMA = pa.schema([
    ("sample_id", pa.string()),
    ("track_id", pa.string()),
    ("isrc", pa.string()),
    ("title", pa.string()),
    ("artists", pa.list_(pa.string())),
    ("rights_holders", pa.list_(RIGHTS_HOLDER)),
    ("license", pa.string()),
    ("deal_id", pa.string()),
    ("consent_ids", pa.list_(pa.string())),
    ("decision_id", pa.string()),
    ("policy_hash", pa.string()),
    ("release_id", pa.string()),
    ("source_audio_sha256", pa.string()),
    ("crop_index", pa.int32()),
    ("crop_offset_samples", pa.int64()),
    ("crop_offset_s", pa.float64()),
    ("sample_rate", pa.int32()),
    ("num_samples", pa.int32()),
    ("audio", pa.binary()),
])
_META_COLUMNS = [f.name for f in SHARD_SCHEMA if f.name != "audio"]
_DICTIONARY_COLUMNS = ["track_id", "isrc", "title", "license", "deal_id", "decision_id", "policy_hash",
                       "release_id", "source_audio_sha256", "codec", "lyrics_status"]


def code_version() -> str:
    try:
        return f"linernotes {importlib.metadata.version('linernotes')}"
    except importlib.metadata.PackageNotFoundError:
        return "linernotes 0+unknown"


def sample_format(config: ShardConfig) -> dict[str, Any]:
    return {"column": "audio", "encoding": "pcm_s16le", "channels": 1, "sample_rate": config.sample_rate,
            "num_samples": config.crop_samples, "bytes": config.crop_samples * 2,
            "decoder": f"PyAV {_av_version()} AudioResampler(s16, mono, {config.sample_rate})"}


def _av_version() -> str:
    import av

    return str(av.__version__)


@dataclass
class _TrackRow:
    track_id: str
    isrc: str
    decision_id: str
    title: str | None = None
    artists: list[str] = field(default_factory=list)
    source_path: str | None = None
    audio_sha256: str | None = None
    license: str | None = None
    deal_id: str | None = None
    consent_ids: list[str] = field(default_factory=list)
    policy_hash: str | None = None
    rights_holders: list[dict[str, Any]] = field(default_factory=list)
    exclusion: tuple[str, str] | None = None


def _release_tracks(con: duckdb.DuckDBPyConnection, release_id: str, purpose: str) -> list[_TrackRow]:
    root = data_root(con)
    rows = con.execute(
        """
        SELECT rt.track_id, rt.isrc, rt.decision_id,
               t.track_id IS NOT NULL, t.isrc, t.title, t.artists, t.source_path, t.audio_sha256,
               d.decision_id IS NOT NULL, d.track_id, d.allowed, d.purpose, d.policy_hash, d.deal_id,
               d.consent_ids, dl.license
        FROM release_tracks rt
        LEFT JOIN tracks t ON t.track_id = rt.track_id
        LEFT JOIN decisions d ON d.decision_id = rt.decision_id
        LEFT JOIN deals dl ON dl.deal_id = d.deal_id
        WHERE rt.release_id = ?
        """,
        [release_id],
    ).fetchall()
    holders: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for deal_id, isrc, party_id, name, share in con.execute(
        """
        SELECT rc.deal_id, rc.isrc, rc.party_id, COALESCE(p.name, rc.party_id), rc.share
        FROM rights_controllers rc
        LEFT JOIN parties p ON p.party_id = rc.party_id
        WHERE (rc.deal_id, rc.isrc) IN (
            SELECT (d.deal_id, rt.isrc) FROM release_tracks rt JOIN decisions d ON d.decision_id = rt.decision_id
            WHERE rt.release_id = ?)
        ORDER BY rc.deal_id, rc.isrc, rc.party_id
        """,
        [release_id],
    ).fetchall():
        holders.setdefault((deal_id, isrc), []).append({"party_id": party_id, "name": name, "share": float(share)})

    out: list[_TrackRow] = []
    for (track_id, rel_isrc, decision_id, has_track, isrc, title, artists, source_path, audio_sha,
         has_decision, decision_track, allowed, decision_purpose, policy_hash, deal_id, consent_ids, license_) in rows:
        row = _TrackRow(track_id=track_id, isrc=isrc or rel_isrc, decision_id=decision_id, title=title,
                        artists=list(artists or []), source_path=resolve(root, source_path) if source_path else None,
                        audio_sha256=audio_sha,
                        license=license_, deal_id=deal_id, consent_ids=list(consent_ids or []),
                        policy_hash=policy_hash,
                        rights_holders=holders.get((deal_id, isrc or rel_isrc), []))
        if not has_track:
            row.exclusion = ("track_missing", f"track {track_id} is not in the catalog")
        elif not has_decision:
            row.exclusion = ("decision_missing", f"decision {decision_id} not found")
        elif decision_track != track_id:
            row.exclusion = ("decision_track_mismatch", f"decision {decision_id} is about {decision_track}")
        elif decision_purpose != purpose:
            row.exclusion = ("decision_purpose_mismatch",
                             f"decision {decision_id} is for {decision_purpose!r}, release is for {purpose!r}")
        elif not allowed:
            row.exclusion = ("decision_not_allow", f"decision {decision_id} is a deny")
        out.append(row)
    out.sort(key=lambda r: (r.track_id + ":").encode("utf-8"))
    return out


class _Samples:
    """Column buffers for the rows waiting to be written."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in _META_COLUMNS}
        self.audio: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.audio)

    def add(self, track: _TrackRow, release_id: str, config: ShardConfig, index: int, offset: int,
            crop: np.ndarray) -> None:
        c = self.columns
        c["sample_id"].append(f"{track.track_id}:{index:04d}")
        c["track_id"].append(track.track_id)
        c["isrc"].append(track.isrc)
        c["title"].append(track.title)
        c["artists"].append(track.artists)
        c["rights_holders"].append(track.rights_holders)
        c["license"].append(track.license)
        c["deal_id"].append(track.deal_id)
        c["consent_ids"].append(track.consent_ids)
        c["decision_id"].append(track.decision_id)
        c["policy_hash"].append(track.policy_hash)
        c["release_id"].append(release_id)
        c["source_audio_sha256"].append(track.audio_sha256)
        c["crop_index"].append(index)
        c["crop_offset_samples"].append(offset)
        c["crop_offset_s"].append(offset / config.sample_rate)
        c["sample_rate"].append(config.sample_rate)
        c["num_samples"].append(len(crop))
        self.audio.append(crop)

    def take(self, n: int) -> tuple[dict[str, list[Any]], list[np.ndarray]]:
        head = {k: v[:n] for k, v in self.columns.items()}
        audio = self.audio[:n]
        self.columns = {k: v[n:] for k, v in self.columns.items()}
        self.audio = self.audio[n:]
        return head, audio


def _audio_array(crops: list[np.ndarray]) -> pa.Array:
    data = np.concatenate(crops).astype("<i2", copy=False) if crops else np.zeros(0, dtype="<i2")
    lengths = np.fromiter((c.nbytes for c in crops), dtype=np.int64, count=len(crops))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    if offsets[-1] >= 2**31:
        raise ValueError("shard audio exceeds 2 GiB: lower rows_per_shard")
    return pa.Array.from_buffers(pa.binary(), len(crops), [None, pa.py_buffer(offsets.astype(np.int32)),
                                                            pa.py_buffer(data)])


def encode_shard(columns: dict[str, list[Any]], crops: list[np.ndarray], *, config: ShardConfig,
                 metadata: dict[str, str]) -> pa.Buffer:
    """Serialise one shard to Parquet (a bytes-like Arrow buffer); deterministic for identical inputs."""
    arrays = [pa.array(columns[f.name], type=f.type) if f.name != "audio" else _audio_array(crops)
              for f in SHARD_SCHEMA]
    schema = SHARD_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in sorted(metadata.items())})
    return write_parquet(pa.Table.from_arrays(arrays, schema=schema), config)


def write_parquet(table: pa.Table, config: ShardConfig | Any, *, dictionary: list[str] | None = None) -> pa.Buffer:
    """A shard table as Parquet bytes: attribution columns zstd-compressed with statistics, the ``audio``
    column as ``config.audio_compression`` says, page checksums on; deterministic for identical inputs."""
    leaves = _leaf_paths(table.schema.remove_metadata())
    sink = pa.BufferOutputStream()
    pq.write_table(
        table, sink,
        row_group_size=config.rows_per_row_group,
        compression={path: config.compression for path in leaves if path != "audio"}
        | {"audio": config.audio_compression},
        compression_level={path: config.compression_level for path in leaves if path != "audio"}
        | ({"audio": config.compression_level} if config.audio_compression != "none" else {}),
        use_dictionary=[c for c in (_DICTIONARY_COLUMNS if dictionary is None else dictionary)
                        if c in table.schema.names],
        write_statistics=[path for path in leaves if path != "audio"],
        write_page_checksum=True,
    )
    return sink.getvalue()


@functools.cache
def _leaf_paths(schema: pa.Schema = SHARD_SCHEMA) -> tuple[str, ...]:
    """Parquet leaf column paths (``artists.list.element``...): per-column codecs are keyed by them."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    parquet_schema = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    return tuple(parquet_schema.column(i).path for i in range(len(parquet_schema)))


def _row_groups(rows: int, per_group: int) -> tuple[int, ...]:
    full, rest = divmod(rows, per_group)
    return tuple([per_group] * full + ([rest] if rest else []))


def _cut(track: _TrackRow, config: ShardConfig,
         skipped: dict[str, tuple[str, str]]) -> tuple[tuple[str, str] | None, list[tuple[int, int, np.ndarray]]]:
    """The track's crops, or why it yields none."""
    if track.exclusion is not None:
        return track.exclusion, []
    if track.track_id in skipped:
        return skipped[track.track_id], []
    try:
        pcm = verified_pcm(track.source_path or "", track.audio_sha256 or "", config.sample_rate)
    except AudioError as exc:
        return (exc.reason_code, str(exc)), []
    offsets = crop_offsets(len(pcm), config.crop_samples, config.crops_per_track,
                           seed=config.seed, track_id=track.track_id)
    if not offsets:
        return ("audio_too_short",
                f"{len(pcm) / config.sample_rate:.2f} s is shorter than one {config.crop_seconds} s crop"), []
    return None, [(i, off, pcm[off:off + config.crop_samples].copy()) for i, off in enumerate(offsets)]


def _ordered_map(fn: Any, items: list[_TrackRow], threads: int) -> Any:
    """``(item, fn(item))`` in input order, computing a few ahead on threads (FFmpeg decodes without the GIL)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        window: deque[tuple[_TrackRow, Future[Any]]] = deque()
        for item in items:
            window.append((item, pool.submit(fn, item)))
            if len(window) > threads:
                head, future = window.popleft()
                yield head, future.result()
        while window:
            head, future = window.popleft()
            yield head, future.result()


class ShardSink:
    """Encodes and stores shards on a few threads (Parquet encoding and zstd release the GIL), in order."""

    def __init__(self, store: ObjectStore, output_uri: str, config: ShardConfig, metadata: dict[str, str],
                 *, threads: int | None = None, durable: bool = True) -> None:
        self.store, self.output_uri, self.config, self.metadata = store, output_uri, config, metadata
        self.durable = durable
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=self.threads)
        self._pending: deque[Future[tuple[ShardEntry, dict[str, tuple[str, int]]]]] = deque()
        self._done: list[tuple[ShardEntry, dict[str, tuple[str, int]]]] = []
        self._count = 0

    def submit(self, columns: dict[str, list[Any]], crops: list[np.ndarray]) -> None:
        self._pending.append(self._pool.submit(self._write, self._count, columns, crops))
        self._count += 1
        while len(self._pending) > self.threads:
            self._done.append(self._pending.popleft().result())

    def close(self) -> list[tuple[ShardEntry, dict[str, tuple[str, int]]]]:
        """Wait for every shard; entries come back in shard order."""
        try:
            while self._pending:
                self._done.append(self._pending.popleft().result())
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self.durable:
            self.store.sync([entry.uri for entry, _ in self._done])
        return self._done

    def _write(self, index: int, columns: dict[str, list[Any]],
               crops: list[np.ndarray]) -> tuple[ShardEntry, dict[str, tuple[str, int]]]:
        data = encode_shard(columns, crops, config=self.config,
                            metadata={**self.metadata, "linernotes.shard_index": str(index)})
        sha = hashlib.sha256(data).hexdigest()
        name = f"shard-{index:05d}-{sha[:16]}.parquet"
        uri = join(self.output_uri, name)
        # Made durable all at once by sync() before the manifest is written.
        self.store.put(uri, data, fsync=False)
        counts: dict[str, tuple[str, int]] = {}
        for track_id, isrc in zip(columns["track_id"], columns["isrc"]):
            counts[track_id] = (isrc, counts.get(track_id, (isrc, 0))[1] + 1)
        ids = columns["sample_id"]
        entry = ShardEntry(
            index=index, name=name, uri=uri, sha256=sha, bytes=len(data), rows=len(ids),
            row_groups=_row_groups(len(ids), self.config.rows_per_row_group),
            isrcs=tuple(sorted({isrc for isrc, _ in counts.values()})), track_ids=tuple(sorted(counts)),
            first_sample_id=ids[0], last_sample_id=ids[-1], merkle_root=merkle_root(ids),
        )
        return entry, counts


def load_manifest(uri: str, store: ObjectStore | None = None) -> ShardManifest:
    """Read and validate a manifest from a URI (the manifest file, or the directory holding it)."""
    store = store or ObjectStore()
    if not uri.endswith(".json"):
        uri = join(uri, MANIFEST_NAME)
    return ShardManifest.model_validate_json(store.get(uri))


def _acknowledgement(principal: Principal, acknowledge: Acknowledgement | str | None) -> Acknowledgement | None:
    """The builder's own acknowledgement: a reason, or an :class:`Acknowledgement` that names the builder."""
    if isinstance(acknowledge, str):
        reason = acknowledge.strip()
        return Acknowledgement(actor=principal.name, reason=reason) if reason else None
    if acknowledge is not None and acknowledge.actor != principal.name:
        raise ValueError(f"{principal.name} builds the shards, so only {principal.name} can acknowledge; "
                         f"the acknowledgement names {acknowledge.actor}")
    return acknowledge


def build_shards(con: duckdb.DuckDBPyConnection, release_id: str, *, output_uri: str,
                 config: ShardConfig | None = None, actor: Principal | str,
                 acknowledge: Acknowledgement | str | None = None,
                 store: ObjectStore | None = None, roles: RoleBook | None = None) -> ShardManifest:
    """Write the release's samples as Parquet shards under ``output_uri``, then ``manifest.json``; one
    ``shards.build`` command records them.

    The actor's role is checked before anything is written. The release gate (:mod:`licensing.gate`)
    refuses (recorded as ``shards.build.refused``, raising :class:`licensing.gate.ReleaseRefused`) a
    release that is not approved, or is revoked unless ``acknowledge`` gives the builder's reason
    (recorded). A recording denied since approval is left out with reason ``denied_since_approval``.
    Tracks that yield no samples are listed in ``shard_exclusions`` and the manifest with a reason;
    the build goes on.
    """
    config = config or ShardConfig()
    store = store or ObjectStore()
    principal = as_principal(actor)
    output_uri = output_uri.rstrip("/")
    ack = _acknowledgement(principal, acknowledge)
    try:
        with command(con, principal, "shards.build", release_id, roles=roles) as w:
            decision = decide(con, release_id, use="build", acknowledge=ack)
            if not decision.allowed:
                raise ReleaseRefused(decision)
            return _build(w, decision, output_uri=output_uri, config=config, store=store)
    except ReleaseRefused as exc:
        # The command rolled back; the refusal is an entry of its own.
        refused = exc.decision
        record_refusal(con, principal, "shards.build", release_id, code=refusal_code(refused),
                       message=refused.message, details={"reason_codes": [str(r) for r in refused.reason_codes],
                                                         "denied_track_ids": list(refused.denied_track_ids)})
        raise


def _build(w: Writer, decision: GateDecision, *, output_uri: str, config: ShardConfig,
           store: ObjectStore) -> ShardManifest:
    con, release_id = w.con, decision.release_id
    if decision.approval is None or decision.purpose is None:
        raise ReleaseRefused(decision)
    manifest_uri = join(output_uri, MANIFEST_NAME)
    if store.exists(manifest_uri):
        previous = load_manifest(manifest_uri, store)
        if previous.release_id != release_id:
            raise FileExistsError(f"{output_uri} holds shards of release {previous.release_id}; choose another output")

    skipped = {d.track_id: (str(GateReason.DENIED_SINCE_APPROVAL),
                            (f"denied on {decision.checked_on} under the release's policy "
                             f"({', '.join(d.reason_codes) or 'denied'}): {d.explanation}; left out of this build"))
               for d in decision.denied_tracks}
    ack = acknowledgements.as_record(decision, "build")
    metadata = {
        "linernotes.release_id": release_id,
        "linernotes.policy_hash": decision.policy_hash or "",
        "linernotes.code_version": code_version(),
        "linernotes.format_version": FORMAT_VERSION,
        "linernotes.config": config.model_dump_json(),
        "linernotes.sample_format": json.dumps(sample_format(config), sort_keys=True),
    }
    excluded: list[ExcludedTrack] = []
    all_ids: list[str] = []
    pending = _Samples()
    tracks_with_samples = 0

    sink = ShardSink(store, output_uri, config, metadata)

    def flush(n: int) -> None:
        columns, crops = pending.take(n)
        all_ids.extend(columns["sample_id"])
        sink.submit(columns, crops)

    try:
        tracks = _release_tracks(con, release_id, decision.purpose)
        for track, (reason, crops) in _ordered_map(lambda t: _cut(t, config, skipped), tracks, sink.threads):
            if reason is not None:
                excluded.append(ExcludedTrack(track_id=track.track_id, isrc=track.isrc, reason_code=reason[0],
                                              message=reason[1]))
                continue
            tracks_with_samples += 1
            for index, offset, crop in crops:
                pending.add(track, release_id, config, index, offset, crop)
            while len(pending) >= config.rows_per_shard:
                flush(config.rows_per_shard)
        if len(pending):
            flush(len(pending))
    except BaseException:
        with contextlib.suppress(Exception):
            sink.close()
        raise
    written = sink.close()
    entries = [entry for entry, _ in written]
    per_shard_tracks = [counts for _, counts in written]

    built_at = datetime.now(UTC)
    manifest = ShardManifest(
        code_version=code_version(), release_id=release_id, purpose=decision.purpose,
        territory=decision.territory or "", on_date=str(decision.on_date), policy_hash=decision.policy_hash or "",
        release_content_sha256=decision.content_sha256 or "", approval=decision.approval, config=config,
        sample_format=sample_format(config), shards=tuple(entries), total_rows=len(all_ids),
        track_count=tracks_with_samples, merkle_root=merkle_root(all_ids), excluded=tuple(excluded),
        acknowledgements=(ack,) if ack else (), built_by=w.actor, built_at=built_at,
    )
    manifest_bytes = manifest.model_dump_json(indent=2).encode("utf-8")
    store.put(manifest_uri, manifest_bytes)
    keep = {e.name for e in entries}
    for uri in store.list(output_uri):
        name = uri.rsplit("/", 1)[-1]
        if (SHARD_NAME.match(name) and name not in keep) or TORN_SHARD.match(name):
            store.delete(uri)

    _record(w, manifest, manifest_uri=manifest_uri, manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            output_uri=output_uri, per_shard_tracks=per_shard_tracks, decision=decision)
    return manifest


def _record(w: Writer, manifest: ShardManifest, *, manifest_uri: str, manifest_sha256: str,
            output_uri: str, per_shard_tracks: list[dict[str, tuple[str, int]]], decision: GateDecision | None) -> str:
    """The build's rows, sealed by the ``shards.build`` command; locations relative to the data directory."""
    build_id = f"{manifest.release_id}:{manifest_sha256[:16]}"
    manifest_ref, output_ref = ledger_ref(w.con, manifest_uri), ledger_ref(w.con, output_uri)
    w.insert("shard_builds", [{
        "build_id": build_id, "release_id": manifest.release_id, "output_uri": output_ref,
        "manifest_uri": manifest_ref, "manifest_sha256": manifest_sha256, "policy_hash": manifest.policy_hash,
        "code_version": manifest.code_version, "config": manifest.config.model_dump_json(),
        "shard_count": len(manifest.shards), "row_count": manifest.total_rows, "track_count": manifest.track_count,
        "excluded_count": len(manifest.excluded), "merkle_root": manifest.merkle_root,
        "acknowledged": bool(manifest.acknowledgements), "built_by": w.actor, "built_at": manifest.built_at}])
    w.insert("shard_files", [{
        "build_id": build_id, "shard_index": entry.index, "release_id": manifest.release_id,
        "uri": ledger_ref(w.con, entry.uri), "sha256": entry.sha256, "bytes": entry.bytes, "row_count": entry.rows,
        "merkle_root": entry.merkle_root} for entry in manifest.shards])
    w.insert("shard_file_tracks", [
        {"build_id": build_id, "shard_index": entry.index, "track_id": t, "isrc": isrc, "row_count": n}
        for entry, tracks in zip(manifest.shards, per_shard_tracks, strict=True) for t, (isrc, n) in sorted(tracks.items())])
    w.insert("shard_exclusions", [{
        "build_id": build_id, "release_id": manifest.release_id, "track_id": e.track_id, "isrc": e.isrc,
        "reason_code": e.reason_code, "message": e.message, "recorded_at": manifest.built_at}
        for e in manifest.excluded])
    for ack in manifest.acknowledgements if decision is not None else ():
        acknowledgements.record(w, ack, release_id=manifest.release_id, subject=manifest_ref)
    reasons: dict[str, int] = {}
    for e in manifest.excluded:
        reasons[e.reason_code] = reasons.get(e.reason_code, 0) + 1
    w.payload.update({
        "build_id": build_id, "manifest_uri": manifest_ref, "manifest_sha256": manifest_sha256,
        "shards": len(manifest.shards), "rows": manifest.total_rows, "merkle_root": manifest.merkle_root,
        "excluded": reasons, "output_uri": output_ref,
    })
    if decision is not None:
        w.payload["gate"] = {"checked_on": decision.checked_on.isoformat(), "policy_hash": decision.policy_hash,
                             "reason_codes": [str(r) for r in decision.reason_codes],
                             "denied_track_ids": list(decision.denied_track_ids)}
    return build_id
