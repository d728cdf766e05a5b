"""Long-form shards for audio-language models: whole recordings with their text, one row per track.

Each row holds the full recording compressed as a file (FLAC or Opus, at the source's or a declared
rate and channel count) in the ``audio`` column, every attribution column of the crop shards, and the
recording's text: a caption made from catalog metadata, the lyrics when a publisher's licence on
record covers the release's use (else none, with ``lyrics_status`` saying why), and the user's own
captions and questions from a side file keyed by ISRC. Each text entry names its author, licence and
source. Built through the same ``shards.build`` command, gate and manifest as the crop shards.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import duckdb
import numpy as np
import pyarrow as pa
from pydantic import ValidationError

from licensing.gate import ReleaseRefused, decide, refusal_code
from licensing.lyrics import LyricsDecision, decide_lyrics
from schemas.gate import GateDecision, GateReason
from schemas.shards import FORMAT_VERSION, Acknowledgement, ExcludedTrack, LongformConfig, ShardEntry, ShardManifest
from schemas.text import TextEntry, UserText
from shards import acknowledgements
from shards.audio import AudioError
from shards.merkle import merkle_root
from shards.writer import (
    MANIFEST_NAME,
    RIGHTS_HOLDER,
    SHARD_NAME,
    TORN_SHARD,
    _acknowledgement,
    _ordered_map,
    _record,
    _release_tracks,
    _row_groups,
    _TrackRow,
    code_version,
    load_manifest,
    write_parquet,
)
from store.digest import sha256_file
from store.ledger import Writer, command, record_refusal
from store.objects import ObjectStore, join
from store.quarantine import Rejection, quarantine
from store.roles import Principal, RoleBook, as_principal

__all__ = ["LONGFORM_SCHEMA", "build_longform", "encode_recording", "read_user_texts"]

TEXT = pa.struct([("kind", pa.string()), ("text", pa.string()), ("question", pa.string()), ("author", pa.string()),
                  ("license", pa.string()), ("source", pa.string())])
LONGFORM_SCHEMA = pa.schema([
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
    ("sample_rate", pa.int32()),
    ("channels", pa.int32()),
    ("num_frames", pa.int64()),
    ("duration_s", pa.float64()),
    ("codec", pa.string()),
    ("audio_sha256", pa.string()),
    ("caption", pa.string()),
    ("lyrics", pa.string()),
    ("lyrics_status", pa.string()),
    ("lyrics_licence_id", pa.string()),
    ("texts", pa.list_(TEXT)),
    ("audio", pa.binary()),
])
CAPTION_AUTHOR = "linernotes caption template v1"
_TAG_KEYS = {"genre": ("genre", "tcon"), "tempo": ("bpm", "tbpm", "tempo"), "key": ("initialkey", "key", "tkey")}


@dataclass(frozen=True)
class Encoded:
    data: bytes
    sample_rate: int
    channels: int
    frames: int


def _decode(path: str | io.BytesIO, rate: int | None, channels: int | None) -> tuple[np.ndarray, int, int]:
    """Interleaved int16 PCM of the first audio stream, at ``rate``/``channels`` or the source's."""
    parts: list[np.ndarray] = []
    with av.open(path) as container:
        if not container.streams.audio:
            raise AudioError("audio_no_stream", f"{path} has no audio stream")
        stream = container.streams.audio[0]
        out_rate = rate or stream.codec_context.sample_rate
        out_channels = channels or min(2, stream.codec_context.channels or 1)
        layout = "mono" if out_channels == 1 else "stereo"
        resampler = av.AudioResampler(format="s16", layout=layout, rate=out_rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    return np.ascontiguousarray(pcm, dtype="<i2"), out_rate, out_channels


def encode_recording(path: str, config: LongformConfig) -> Encoded:
    """Decode a source file and encode it as the layout's codec, bit-exactly reproducible."""
    pcm, rate, channels = _decode(path, config.sample_rate, config.channels)
    frames = len(pcm) // channels
    if frames / rate > config.max_seconds:
        raise AudioError("audio_too_long", f"{frames / rate:.1f} s is longer than the {config.max_seconds:.0f} s limit")
    if frames == 0:
        raise AudioError("audio_empty", f"{path} decodes to no samples")
    codec_rate = 48000 if config.codec == "opus" else rate
    if codec_rate != rate:
        pcm, _, _ = _resample(pcm, rate, channels, codec_rate)
    buffer = io.BytesIO()
    layout = "mono" if channels == 1 else "stereo"
    fmt, codec = ("flac", "flac") if config.codec == "flac" else ("ogg", "libopus")
    with av.open(buffer, "w", format=fmt, options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=codec_rate)
        stream.layout = layout
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        if config.codec == "opus":
            stream.bit_rate = config.opus_bitrate
        step = 4096 * channels
        interleaved = pcm.reshape(1, -1)
        for start in range(0, interleaved.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(interleaved[:, start:start + step]),
                                               format="s16", layout=layout)
            frame.sample_rate = codec_rate
            frame.pts = start // channels
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return Encoded(data=buffer.getvalue(), sample_rate=codec_rate, channels=channels, frames=frames * codec_rate // rate)


def _resample(pcm: np.ndarray, rate: int, channels: int, target: int) -> tuple[np.ndarray, int, int]:
    layout = "mono" if channels == 1 else "stereo"
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=layout)
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout=layout, rate=target)
    parts = [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
    parts += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    return np.concatenate(parts).astype("<i2"), target, channels


def read_user_texts(path: str | Path) -> tuple[dict[str, list[UserText]], list[Rejection]]:
    """The side file (JSON Lines of :class:`~schemas.text.UserText`) by ISRC, and the lines left out with the
    reason; a bad line never stops the others."""
    by_isrc: dict[str, list[UserText]] = {}
    rejected: list[Rejection] = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        ref = f"{path}#{number}"
        try:
            entry = UserText.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            rejected.append(Rejection(ref, "user_text_invalid",
                                      f"{ref}: {'.'.join(map(str, first['loc'])) or 'line'}: {first['msg']}"))
            continue
        if entry.kind == "qa" and not entry.question:
            rejected.append(Rejection(ref, "user_text_invalid", f"{ref}: a qa line needs a question"))
            continue
        by_isrc.setdefault(entry.isrc, []).append(entry)
    return by_isrc, rejected


def _tags(con: duckdb.DuckDBPyConnection, track_ids: list[str]) -> dict[str, tuple[str | None, dict[str, str]]]:
    out: dict[str, tuple[str | None, dict[str, str]]] = {}
    for track_id, album, tags in con.execute(
            "SELECT track_id, album, tags FROM tracks WHERE track_id IN (SELECT unnest(?::VARCHAR[]))",
            [track_ids]).fetchall():
        raw = json.loads(tags) if isinstance(tags, str) else (tags or {})
        lowered = {str(k).lower(): str(v) for k, v in (raw or {}).items() if v not in (None, "")}
        out[track_id] = (album, lowered)
    return out


def metadata_caption(track: _TrackRow, album: str | None, tags: dict[str, str], duration_s: float) -> str:
    """A plain caption from catalog metadata: title, artists, album, genre, tempo and key where known, length."""
    minutes, seconds = divmod(round(duration_s), 60)
    parts = [f'"{track.title or "Untitled"}" by {", ".join(track.artists) or "an unknown artist"}']
    if album:
        parts.append(f"from the album {album}")
    found = {name: next((tags[k] for k in keys if k in tags), None) for name, keys in _TAG_KEYS.items()}
    if found["genre"]:
        parts.append(f"genre {found['genre']}")
    if found["tempo"]:
        parts.append(f"tempo {found['tempo']} BPM")
    if found["key"]:
        parts.append(f"key {found['key']}")
    parts.append(f"duration {minutes}:{seconds:02d}")
    return "; ".join(parts) + "."


def _texts(track: _TrackRow, caption: str, lyrics: LyricsDecision, users: list[UserText],
           side_file: str | None) -> list[dict[str, Any]]:
    entries = [TextEntry(kind="caption", text=caption, author=CAPTION_AUTHOR, license="CC0-1.0",
                         source="catalog: title, artists, album, tags, duration")]
    if lyrics.allowed and lyrics.lyrics:
        entries.append(TextEntry(kind="lyrics", text=lyrics.lyrics, author=lyrics.publisher_name or "publisher",
                                 license=lyrics.license or "", source=f"lyrics licence {lyrics.licence_id}"))
    entries += [TextEntry(kind=u.kind, text=u.text, question=u.question, author=u.author, license=u.license,
                          source=side_file or "user side file") for u in users]
    return [e.model_dump() for e in entries]


def build_longform(con: duckdb.DuckDBPyConnection, release_id: str, *, output_uri: str,
                   config: LongformConfig | None = None, actor: Principal | str,
                   texts_path: str | Path | None = None, acknowledge: Acknowledgement | str | None = None,
                   store: ObjectStore | None = None, roles: RoleBook | None = None) -> ShardManifest:
    """Write the release's whole recordings and their text as long-form shards, then the manifest; one
    ``shards.build`` command records them (role checked first, the release gate asked, as for crops)."""
    config = config or LongformConfig()
    store = store or ObjectStore()
    principal = as_principal(actor)
    output_uri = output_uri.rstrip("/")
    ack = _acknowledgement(principal, acknowledge)
    try:
        with command(con, principal, "shards.build", release_id, roles=roles) as w:
            decision = decide(con, release_id, use="build", acknowledge=ack)
            if not decision.allowed:
                raise ReleaseRefused(decision)
            return _build(w, decision, output_uri=output_uri, config=config, store=store, texts_path=texts_path)
    except ReleaseRefused as exc:
        refused = exc.decision
        record_refusal(con, principal, "shards.build", release_id, code=refusal_code(refused),
                       message=refused.message, details={"reason_codes": [str(r) for r in refused.reason_codes],
                                                         "layout": "longform"})
        raise


def sample_format(config: LongformConfig) -> dict[str, Any]:
    return {"column": "audio", "layout": "longform", "encoding": config.codec,
            "container": "flac" if config.codec == "flac" else "ogg",
            "sample_rate": config.sample_rate or "source", "channels": config.channels or "source",
            "max_seconds": config.max_seconds, "text_columns": ["caption", "lyrics", "texts"],
            "encoder": f"PyAV {av.__version__} (FFmpeg, bitexact)"}


def _build(w: Writer, decision: GateDecision, *, output_uri: str, config: LongformConfig, store: ObjectStore,
           texts_path: str | Path | None) -> ShardManifest:
    con, release_id = w.con, decision.release_id
    if decision.approval is None or decision.purpose is None:
        raise ReleaseRefused(decision)
    manifest_uri = join(output_uri, MANIFEST_NAME)
    if store.exists(manifest_uri):
        previous = load_manifest(manifest_uri, store)
        if previous.release_id != release_id:
            raise FileExistsError(f"{output_uri} holds shards of release {previous.release_id}; choose another output")
    skipped = {d.track_id: (str(GateReason.DENIED_SINCE_APPROVAL),
                            (f"denied on {decision.checked_on} under the release's policy: {d.explanation}; "
                             "left out of this build")) for d in decision.denied_tracks}
    users, rejected = read_user_texts(texts_path) if texts_path else ({}, [])
    quarantine(w, rejected, stage="shards.longform.texts")
    tracks = _release_tracks(con, release_id, decision.purpose)
    lyrics = decide_lyrics(con, [t.isrc for t in tracks], purpose=decision.purpose,
                           territory=decision.territory or "", on_date=decision.checked_on)
    tags = _tags(con, [t.track_id for t in tracks])
    metadata = {"linernotes.release_id": release_id, "linernotes.policy_hash": decision.policy_hash or "",
                "linernotes.code_version": code_version(), "linernotes.format_version": FORMAT_VERSION,
                "linernotes.layout": "longform", "linernotes.config": config.model_dump_json(),
                "linernotes.sample_format": json.dumps(sample_format(config), sort_keys=True)}

    def encode(track: _TrackRow) -> tuple[tuple[str, str] | None, Encoded | None]:
        if track.exclusion is not None:
            return track.exclusion, None
        if track.track_id in skipped:
            return skipped[track.track_id], None
        source = track.source_path or ""
        if not Path(source).is_file():
            return ("audio_missing", f"source audio not found: {source}"), None
        if sha256_file(source) != track.audio_sha256:
            return ("audio_sha256_mismatch", f"sha256 of {source} differs from the ledger's {track.audio_sha256}"), None
        try:
            return None, encode_recording(source, config)
        except AudioError as exc:
            return (exc.reason_code, str(exc)), None
        except (av.FFmpegError, ValueError, OSError) as exc:
            return ("audio_decode_error", f"{type(exc).__name__}: {exc}"), None

    excluded: list[ExcludedTrack] = []
    rows: list[dict[str, Any]] = []
    lyrics_counts: dict[str, int] = {}
    side = str(texts_path) if texts_path else None
    for track, (reason, encoded) in _ordered_map(encode, tracks, 2):
        if reason is not None or encoded is None:
            code, message = reason or ("audio_decode_error", "no audio")
            excluded.append(ExcludedTrack(track_id=track.track_id, isrc=track.isrc, reason_code=code, message=message))
            continue
        album, track_tags = tags.get(track.track_id, (None, {}))
        duration = encoded.frames / encoded.sample_rate
        caption = metadata_caption(track, album, track_tags, duration)
        verdict = lyrics[track.isrc]
        lyrics_counts[verdict.status] = lyrics_counts.get(verdict.status, 0) + 1
        rows.append({
            "sample_id": f"{track.track_id}:full", "track_id": track.track_id, "isrc": track.isrc,
            "title": track.title, "artists": track.artists, "rights_holders": track.rights_holders,
            "license": track.license, "deal_id": track.deal_id, "consent_ids": track.consent_ids,
            "decision_id": track.decision_id, "policy_hash": track.policy_hash, "release_id": release_id,
            "source_audio_sha256": track.audio_sha256, "sample_rate": encoded.sample_rate,
            "channels": encoded.channels, "num_frames": encoded.frames, "duration_s": duration, "codec": config.codec,
            "audio_sha256": hashlib.sha256(encoded.data).hexdigest(), "caption": caption,
            "lyrics": verdict.lyrics if verdict.allowed else None, "lyrics_status": verdict.status,
            "lyrics_licence_id": verdict.licence_id if verdict.allowed else None,
            "texts": _texts(track, caption, verdict, users.get(track.isrc, []), side), "audio": encoded.data})

    written: list[tuple[ShardEntry, dict[str, tuple[str, int]]]] = []
    try:
        for index, start in enumerate(range(0, len(rows), config.rows_per_shard)):
            written.append(_write_shard(store, output_uri, index, rows[start:start + config.rows_per_shard],
                                        config, metadata))
        store.sync([e.uri for e, _ in written])
    except BaseException:
        for entry, _ in written:
            with contextlib.suppress(Exception):
                store.delete(entry.uri)
        raise
    entries = [e for e, _ in written]
    all_ids = [r["sample_id"] for r in rows]
    manifest = ShardManifest(
        code_version=code_version(), release_id=release_id, purpose=decision.purpose,
        territory=decision.territory or "", on_date=str(decision.on_date), policy_hash=decision.policy_hash or "",
        release_content_sha256=decision.content_sha256 or "", approval=decision.approval, config=config,
        sample_format=sample_format(config), shards=tuple(entries), total_rows=len(rows), track_count=len(rows),
        merkle_root=merkle_root(all_ids), excluded=tuple(excluded),
        acknowledgements=(a,) if (a := acknowledgements.as_record(decision, "build")) else (),
        built_by=w.actor, built_at=datetime.now(UTC))
    manifest_bytes = manifest.model_dump_json(indent=2).encode("utf-8")
    store.put(manifest_uri, manifest_bytes)
    keep = {e.name for e in entries}
    for uri in store.list(output_uri):
        name = uri.rsplit("/", 1)[-1]
        if (SHARD_NAME.match(name) and name not in keep) or TORN_SHARD.match(name):
            store.delete(uri)
    _record(w, manifest, manifest_uri=manifest_uri, manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            output_uri=output_uri, per_shard_tracks=[c for _, c in written], decision=decision)
    w.payload.update({"layout": "longform", "lyrics": lyrics_counts, "user_text_rejected": len(rejected),
                      "user_text_lines": sum(len(v) for v in users.values())})
    return manifest


def _write_shard(store: ObjectStore, output_uri: str, index: int, rows: list[dict[str, Any]], config: LongformConfig,
                 metadata: dict[str, str]) -> tuple[ShardEntry, dict[str, tuple[str, int]]]:
    schema = LONGFORM_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in
                                            sorted({**metadata, "linernotes.shard_index": str(index)}.items())})
    table = pa.Table.from_pylist(rows, schema=schema)
    data = write_parquet(table, config)
    sha = hashlib.sha256(data).hexdigest()
    name = f"shard-{index:05d}-{sha[:16]}.parquet"
    uri = join(output_uri, name)
    store.put(uri, data, fsync=False)
    ids = [r["sample_id"] for r in rows]
    counts = {r["track_id"]: (r["isrc"], 1) for r in rows}
    entry = ShardEntry(index=index, name=name, uri=uri, sha256=sha, bytes=len(data), rows=len(ids),
                       row_groups=_row_groups(len(ids), config.rows_per_row_group),
                       isrcs=tuple(sorted({r["isrc"] for r in rows})), track_ids=tuple(sorted(counts)),
                       first_sample_id=ids[0], last_sample_id=ids[-1], merkle_root=merkle_root(ids))
    return entry, counts
