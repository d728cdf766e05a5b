"""The layout of a catalog delivery on disk, and reading its metadata files.

A delivery is a directory::

    audio/**            audio files (WAV, FLAC, MP3, OGG Vorbis, Opus, M4A)
    metadata.json       optional: {"tracks": [{"file": "audio/x.ogg", "isrc": ..., ...}]}
    metadata.csv        optional: columns file, isrc, title, artists (";"-separated), album, ai_generated
    rights/*.json|csv   licenses and consents (licensing importers)
    ddex/*.xml          DDEX ERN NewReleaseMessages (licensing importers)

Metadata files override embedded tags field by field; tags fill what they leave out.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.audio import AUDIO_SUFFIXES

METADATA_FIELDS = ("isrc", "title", "artists", "album", "composers", "ai_generated", "license")


@dataclass(frozen=True)
class MetadataProblem:
    source_ref: str
    reason_code: str
    message: str


def audio_files(delivery_dir: Path) -> list[Path]:
    """Every file under audio/ (anything else, or a symlink escaping the delivery, is not audio)."""
    root = (delivery_dir / "audio").resolve()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            found.append(path)
    return found


def is_audio_name(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "y"}


def _normalise(entry: dict[str, Any]) -> dict[str, Any]:
    """The record's known fields, cleaned; raises TypeError naming a field of the wrong type."""
    out: dict[str, Any] = {}
    for key in METADATA_FIELDS:
        if key not in entry or entry[key] in (None, ""):
            continue
        value = entry[key]
        if key in ("artists", "composers"):
            if isinstance(value, str):
                value = value.split(";")
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"{key!r} must be a string or a list of strings, not {type(value).__name__}")
            value = [v.strip() for v in value if v.strip()]
        elif key == "ai_generated":
            if not isinstance(value, (bool, str, int)):
                raise TypeError(f"'ai_generated' must be true/false, not {type(value).__name__}")
            value = _truthy(value)
        elif not isinstance(value, str):
            raise TypeError(f"{key!r} must be a string, not {type(value).__name__}")
        out[key] = value
    return out


def read_metadata(delivery_dir: Path) -> tuple[dict[str, dict[str, Any]], list[MetadataProblem]]:
    """Per-file metadata keyed by path relative to the delivery, plus one problem per bad record."""
    entries: dict[str, dict[str, Any]] = {}
    problems: list[MetadataProblem] = []

    def take(source: str, index: int, entry: Any) -> None:
        ref = f"{source}#{index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not entry["file"].strip():
            problems.append(MetadataProblem(ref, "malformed_record", f"{ref}: record has no 'file' field"))
            return
        rel = entry["file"].strip()
        try:
            json.dumps(entry, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, TypeError, ValueError) as exc:
            problems.append(MetadataProblem(ref, "invalid_text", f"{ref}: not storable text ({type(exc).__name__})"))
            return
        if Path(rel).is_absolute() or ".." in Path(rel).parts or "\x00" in rel:
            problems.append(MetadataProblem(ref, "path_escape", f"{ref}: file path {rel!r} leaves the delivery"))
            return
        if rel in entries:
            problems.append(MetadataProblem(ref, "duplicate_record", f"{ref}: {rel!r} is described twice"))
            return
        try:
            entries[rel] = _normalise(entry)
        except TypeError as exc:
            problems.append(MetadataProblem(ref, "invalid_metadata", f"{ref} ({rel}): {exc}"))

    json_path = delivery_dir / "metadata.json"
    if json_path.is_file():
        try:
            doc = json.loads(json_path.read_text(encoding="utf-8"))
            records = doc.get("tracks", []) if isinstance(doc, dict) else doc
            if not isinstance(records, list):
                raise ValueError("'tracks' is not a list")
            for i, entry in enumerate(records):
                take("metadata.json", i, entry)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            problems.append(MetadataProblem("metadata.json", "malformed_file", f"metadata.json: {exc}"))
    csv_path = delivery_dir / "metadata.csv"
    if csv_path.is_file():
        try:
            with open(csv_path, newline="", encoding="utf-8") as handle:
                for i, row in enumerate(csv.DictReader(handle), start=2):
                    take("metadata.csv", i, row)
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.append(MetadataProblem("metadata.csv", "malformed_file", f"metadata.csv: {exc}"))
    return entries, problems


def rights_files(delivery_dir: Path) -> Iterator[Path]:
    for sub, suffixes in (("rights", {".json", ".csv"}), ("ddex", {".xml"})):
        folder = delivery_dir / sub
        if folder.is_dir():
            yield from (p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in suffixes)
