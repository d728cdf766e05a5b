"""The evidence pack for a model: everything an auditor needs, and a script that re-checks it offline.

Layout of the pack directory::

    README.md                  what is here and how to check it
    run.json                   the training run record
    manifest.json              the shard manifest the run read (bytes as written)
    samples.parquet            every sample ID of the shard set with its shard, track, ISRC, decision
    decisions.parquet|csv      the release's decisions (every track, allowed or not, with reasons)
    approvals.json             the release's approval trail
    exposure.csv               samples seen per track
    attribution/               the attribution statement (JSON, CSVs) and model card, as the run wrote them
    audit_segment.jsonl        a contiguous stretch of the audit chain covering this model's records
    ai_act_summary.json|md     the EU AI Act public summary of training content
    proofs/absent-<ISRC>.json  exclusion proofs for every recording the release's policy denied
    verify_evidence.py         the standalone checker (Python, pyarrow, duckdb; no linernotes)
    index.json                 SHA-256 and size of every other file
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from lineage import ai_act, proofs
from lineage.trace import TraceNotFound
from schemas.shards import ShardManifest
from shards.verify import manifest_location, shard_location
from store.ledger import command
from store.objects import ObjectStore
from store.paths import ledger_path, ledger_ref
from store.roles import Principal, RoleBook

CHECKER = Path(__file__).with_name("verify_evidence.py")
PACK_FORMAT = "linernotes-evidence/1"


class EvidencePack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    directory: str
    run_id: str
    release_id: str
    files: int
    index_sha256: str
    audit_first_seq: int
    audit_last_seq: int
    proofs: int


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in row.items()})
    return out.getvalue()


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def audit_segment(con: duckdb.DuckDBPyConnection, *, run_id: str, release_id: str) -> list[dict[str, Any]]:
    """The contiguous audit entries from the first about this model's records to the last.

    Subjects counted: the run, its release, the deliveries of its tracks, and the shard builds of
    the release. Entries in between about other subjects are kept: a chain is checked link by link.
    """
    deliveries = [f"delivery:{r[0]}" for r in con.execute(
        "SELECT DISTINCT t.delivery_id FROM release_tracks rt JOIN tracks t USING (track_id) WHERE rt.release_id = ?",
        [release_id]).fetchall()]
    bounds = con.execute("SELECT min(seq), max(seq) FROM audit_log WHERE subject = ? OR subject = ? OR "
                         "list_contains(?, subject)", [run_id, release_id, deliveries]).fetchone()
    if not bounds or bounds[0] is None:
        return []
    rows = con.execute("SELECT seq, recorded_at, actor, action, subject, payload, payload_sha256, prev_hash, "
                       "entry_hash FROM audit_log WHERE seq BETWEEN ? AND ? ORDER BY seq", list(bounds)).fetchall()
    keys = ["seq", "recorded_at", "actor", "action", "subject", "payload", "payload_sha256", "prev_hash", "entry_hash"]
    out = []
    for row in rows:
        entry = dict(zip(keys, row, strict=True))
        # The exact string the entry hash was taken over.
        entry["recorded_at"] = entry["recorded_at"].astimezone(UTC).isoformat()
        out.append(entry)
    return out


def build_pack(con: duckdb.DuckDBPyConnection, run_id: str, out_dir: Path, *, provider: str,
               contact: str | None = None, store: ObjectStore | None = None) -> EvidencePack:
    """Write the evidence pack for ``run_id`` into ``out_dir`` (which must be empty or absent)."""
    store = store or ObjectStore()
    run = _rows(con, "SELECT * EXCLUDE (record) FROM training_runs WHERE run_id = ?", [run_id])
    if not run:
        raise TraceNotFound(f"training run {run_id} does not exist")
    record = run[0]
    release_id = record["release_id"]
    if not record["manifest_uri"]:
        raise TraceNotFound(f"training run {run_id} read no shard manifest")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)

    manifest_uri = manifest_location(ledger_path(con, record["manifest_uri"]))
    manifest_bytes = store.get(manifest_uri)
    if hashlib.sha256(manifest_bytes).hexdigest() != record["manifest_sha256"]:
        raise ValueError(f"manifest {manifest_uri} no longer hashes to what run {run_id} recorded")
    manifest = ShardManifest.model_validate_json(manifest_bytes)
    (out_dir / "manifest.json").write_bytes(manifest_bytes)
    (out_dir / "run.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n",
                                      encoding="utf-8")

    tables = []
    for entry in manifest.shards:
        data = store.get(shard_location(manifest_uri, entry))
        table = pq.ParquetFile(io.BytesIO(data)).read(columns=["sample_id", "track_id", "isrc", "decision_id"])
        tables.append(table.append_column("shard_index", pa.array([entry.index] * table.num_rows, pa.int32())))
    samples = pa.concat_tables(tables) if tables else pa.table({
        "sample_id": pa.array([], pa.string()), "track_id": pa.array([], pa.string()),
        "isrc": pa.array([], pa.string()), "decision_id": pa.array([], pa.string()),
        "shard_index": pa.array([], pa.int32())})
    pq.write_table(samples, out_dir / "samples.parquet")

    release = _rows(con, "SELECT purpose, territory, on_date, policy_hash FROM releases WHERE release_id = ?",
                    [release_id])[0]
    decisions = _rows(con, """
        SELECT d.decision_id, d.track_id, d.isrc, d.purpose, d.territory, d.on_date, d.allowed, d.reason_codes,
               d.explanation, d.policy_hash, d.inputs_hash, d.deal_id, d.consent_ids, d.decided_at,
               rt.release_id IS NOT NULL AS in_release
        FROM current_decisions c JOIN decisions d USING (decision_id)
        LEFT JOIN release_tracks rt ON rt.release_id = ? AND rt.decision_id = d.decision_id
        WHERE c.purpose = ? AND c.territory = ? AND c.on_date = ? AND c.policy_hash = ?
        UNION ALL
        SELECT d.decision_id, d.track_id, d.isrc, d.purpose, d.territory, d.on_date, d.allowed, d.reason_codes,
               d.explanation, d.policy_hash, d.inputs_hash, d.deal_id, d.consent_ids, d.decided_at, TRUE
        FROM release_tracks rt JOIN decisions d USING (decision_id)
        WHERE rt.release_id = ? AND NOT EXISTS (SELECT 1 FROM current_decisions c WHERE c.decision_id = d.decision_id
              AND c.purpose = ? AND c.territory = ? AND c.on_date = ? AND c.policy_hash = ?)
        ORDER BY isrc""", [release_id, release["purpose"], release["territory"], release["on_date"],
                           release["policy_hash"], release_id, release["purpose"], release["territory"],
                           release["on_date"], release["policy_hash"]])
    decision_columns = list(decisions[0]) if decisions else ["decision_id"]
    pq.write_table(pa.Table.from_pylist([{**d, "on_date": str(d["on_date"]), "decided_at": str(d["decided_at"])}
                                         for d in decisions]) if decisions else pa.table({"decision_id": []}),
                   out_dir / "decisions.parquet")
    (out_dir / "decisions.csv").write_text(_csv(decisions, decision_columns), encoding="utf-8")
    approvals = _rows(con, "SELECT release_id, actor, action, comment, recorded_at FROM approvals WHERE release_id = ? "
                           "ORDER BY recorded_at", [release_id])
    (out_dir / "approvals.json").write_text(json.dumps(approvals, indent=2, default=str) + "\n", encoding="utf-8")
    exposure = _rows(con, "SELECT track_id, isrc, samples, fraction FROM training_exposure WHERE run_id = ? "
                          "ORDER BY samples DESC, isrc", [run_id])
    (out_dir / "exposure.csv").write_text(_csv(exposure, ["track_id", "isrc", "samples", "fraction"]),
                                          encoding="utf-8")

    run_dir = Path(ledger_path(con, str(record["checkpoint_uri"] or "")).removeprefix("file://")).parent
    attribution_dir = out_dir / "attribution"
    attribution_dir.mkdir()
    for name in ("attribution.json", "attribution_tracks.csv", "attribution_holders.csv", "model_card.json",
                 "MODEL_CARD.md"):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, attribution_dir / name)

    segment = audit_segment(con, run_id=run_id, release_id=release_id)
    (out_dir / "audit_segment.jsonl").write_text(
        "".join(json.dumps(e, sort_keys=True, default=str) + "\n" for e in segment), encoding="utf-8")

    ai_act.write_summary(ai_act.build_summary(con, run_id, provider=provider, contact=contact), out_dir)

    proofs_dir = out_dir / "proofs"
    proofs_dir.mkdir()
    shard_ids: list[list[str]] = [[] for _ in manifest.shards]
    for sid, index in zip(samples.column("sample_id").to_pylist(), samples.column("shard_index").to_pylist(),
                          strict=True):
        shard_ids[index].append(sid)
    denied = sorted({d["isrc"] for d in decisions if not d["allowed"]})
    for isrc in denied:
        proof = proofs.prove_absent(manifest_bytes, manifest_uri=manifest_uri, isrc=isrc,
                                    track_ids=proofs.track_ids_for(con, isrc), shard_ids=shard_ids, run_id=run_id)
        (proofs_dir / f"absent-{isrc}.json").write_text(proof.model_dump_json(indent=2) + "\n", encoding="utf-8")

    shutil.copy2(CHECKER, out_dir / "verify_evidence.py")
    (out_dir / "README.md").write_text(_readme(run_id, release_id, len(denied)), encoding="utf-8")
    index = {"format": PACK_FORMAT, "run_id": run_id, "release_id": release_id,
             "created_at": datetime.now(UTC).isoformat(), "files": {}}
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(out_dir).as_posix()
        index["files"][rel] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}
    index_text = json.dumps(index, indent=2, sort_keys=True) + "\n"
    (out_dir / "index.json").write_text(index_text, encoding="utf-8")
    return EvidencePack(directory=str(out_dir), run_id=run_id, release_id=release_id, files=len(index["files"]) + 1,
                        index_sha256=hashlib.sha256(index_text.encode()).hexdigest(),
                        audit_first_seq=segment[0]["seq"] if segment else 0,
                        audit_last_seq=segment[-1]["seq"] if segment else 0, proofs=len(denied))


def export_pack(con: duckdb.DuckDBPyConnection, run_id: str, out_dir: Path, *, actor: Principal | str,
                provider: str, contact: str | None = None, store: ObjectStore | None = None,
                roles: RoleBook | None = None) -> EvidencePack:
    """:func:`build_pack` as the audited ``audit.export`` command: the role is checked before anything is
    written, and the audit entry records the pack's index hash and the audit segment it holds."""
    with command(con, actor, "audit.export", run_id, roles=roles) as w:
        pack = build_pack(con, run_id, out_dir, provider=provider, contact=contact, store=store)
        w.payload.update({"export": "evidence", **pack.model_dump(), "directory": ledger_ref(con, pack.directory)})
    return pack


def _readme(run_id: str, release_id: str, proofs_count: int) -> str:
    return (f"# Evidence pack for model {run_id}\n\n"
            f"Training run `{run_id}` on release `{release_id}`. Check everything here, offline, with Python, "
            "pyarrow and duckdb:\n\n    python verify_evidence.py\n\n"
            "It re-hashes every file against `index.json`, re-walks the audit segment's hash chain, recomputes "
            "the manifest's Merkle roots from the sample IDs in `samples.parquet`, checks that every sample rests "
            "on an allow decision in `decisions.parquet`, and re-checks the "
            f"{proofs_count} exclusion proof(s) in `proofs/`. The SHA-256 of `index.json` is recorded in the "
            "ledger's audit log when the pack is exported.\n")
