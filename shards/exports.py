"""Long-form shards as other trainers read them, each keeping the rights columns and a manifest.

Formats: the Audio Flamingo / Music Flamingo conversation JSON (``sound`` list, turns referring to
``<sound-0>``), WebDataset tar, a Hugging Face ``datasets`` dataset (``Audio`` feature) and Lhotse
Shar. Every record carries the attribution columns and the text entries with their provenance;
beside the files, ``export_manifest.json`` names the source build (release, Merkle root, manifest
hash), the format, the files with their SHA-256, and who exported it. The source is admitted like a
loader (release gate, purged builds refused, shard hashes), and the export is a ``shards.export``
command in the ledger. An export is a copy outside the shard store: a later purge cannot reach it,
but its manifest names the root, which the ledger then reports as purged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from lhotse import Recording
from lhotse.shar import SharWriter
from pydantic import BaseModel, ConfigDict

from schemas.shards import Acknowledgement, ShardManifest
from shards.loader import admit, verify_hashes
from shards.verify import manifest_location, shard_location
from store.database import connect
from store.home import Home
from store.ledger import authorize, command
from store.objects import ObjectStore
from store.paths import ledger_ref
from store.roles import Principal, RoleBook, as_principal

__all__ = ["EXPORT_FORMATS", "ExportManifest", "export_longform", "rights_of"]

ExportFormat = Literal["af-json", "webdataset", "hf-datasets", "lhotse-shar"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("af-json", "webdataset", "hf-datasets", "lhotse-shar")
RIGHTS_COLUMNS = ("sample_id", "track_id", "isrc", "title", "artists", "rights_holders", "license", "deal_id",
                  "consent_ids", "decision_id", "policy_hash", "release_id", "source_audio_sha256")
_AUDIO_INFO = ("sample_rate", "channels", "num_frames", "duration_s", "codec", "audio_sha256")
_PROMPTS = {"caption": "Describe this music.", "user_caption": "Describe this music.",
            "lyrics": "Transcribe the lyrics of this song."}


class ExportManifest(BaseModel):
    """What an export holds and where it came from; written last, beside the exported files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    format: ExportFormat
    release_id: str
    source_manifest_uri: str
    source_manifest_sha256: str
    source_merkle_root: str
    policy_hash: str
    purpose: str
    territory: str
    records: int
    isrcs: tuple[str, ...]
    rights_columns: tuple[str, ...] = RIGHTS_COLUMNS
    files: dict[str, str]
    exported_by: str
    exported_at: datetime


def rights_of(row: dict[str, Any]) -> dict[str, Any]:
    """The attribution columns of a long-form row."""
    return {k: row[k] for k in RIGHTS_COLUMNS}


def _records(store: ObjectStore, manifest_uri: str, manifest: ShardManifest, skip: frozenset[str]) -> Iterator[dict[str, Any]]:
    for entry in manifest.shards:
        with store.open(shard_location(manifest_uri, entry)) as handle:
            parquet = pq.ParquetFile(handle, page_checksum_verification=True)
            for rg in range(parquet.num_row_groups):
                for row in parquet.read_row_group(rg).to_pylist():
                    if row["track_id"] not in skip:
                        yield row


def _ext(row: dict[str, Any]) -> str:
    return "flac" if row["codec"] == "flac" else "opus"


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    return {**rights_of(row), **{k: row[k] for k in _AUDIO_INFO}, "caption": row["caption"], "lyrics": row["lyrics"],
            "lyrics_status": row["lyrics_status"], "lyrics_licence_id": row["lyrics_licence_id"], "texts": row["texts"]}


def conversation(row: dict[str, Any]) -> list[dict[str, str]]:
    """The row's text as Audio Flamingo turns: each text a question (first one with ``<sound-0>``) and answer."""
    turns: list[dict[str, str]] = []
    for text in row["texts"]:
        question = text["question"] if text["kind"] == "qa" else _PROMPTS[text["kind"]]
        prefix = "<sound-0>\n" if not turns else ""
        turns += [{"from": "human", "value": prefix + question}, {"from": "gpt", "value": text["text"]}]
    return turns


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_af_json(rows: Iterator[dict[str, Any]], out: Path, per_file: int) -> list[dict[str, Any]]:
    (out / "audio").mkdir(parents=True, exist_ok=True)
    entries, metas = [], []
    for row in rows:
        name = f"audio/{row['track_id']}.{_ext(row)}"
        (out / name).write_bytes(row["audio"])
        entries.append({"id": row["sample_id"], "sound": [name], "duration": row["duration_s"],
                        "conversations": conversation(row), "rights": rights_of(row),
                        "text_provenance": [{k: t[k] for k in ("kind", "author", "license", "source")}
                                            for t in row["texts"]], "lyrics_status": row["lyrics_status"]})
        metas.append(_meta(row))
    (out / "af_conversations.json").write_text(json.dumps(entries, indent=1, ensure_ascii=False), encoding="utf-8")
    return metas


def _write_webdataset(rows: Iterator[dict[str, Any]], out: Path, per_tar: int) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    metas: list[dict[str, Any]] = []
    tars: list[tarfile.TarFile] = []
    try:
        for i, row in enumerate(rows):
            if i % per_tar == 0:
                if tars:
                    tars[-1].close()
                tars.append(tarfile.open(out / f"shard-{i // per_tar:05d}.tar", "w",  # noqa: SIM115 (closed below)
                                         format=tarfile.USTAR_FORMAT))
            meta = _meta(row)
            # WebDataset keys may not contain dots; the track ID has none.
            for suffix, data in ((_ext(row), row["audio"]),
                                 ("json", json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"))):
                info = tarfile.TarInfo(f"{row['track_id']}.{suffix}")
                info.size, info.mtime, info.mode = len(data), 0, 0o444
                tars[-1].addfile(info, io.BytesIO(data))
            metas.append(meta)
    finally:
        if tars:
            tars[-1].close()
    return metas


def _write_hf(rows: Iterator[dict[str, Any]], out: Path, per_file: int) -> list[dict[str, Any]]:
    metas = [_meta(row) | {"audio": {"bytes": row["audio"], "path": f"{row['track_id']}.{_ext(row)}"}} for row in rows]
    holder = datasets.Features({"name": datasets.Value("string"), "share": datasets.Value("float64"),
                                "party_id": datasets.Value("string")})
    text = datasets.Features({k: datasets.Value("string") for k in ("kind", "text", "question", "author", "license",
                                                                     "source")})
    strings = ("sample_id", "track_id", "isrc", "title", "license", "deal_id", "decision_id", "policy_hash",
               "release_id", "source_audio_sha256", "codec", "audio_sha256", "caption", "lyrics", "lyrics_status",
               "lyrics_licence_id")
    features = datasets.Features({
        **{k: datasets.Value("string") for k in strings},
        "artists": datasets.List(datasets.Value("string")), "consent_ids": datasets.List(datasets.Value("string")),
        "rights_holders": datasets.List(holder), "texts": datasets.List(text),
        "sample_rate": datasets.Value("int32"), "channels": datasets.Value("int32"),
        "num_frames": datasets.Value("int64"), "duration_s": datasets.Value("float64"),
        "audio": datasets.Audio(decode=True),
    })
    # The rows are already in the Audio feature's storage form ({bytes, path}); building the Arrow table
    # directly keeps the stored FLAC/Opus bytes as they are (encode_example would re-encode through torchcodec).
    table = pa.Table.from_pylist([{name: m[name] for name in features} for m in metas], schema=features.arrow_schema)
    datasets.Dataset(table).save_to_disk(str(out))
    return [{k: v for k, v in m.items() if k != "audio"} for m in metas]


def _write_shar(rows: Iterator[dict[str, Any]], out: Path, per_file: int) -> list[dict[str, Any]]:
    metas: list[dict[str, Any]] = []
    # In a folder of its own: CutSet.from_shar takes every file of its directory for a Shar field.
    out = out / "shar"
    out.mkdir(parents=True, exist_ok=True)
    # FLAC in the tar: lossless, so an Opus source is kept as decoded, a FLAC one exactly.
    with SharWriter(str(out), fields={"recording": "flac"}, shard_size=per_file) as writer:
        for row in rows:
            cut = Recording.from_bytes(row["audio"], recording_id=row["track_id"]).to_cut()
            cut.id = row["sample_id"].replace(":", "_")
            meta = _meta(row)
            cut.custom = {"rights": rights_of(row), "texts": row["texts"], "caption": row["caption"],
                          "lyrics": row["lyrics"], "lyrics_status": row["lyrics_status"]}
            writer.write(cut)
            metas.append(meta)
    return metas


_WRITERS = {"af-json": _write_af_json, "webdataset": _write_webdataset, "hf-datasets": _write_hf,
            "lhotse-shar": _write_shar}


def export_longform(manifest_uri: str, output_dir: str | os.PathLike[str], *, format: ExportFormat,
                    actor: Principal | str, ledger_path: str | os.PathLike[str] | None = None,
                    acknowledge: Acknowledgement | None = None, store: ObjectStore | None = None,
                    roles: RoleBook | None = None, records_per_file: int = 256) -> ExportManifest:
    """Write a long-form build in ``format`` under ``output_dir`` with ``export_manifest.json``, after the
    loader's admission; recorded as a ``shards.export`` command (role checked before anything is written).
    ``records_per_file`` sizes WebDataset tars and Shar shards (give DataLoader workers a file each)."""
    if format not in _WRITERS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
    store = store or ObjectStore()
    manifest_uri = manifest_location(manifest_uri)
    raw = store.get(manifest_uri)
    manifest = ShardManifest.model_validate_json(raw)
    if manifest.layout != "longform":
        raise ValueError(f"{manifest_uri} holds crop shards; exports take long-form shards")
    source_sha = hashlib.sha256(raw).hexdigest()
    path = Path(ledger_path) if ledger_path is not None else Home.from_env().db_path
    out = Path(output_dir)
    with connect(path) as con:
        authorize(con, actor, "shards.export", manifest.release_id, roles=roles)
    # Admission opens the ledger itself (it may record an acknowledgement), so it runs after the role check.
    ack = admit(manifest, manifest_uri, source_sha, path, acknowledge, roles)
    verify_hashes(store, manifest, manifest_uri)
    skip = frozenset(ack.skipped_track_ids if ack else ())
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose an empty export directory")
    out.mkdir(parents=True, exist_ok=True)
    metas = _WRITERS[format](_records(store, manifest_uri, manifest, skip), out, max(1, records_per_file))
    files = {p.relative_to(out).as_posix(): _sha(p) for p in sorted(out.rglob("*")) if p.is_file()}
    export = ExportManifest(format=format, release_id=manifest.release_id, source_manifest_uri=manifest_uri,
                            source_manifest_sha256=source_sha, source_merkle_root=manifest.merkle_root,
                            policy_hash=manifest.policy_hash, purpose=manifest.purpose, territory=manifest.territory,
                            records=len(metas), isrcs=tuple(sorted({m["isrc"] for m in metas})), files=files,
                            exported_by=as_principal(actor).name, exported_at=datetime.now(UTC))
    body = export.model_dump_json(indent=2)
    (out / "export_manifest.json").write_text(body, encoding="utf-8")
    with connect(path) as con, command(con, actor, "shards.export", manifest.release_id, roles=roles) as w:
        w.payload.update({"format": format, "output": str(out.resolve()), "records": export.records,
                          "files": len(files), "source_merkle_root": manifest.merkle_root,
                          "source_manifest_uri": ledger_ref(con, manifest_uri),
                          "export_manifest_sha256": hashlib.sha256(body.encode("utf-8")).hexdigest()})
    return export
