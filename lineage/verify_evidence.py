"""Re-check a linernotes evidence pack offline. Needs only Python 3.11+, pyarrow and duckdb.

    python verify_evidence.py [PACK_DIR]

Checks, in order, and stops at the first failure, naming the file:
  1. every file against the SHA-256 in index.json, and no file missing or unlisted;
  2. the audit segment's hash chain (payload hashes, entry hashes, links), and that it records the
     manifest and checkpoint hashes of the run;
  3. the manifest's per-shard and dataset Merkle roots, recomputed from the sample IDs in samples.parquet;
  4. every sample rests on an allow decision of the release in decisions.parquet;
  5. every exclusion proof in proofs/ (lists and Merkle range exclusions), one per denied recording.
Exit status 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq


class Failed(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# RFC 9162 Merkle tree over sample IDs sorted by UTF-8 bytes (as linernotes builds it).
def leaf(sample_id: str) -> bytes:
    return hashlib.sha256(b"\x00" + sample_id.encode("utf-8")).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def subtree(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(subtree(leaves[:k]), subtree(leaves[k:]))


def merkle_root(ids: list[str]) -> str:
    ordered = sorted(ids, key=lambda s: s.encode("utf-8"))
    return subtree([leaf(s) for s in ordered]).hex() if ordered else sha256(b"")


def verify_inclusion(proof: dict, root: str) -> bool:
    index, size = proof["index"], proof["size"]
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    current = leaf(proof["sample_id"])
    for hex_sibling in proof["path"]:
        if sn == 0:
            return False
        sibling = bytes.fromhex(hex_sibling)
        if fn & 1 or fn == sn:
            current = node(sibling, current)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            current = node(current, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and current.hex() == root


def range_excluded(r: dict, root: str, size: int) -> bool:
    low, high = r["low"].encode("utf-8"), r["high"].encode("utf-8")
    if (r["low"], r["high"]) != (r["track_id"] + ":", r["track_id"] + ";"):
        return False
    left, right = r["left"], r["right"]
    if size == 0:
        return left is None and right is None and root == sha256(b"")
    for side in (left, right):
        if side is not None and (side["size"] != size or not verify_inclusion(side, root)):
            return False
    if left is None and right is None:
        return False
    if left is not None and not left["sample_id"].encode("utf-8") < low:
        return False
    if right is not None and not high <= right["sample_id"].encode("utf-8"):
        return False
    if left is None:
        return right["index"] == 0
    if right is None:
        return left["index"] == size - 1
    return right["index"] == left["index"] + 1


def check_index(pack: Path) -> dict:
    index = json.loads((pack / "index.json").read_text(encoding="utf-8"))
    listed = index["files"]
    for name, meta in sorted(listed.items()):
        path = pack / name
        if not path.is_file():
            raise Failed(name, "listed in index.json but missing")
        if sha256(path.read_bytes()) != meta["sha256"]:
            raise Failed(name, "SHA-256 differs from index.json")
    present = {p.relative_to(pack).as_posix() for p in pack.rglob("*") if p.is_file()} - {"index.json"}
    for name in sorted(present - set(listed)):
        if "__pycache__" not in name:
            raise Failed(name, "not listed in index.json")
    return index


def check_audit(pack: Path, run: dict, manifest_sha: str) -> int:
    entries = [json.loads(line) for line in (pack / "audit_segment.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()]
    prev = None
    for e in entries:
        where = f"audit_segment.jsonl seq {e['seq']}"
        if prev is not None and (e["seq"] != prev["seq"] + 1 or e["prev_hash"] != prev["entry_hash"]):
            raise Failed(where, "does not link to the previous entry")
        if sha256(e["payload"].encode("utf-8")) != e["payload_sha256"]:
            raise Failed(where, "payload does not match its hash")
        fields = [str(e["seq"]), e["recorded_at"], e["actor"], e["action"], e["subject"], e["payload_sha256"],
                  e["prev_hash"]]
        if sha256("|".join(fields).encode("utf-8")) != e["entry_hash"]:
            raise Failed(where, "entry hash does not match its fields")
        prev = e
    runs = [json.loads(e["payload"]) for e in entries if e["subject"] == run["run_id"] and e["action"] == "train.start"]
    started = [p for p in runs if p.get("event") in ("started", "resumed")]
    if not started or started[-1].get("manifest_sha256") != manifest_sha:
        raise Failed("audit_segment.jsonl", "no training start recording this manifest's hash")
    if run.get("status") == "completed":
        done = [p for p in runs if p.get("event") == "completed"]
        if not done or done[-1].get("checkpoint_sha256") != run.get("checkpoint_sha256"):
            raise Failed("audit_segment.jsonl", "no training completion recording the checkpoint's hash")
    return len(entries)


def check_manifest(pack: Path, run: dict) -> tuple[dict, str]:
    data = (pack / "manifest.json").read_bytes()
    manifest_sha = sha256(data)
    if manifest_sha != run["manifest_sha256"]:
        raise Failed("manifest.json", "SHA-256 differs from the run record's manifest_sha256")
    manifest = json.loads(data)
    table = pq.read_table(pack / "samples.parquet", columns=["sample_id", "shard_index"])
    ids, shards = table.column("sample_id").to_pylist(), table.column("shard_index").to_pylist()
    by_shard: dict[int, list[str]] = {}
    for sample_id, index in zip(ids, shards):
        by_shard.setdefault(index, []).append(sample_id)
    for entry in manifest["shards"]:
        got = by_shard.get(entry["index"], [])
        if len(got) != entry["rows"] or merkle_root(got) != entry["merkle_root"]:
            raise Failed("samples.parquet", f"sample IDs of {entry['name']} do not match its Merkle root")
    if len(ids) != manifest["total_rows"] or merkle_root(ids) != manifest["merkle_root"]:
        raise Failed("samples.parquet", "sample IDs do not match the manifest's dataset Merkle root")
    return manifest, manifest_sha


def check_decisions(pack: Path) -> int:
    con = duckdb.connect()
    samples, decisions = str(pack / "samples.parquet"), str(pack / "decisions.parquet")
    bad = con.execute(f"SELECT s.sample_id FROM read_parquet('{samples}') s LEFT JOIN read_parquet('{decisions}') d "
                      "ON d.decision_id = s.decision_id WHERE d.decision_id IS NULL OR NOT d.allowed "
                      "OR NOT d.in_release ORDER BY 1 LIMIT 1").fetchone()
    if bad:
        raise Failed("decisions.parquet", f"sample {bad[0]} does not rest on an allow decision of the release")
    return con.execute(f"SELECT count(*) FROM read_parquet('{samples}')").fetchone()[0]


def check_proofs(pack: Path, manifest: dict, manifest_sha: str) -> int:
    con = duckdb.connect()
    denied = {r[0] for r in con.execute(
        f"SELECT DISTINCT isrc FROM read_parquet('{pack / 'decisions.parquet'}') WHERE NOT allowed").fetchall()}
    files = sorted((pack / "proofs").glob("absent-*.json"))
    proven = set()
    for path in files:
        name = path.relative_to(pack).as_posix()
        proof = json.loads(path.read_text(encoding="utf-8"))
        if proof.get("manifest_sha256") != manifest_sha:
            raise Failed(name, "made against another manifest")
        if proof["dataset_root"] != manifest["merkle_root"] or proof["dataset_size"] != manifest["total_rows"]:
            raise Failed(name, "dataset root or size differs from the manifest")
        for entry in manifest["shards"]:
            if proof["isrc"] in entry["isrcs"] or set(proof["track_ids"]) & set(entry["track_ids"]):
                raise Failed(name, f"the recording is listed in shard {entry['name']}")
        ranges = proof.get("ranges") or []
        if {r["track_id"] for r in ranges} != set(proof["track_ids"]):
            raise Failed(name, "not every track ID has a Merkle range exclusion")
        for r in ranges:
            if not range_excluded(r, manifest["merkle_root"], manifest["total_rows"]):
                raise Failed(name, f"range exclusion for {r['track_id']} does not verify")
        proven.add(proof["isrc"])
    missing = sorted(denied - proven)
    if missing:
        raise Failed("proofs/", f"no exclusion proof for denied recording {missing[0]}")
    return len(files)


def main(argv: list[str]) -> int:
    pack = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent)
    try:
        index = check_index(pack)
        print(f"ok  files: {len(index['files'])} match index.json")
        run = json.loads((pack / "run.json").read_text(encoding="utf-8"))
        manifest, manifest_sha = check_manifest(pack, run)
        print(f"ok  manifest: {len(manifest['shards'])} shard root(s) and the dataset root match "
              f"{manifest['total_rows']} sample IDs")
        print(f"ok  audit: {check_audit(pack, run, manifest_sha)} chained entries, run start and end recorded")
        print(f"ok  decisions: all {check_decisions(pack)} samples rest on allow decisions of the release")
        print(f"ok  proofs: {check_proofs(pack, manifest, manifest_sha)} exclusion proof(s) hold")
    except Failed as exc:
        print(f"FAILED {exc}")
        return 1
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"FAILED pack unreadable: {type(exc).__name__}: {exc}")
        return 1
    print(f"evidence pack for {run['run_id']} verified")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
