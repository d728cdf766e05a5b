"""Were the records altered? Re-walk the audit chain and re-hash every file the ledger vouches for.

The audit chain protects the ledger's history; the files it points to (shard manifests, Parquet
shards, model checkpoints, delivery audio) are protected by the hashes the ledger recorded when
they were written. A check runs in three layers, each resting on the one before:

1. the chain itself (every entry's content and link);
2. the ledger rows that carry a file hash against the hash the audit entry recorded at the time,
   so rewriting a file *and* its ledger row is still caught;
3. every referenced file, local or ``s3://``, re-hashed against its ledger row (trace snapshots
   included: they are what ``trace model`` and ``trace release`` answer from).

The first finding, in that order, is the first thing that does not match.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from licensing import decision_counts
from licensing.evaluate import inconsistent_explanations
from lineage.snapshots import AUDIT_ACTION, audit_subject
from shards.verify import manifest_location
from store.audit import Checkpoint, verify_against, verify_chain, verify_heads
from store.objects import ObjectStore
from store.paths import resolve
from store.roles import data_root
from store.sealing import verify_sealed

FindingKind = Literal["audit_entry", "audit_head", "sealed_row", "ledger_row", "manifest", "shard", "checkpoint",
                      "audio", "snapshot"]


class Finding(BaseModel):
    """One thing that does not match what was recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FindingKind
    subject: str = Field(description="What the ledger names: a file as it records it (relative to its data "
                                     "directory, or a URI), a row, an audit entry")
    problem: str
    expected: str | None = None
    actual: str | None = None
    location: str | None = Field(default=None, description="Where the file was looked for, when it differs from "
                                                           "the subject (the data directory being checked)")

    def describe(self) -> str:
        text = f"{self.kind} {self.subject}: {self.problem}"
        if self.location and self.location != self.subject:
            text += f" at {self.location}"
        if self.expected or self.actual:
            text += f" (recorded {self.expected}, found {self.actual})"
        return text


class IntegrityReport(BaseModel):
    """What :func:`verify_ledger` checked and every finding, first mismatch first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    audit_entries: int
    checked: dict[str, int]
    findings: tuple[Finding, ...] = ()

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def _payloads(con: duckdb.DuckDBPyConnection, action: str) -> list[tuple[str, dict[str, Any]]]:
    rows = con.execute("SELECT subject, payload FROM audit_log WHERE action = ? ORDER BY seq", [action]).fetchall()
    return [(subject, json.loads(payload) if isinstance(payload, str) else dict(payload or {}))
            for subject, payload in rows]


def _audited_rows(con: duckdb.DuckDBPyConnection) -> list[Finding]:
    """Ledger rows whose recorded hash differs from the one audited when they were written."""
    findings: list[Finding] = []
    builds = {p.get("build_id"): p.get("manifest_sha256") for _, p in _payloads(con, "shards.build")}
    # A purge on revocation records the build it writes in its own entry.
    builds.update({b["new_build_id"]: b.get("new_manifest_sha256") for _, p in _payloads(con, "shards.purge")
                   for b in p.get("builds", []) if b.get("new_build_id")})
    for build_id, sha in con.execute("SELECT build_id, manifest_sha256 FROM shard_builds ORDER BY built_at").fetchall():
        if build_id not in builds:
            findings.append(Finding(kind="ledger_row", subject=f"shard_builds {build_id}",
                                    problem="no audit entry records this shard build"))
        elif builds[build_id] != sha:
            findings.append(Finding(kind="ledger_row", subject=f"shard_builds {build_id}",
                                    problem="manifest hash differs from the audited one",
                                    expected=builds[build_id], actual=sha))
    completed: dict[str, Any] = {}
    started: dict[str, Any] = {}
    for subject, payload in _payloads(con, "train.start"):
        if payload.get("event") == "completed":
            completed[subject] = payload.get("checkpoint_sha256")
        elif payload.get("event") in ("started", "resumed"):
            started[subject] = payload.get("manifest_sha256")
    runs = con.execute("SELECT run_id, status, manifest_sha256, checkpoint_sha256 FROM training_runs "
                       "ORDER BY started_at, run_id").fetchall()
    for run_id, status, manifest_sha, checkpoint_sha in runs:
        if run_id in started and started[run_id] != manifest_sha:
            findings.append(Finding(kind="ledger_row", subject=f"training_runs {run_id}",
                                    problem="manifest hash differs from the audited one",
                                    expected=started[run_id], actual=manifest_sha))
        if status == "completed" and completed.get(run_id) != checkpoint_sha:
            findings.append(Finding(kind="ledger_row", subject=f"training_runs {run_id}",
                                    problem="checkpoint hash differs from the audited one",
                                    expected=completed.get(run_id), actual=checkpoint_sha))
    ingests = {s.removeprefix("delivery:"): p.get("manifest_sha256") for s, p in _payloads(con, "catalog.ingest")}
    for delivery_id, sha in con.execute("SELECT delivery_id, manifest_sha256 FROM deliveries "
                                        "ORDER BY received_at").fetchall():
        if delivery_id in ingests and ingests[delivery_id] != sha:
            findings.append(Finding(kind="ledger_row", subject=f"deliveries {delivery_id}",
                                    problem="delivery manifest hash differs from the audited one",
                                    expected=ingests[delivery_id], actual=sha))
    return findings


def _snapshot_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str]]:
    # A ledger from before trace snapshots, opened read-only, has no such table.
    if not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'trace_snapshots' "
                       "AND database_name = current_database()").fetchone():
        return []
    return con.execute("SELECT kind, subject, uri, sha256 FROM trace_snapshots ORDER BY kind, subject").fetchall()


def _audited_snapshots(con: duckdb.DuckDBPyConnection) -> list[Finding]:
    """Trace snapshot rows whose file or hash differs from the last one audited for them."""

    audited = {subject: payload for subject, payload in _payloads(con, AUDIT_ACTION)}
    findings = []
    for kind, subject, uri, sha in _snapshot_rows(con):
        payload = audited.get(audit_subject(kind, subject))
        if payload is None:
            findings.append(Finding(kind="ledger_row", subject=f"trace_snapshots {kind} {subject}",
                                    problem="no audit entry records this trace snapshot"))
        elif (payload.get("uri"), payload.get("sha256")) != (uri, sha):
            findings.append(Finding(kind="ledger_row", subject=f"trace_snapshots {kind} {subject}",
                                    problem="snapshot file or hash differs from the audited one",
                                    expected=payload.get("sha256"), actual=sha))
    return findings


def _derived_rows(con: duckdb.DuckDBPyConnection) -> list[Finding]:
    """``current_decisions`` is derived from ``decisions``: every row must point at a decision that says the same."""
    rows = con.execute(
        "SELECT c.track_id, c.purpose, c.territory, c.on_date, c.decision_id, c.allowed, d.allowed "
        "FROM current_decisions c LEFT JOIN decisions d ON d.decision_id = c.decision_id AND d.track_id = c.track_id "
        "AND d.purpose = c.purpose AND d.territory = c.territory AND d.on_date = c.on_date "
        "AND d.policy_hash = c.policy_hash WHERE d.decision_id IS NULL OR d.allowed <> c.allowed "
        "ORDER BY c.track_id LIMIT 20").fetchall()
    return [Finding(kind="ledger_row", subject=f"current_decisions {t} {p}/{terr}/{on}",
                    problem=("points at no recorded decision" if recorded is None else
                             f"says {'allow' if allowed else 'deny'}, its decision {d} says "
                             f"{'allow' if recorded else 'deny'}") + ": edited outside the write path")
            for t, p, terr, on, d, allowed, recorded in rows]


def _rehash(store: ObjectStore, uri: str) -> tuple[str | None, str | None]:
    """(sha256, problem) of an object; a missing or unreadable object is a problem, not an error."""
    try:
        return store.sha256(uri)[0], None
    except FileNotFoundError:
        return None, "missing"
    except Exception as exc:  # noqa: BLE001 - a storage error is a finding; the check goes on
        return None, f"unreadable: {type(exc).__name__}: {exc}"


def verify_ledger(con: duckdb.DuckDBPyConnection, *, store: ObjectStore | None = None,
                  audio: bool = False, against: Checkpoint | None = None) -> IntegrityReport:
    """Re-walk the audit chain and its signed heads, re-hash every sealed row, and re-hash every manifest,
    shard and checkpoint the ledger references.

    With ``audio=True`` every catalog audio file is re-hashed too; with ``against`` (a checkpoint kept
    elsewhere) the log must still hold the exact prefix it signed. Nothing is raised for a mismatch:
    each one is a :class:`Finding`, the first being the first thing that does not match.
    """
    store = store or ObjectStore()
    root = data_root(con)  # relative locations resolve here: a copied data directory is checked against its own files
    findings: list[Finding] = []
    chain = verify_chain(con)
    if not chain.ok:
        findings.append(Finding(kind="audit_entry", subject=f"audit_log seq {chain.first_bad_seq}",
                                problem=chain.problem or "does not match"))
    heads = verify_against(con, against) if against is not None else verify_heads(con)
    findings.extend(Finding(kind="audit_head", subject=f"audit head #{h.seq}" if h.seq else "audit log",
                            problem=h.problem) for h in heads)
    sealed, rows_checked = verify_sealed(con)
    findings.extend(Finding(kind="sealed_row", subject=f"{f.table} {f.subject}",
                            problem=f.problem + (f" (audit entry #{f.audit_seq})" if f.audit_seq else ""),
                            expected=f.expected, actual=f.actual) for f in sealed)
    findings.extend(_derived_rows(con))
    findings.extend(Finding(kind="ledger_row", subject=f"decision_counts {p}/{t}/{on} {h[:12]} from {b or 'start'} "
                                                       f"{reason or 'allowed'}",
                            problem="differs from a recount of current_decisions: edited outside the write path "
                                    "(or left by a version that kept no counts); `linernotes rights recount` rebuilds them", expected=str(fresh), actual=str(kept))
                    for p, t, on, h, b, reason, kept, fresh in decision_counts.mismatches(con))
    findings.extend(Finding(kind="ledger_row", subject=f"decisions {decision_id} ({track_id})",
                            problem="explanation differs from what the decision's sealed columns give: edited outside "
                                    "the write path", expected=expected, actual=stored)
                    for decision_id, track_id, stored, expected in inconsistent_explanations(con))
    findings.extend(_audited_rows(con))
    findings.extend(_audited_snapshots(con))
    checked = {"sealed_rows": sum(rows_checked.values()), "manifests": 0, "shards": 0, "checkpoints": 0, "audio": 0,
               "snapshots": 0}

    seen_manifests: dict[str, str | None] = {}

    def check_file(kind: FindingKind, ref: str, expected: str, owner: str) -> None:
        location = resolve(root, ref)
        actual, problem = _rehash(store, location)
        if problem or actual != expected:
            findings.append(Finding(kind=kind, subject=ref, problem=f"{problem or 'content changed'} ({owner})",
                                    expected=expected, actual=actual, location=location))

    def check_manifest(ref: str, expected: str, owner: str) -> None:
        location = resolve(root, ref)
        if location not in seen_manifests:
            seen_manifests[location] = None
            checked["manifests"] += 1
            actual, problem = _rehash(store, location)
            seen_manifests[location] = actual
            if problem:
                findings.append(Finding(kind="manifest", subject=ref, problem=f"{problem} ({owner})",
                                        location=location))
                return
        actual = seen_manifests[location]
        if actual is not None and actual != expected:
            findings.append(Finding(kind="manifest", subject=ref, problem=f"content changed ({owner})",
                                    expected=expected, actual=actual, location=location))

    # Builds a purge replaced had their files erased on purpose (recorded in shard_purges and its audit entry).
    purged_builds = {b for (b,) in con.execute("SELECT old_build_id FROM shard_purges").fetchall()}
    purged_manifests = {m for (m,) in con.execute("SELECT old_manifest_sha256 FROM shard_purges").fetchall()}
    builds = con.execute("SELECT build_id, manifest_uri, manifest_sha256 FROM shard_builds "
                         "ORDER BY built_at, build_id").fetchall()
    for build_id, manifest_ref, manifest_sha in builds:
        if build_id in purged_builds:
            continue
        check_manifest(manifest_ref, manifest_sha, f"shard build {build_id}")
        for ref, sha in con.execute("SELECT uri, sha256 FROM shard_files WHERE build_id = ? ORDER BY shard_index",
                                    [build_id]).fetchall():
            checked["shards"] += 1
            check_file("shard", ref, sha, f"shard build {build_id}")
    runs = con.execute("SELECT run_id, manifest_uri, manifest_sha256, checkpoint_uri, checkpoint_sha256 "
                       "FROM training_runs ORDER BY started_at, run_id").fetchall()
    for run_id, manifest_ref, manifest_sha, checkpoint_ref, checkpoint_sha in runs:
        if manifest_ref and manifest_sha and manifest_sha not in purged_manifests:
            check_manifest(manifest_location(manifest_ref), manifest_sha, f"training run {run_id}")
        if checkpoint_ref and checkpoint_sha:
            checked["checkpoints"] += 1
            check_file("checkpoint", checkpoint_ref, checkpoint_sha, f"run {run_id}")
    for kind, subject, ref, sha in _snapshot_rows(con):
        checked["snapshots"] += 1
        check_file("snapshot", ref, sha, f"{kind} trace snapshot of {subject}")
    if audio:
        for track_id, ref, sha in con.execute("SELECT track_id, source_path, audio_sha256 FROM tracks "
                                              "ORDER BY ingested_at, track_id").fetchall():
            checked["audio"] += 1
            check_file("audio", ref, sha, f"track {track_id}")
    return IntegrityReport(ok=not findings, audit_entries=chain.entries, checked=checked, findings=tuple(findings))
