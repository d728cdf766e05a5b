"""How training finds, reads and verifies a release's shard manifest (the shards package owns the format)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb


def read_bytes(uri: str) -> bytes:
    """The bytes behind a local path, ``file://`` or object-store URI."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri).read_bytes()
    from store.objects import ObjectStore

    return ObjectStore().get(uri)


def write_bytes(uri: str, data: bytes) -> None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    from store.objects import ObjectStore

    ObjectStore().put(uri, data)


def manifest_sha256(uri: str) -> str:
    return hashlib.sha256(read_bytes(uri)).hexdigest()


def manifest_release(uri: str) -> str | None:
    """The release a manifest declares, when it declares one."""
    try:
        content = json.loads(read_bytes(uri))
    except (OSError, ValueError):
        return None
    value = content.get("release_id") if isinstance(content, dict) else None
    return str(value) if value is not None else None


def latest_manifest_uri(con: duckdb.DuckDBPyConnection, release_id: str) -> str | None:
    """The most recently built manifest for a release, or None when shards were never built."""
    tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "shard_builds" not in tables:
        return None
    row = con.execute(
        "SELECT manifest_uri FROM shard_builds WHERE release_id = ? ORDER BY built_at DESC LIMIT 1", [release_id]
    ).fetchone()
    return row[0] if row else None


def verify(uri: str, verifier: Callable[[str], Any] | None = None) -> tuple[bool, str]:
    """Run the shard verifier; any exception or falsy/failed report counts as a failure, with its text."""
    if verifier is None:
        from shards.verify import verify_manifest

        verifier = verify_manifest
    try:
        report = verifier(uri)
    except Exception as exc:  # noqa: BLE001 - a verifier crash is a verification failure, reported as such
        return False, f"{type(exc).__name__}: {exc}"
    ok = report if isinstance(report, bool) else bool(getattr(report, "ok", False))
    return ok, "ok" if ok else str(getattr(report, "problems", None) or report)
