"""How training finds, reads and verifies a release's shard manifest (the shards package owns the format)."""

from __future__ import annotations

import hashlib

import duckdb
from pydantic import ValidationError

from schemas.shards import ShardManifest
from shards.verify import latest_build, manifest_location, verify_manifest
from store.objects import ObjectStore


def manifest_sha256(uri: str) -> str:

    return hashlib.sha256(ObjectStore().get(manifest_location(uri))).hexdigest()


def load(uri: str) -> ShardManifest | None:
    """The manifest at ``uri`` (a manifest file or its directory), or None when absent or malformed."""

    try:
        return ShardManifest.model_validate_json(ObjectStore().get(manifest_location(uri)))
    except (OSError, ValidationError, ValueError):
        return None


def latest_manifest_uri(con: duckdb.DuckDBPyConnection, release_id: str) -> str | None:
    """The most recently built manifest for a release, or None when shards were never built."""

    build = latest_build(con, release_id)
    return build.manifest_uri if build else None


def verify(uri: str) -> tuple[bool, str]:
    """Re-check every shard byte and sample ID against the manifest; (ok, what is wrong)."""

    report = verify_manifest(uri)
    if report.ok:
        return True, "ok"
    details = [*report.problems, *(f"missing {n}" for n in report.missing), *(f"altered {n}" for n in report.altered),
               *(f"unlisted {n}" for n in report.extra)]
    return False, "; ".join(details) or "verification failed"
