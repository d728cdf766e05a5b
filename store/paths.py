"""Locations in the ledger are relative to the data directory (or object-store URIs).

A data directory copied or moved elsewhere then verifies against its own files, not the
original's. A file outside the data directory keeps its absolute path (it is not part of the
home and cannot move with it).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import duckdb

from store.roles import data_root


def _is_uri(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def to_ref(root: Path | None, location: str | os.PathLike[str]) -> str:
    """How the ledger records ``location``: relative to ``root`` when inside it, else as given."""
    text = os.fspath(location)
    if _is_uri(text) or root is None:
        return text
    if text.startswith("file://"):
        text = urlparse(text).path
    path = Path(text)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return text


def resolve(root: Path | None, ref: str) -> str:
    """The location a ledger reference points to now: under ``root`` when relative."""
    if not ref or _is_uri(ref) or ref.startswith("file://") or root is None or Path(ref).is_absolute():
        return ref
    return str(root / ref)


def ledger_ref(con: duckdb.DuckDBPyConnection, location: str | os.PathLike[str]) -> str:
    """:func:`to_ref` against the data directory of the ledger ``con`` is open on."""
    return to_ref(data_root(con), location)


def ledger_path(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """:func:`resolve` against the data directory of the ledger ``con`` is open on."""
    return resolve(data_root(con), ref)
