"""Every mutation the pipeline makes appends an audit entry with its actor, subject and content hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from store.audit import sha256_text, verify_chain
from store.database import connect
from tests.lineage.pipeline import ON, PURPOSE, REFUSED_RUN_ID, REJECTED_RELEASE_ID, TERRITORY, Pipeline, _party


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entries(db: Path, action: str) -> list[tuple[str, str, dict]]:
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT actor, subject, payload FROM audit_log WHERE action = ? ORDER BY seq",
                           [action]).fetchall()
    return [(actor, subject, json.loads(payload)) for actor, subject, payload in rows]


def test_every_pipeline_mutation_is_audited_with_content_hashes(pipeline: Pipeline) -> None:
    db = pipeline.db_path
    with connect(db, read_only=True) as con:
        assert verify_chain(con).ok
        delivery_sha = con.execute("SELECT manifest_sha256 FROM deliveries").fetchone()[0]
        release_sha = dict(con.execute("SELECT release_id, content_sha256 FROM releases").fetchall())
        batch = con.execute("SELECT string_agg(decision_id, ',' ORDER BY decision_id) FROM current_decisions "
                            "WHERE purpose = ?", [PURPOSE]).fetchone()[0]
        refusal_id = con.execute("SELECT refusal_id FROM training_refusals WHERE run_id = ?",
                                 [REFUSED_RUN_ID]).fetchone()[0]
        refused_seq = con.execute("SELECT seq FROM audit_log WHERE action = 'train.start.refused'").fetchone()[0]

    [(actor, subject, ingest)] = _entries(db, "catalog.ingest")
    assert (actor, subject, ingest["manifest_sha256"]) == ("pipeline", "delivery:dlv-lineage", delivery_sha)
    [(actor, subject, imported)] = _entries(db, "rights.import")
    assert actor == "rita.rights" and imported["file_sha256"] == _sha(pipeline.home / subject)
    proposals = {s: p for _, s, p in _entries(db, "release.propose")}
    [evaluation] = proposals[pipeline.release_id]["evaluations"]
    assert (evaluation["purpose"], evaluation["territory"], evaluation["on_date"]) == (PURPOSE, TERRITORY, str(ON))
    assert evaluation["decisions_sha256"] == sha256_text(batch)
    assert {s: p["content_sha256"] for s, p in proposals.items()} == release_sha
    [(actor, subject, approved)] = _entries(db, "release.approve")
    assert (actor, subject, approved["content_sha256"]) == ("rita.rights", pipeline.release_id,
                                                           release_sha[pipeline.release_id])
    [(actor, subject, rejected)] = _entries(db, "release.reject")
    assert (actor, subject) == ("rita.rights", REJECTED_RELEASE_ID) and rejected["comment"]
    [(actor, _, built)] = _entries(db, "shards.build")
    assert (actor, built["manifest_sha256"]) == ("mira.ml", _sha(Path(pipeline.manifest_uri)))
    assert built["manifest_uri"] == "objects/shards/rel-lineage-gen/manifest.json"  # relative to the data directory
    assert built["seal"]["shard_builds"]["rows"] == 1 and built["seal"]["shard_files"]["rows"] == 2
    run = [(s, p) for _, s, p in _entries(db, "train.start")]
    assert [(s, p["event"]) for s, p in run] == [(pipeline.run_id, "started"), (pipeline.run_id, "completed")]
    assert run[0][1]["manifest_sha256"] == built["manifest_sha256"]
    assert run[1][1]["checkpoint_sha256"] == _sha(pipeline.run_dir / "model.pt")
    [(_, subject, refused)] = _entries(db, "train.start.refused")
    assert (subject, f"refusal-{refused_seq}") == (REFUSED_RUN_ID, refusal_id)
    assert refused["reason_codes"] == ["release_not_approved", "approval_missing", "manifest_missing"]
    assert refused["decision"]["use"] == "train"


def test_role_refusals_and_acknowledgements_are_audited(pipeline: Pipeline, ledger_copy: Path,
                                                        tmp_path: Path) -> None:
    from licensing.evaluate import evaluate_catalog
    from licensing.importers.tabular import import_rights_file
    from licensing.policy import load_policy
    from licensing.releases import ApprovalRefused, approve_release
    from shards.writer import build_shards

    with connect(ledger_copy) as con:
        with pytest.raises(ApprovalRefused):
            approve_release(con, REJECTED_RELEASE_ID, actor="aude.audit", comment="not mine to approve")
    [(actor, subject, refusal)] = _entries(ledger_copy, "release.approve.refused")
    assert (actor, subject, refusal["code"]) == ("aude.audit", REJECTED_RELEASE_ID, "role_missing")

    # Ada withdraws generative-training consent after the release was approved.
    ada = _party("Ada Lark")
    doc = {"schema_version": 1, "parties": [], "deals": [], "consents": [{
        "consent_id": f"C-{ada}", "party_id": ada, "scope": "all", "scope_ref": None, "ai_training": "allowed",
        "ai_generative_training": "notAllowed", "data_mining": "allowed", "ai_inference": "notAllowed",
        "evidence_ref": "test://consent/withdrawn", "evidence_sha256": "f" * 64,
        "granted_at": "2026-01-15T00:00:00Z", "revoked_at": None}]}
    rights = tmp_path / "withdrawal.json"
    rights.write_text(json.dumps(doc))
    with connect(ledger_copy) as con:
        import_rights_file(con, rights, actor="rita.rights")
        evaluate_catalog(con, load_policy(), purpose=PURPOSE, territory=TERRITORY, on_date=ON, actor="rita.rights")
        # A new build leaves the withdrawn recordings out, and says so in its audited entry.
        manifest = build_shards(con, pipeline.release_id, output_uri=str(tmp_path / "shards"), actor="mira.ml")
        assert verify_chain(con).ok
    withdrawn = sorted(pipeline.track_ids[i] for i in ("GBLNR2600001", "GBLNR2600002"))
    assert sorted(e.track_id for e in manifest.excluded if e.reason_code == "denied_since_approval") == withdrawn
    (actor, subject, build) = _entries(ledger_copy, "shards.build")[-1]
    assert (actor, subject) == ("mira.ml", pipeline.release_id)
    assert build["excluded"]["denied_since_approval"] == 2 and build["manifest_uri"].startswith(str(tmp_path))
