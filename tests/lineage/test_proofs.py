"""`linernotes prove`: absence and inclusion proofs that re-check from the manifest alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from lineage.proofs import (
    AbsenceProof,
    InclusionClaim,
    ProofError,
    check_proof,
    load_proof,
    prove,
    prove_range_absent,
    verify_range_absent,
)
from shards.merkle import merkle_root
from store.database import connect
from tests.lineage.pipeline import ABSENT, NEVER_DELIVERED, Pipeline


def _prove(pipeline: Pipeline, **kwargs):  # type: ignore[no-untyped-def]
    with connect(pipeline.db_path, read_only=True) as con:
        return prove(con, **kwargs)


def test_range_exclusion_brackets_every_sample_of_a_track() -> None:
    ids = sorted([f"trk_a:{i:04d}" for i in range(3)] + [f"trk_c:{i:04d}" for i in range(3)] + ["trk_b0:0000"])
    root = merkle_root(ids)
    for track in ("trk_b", "trk_0", "trk_z", "trk_b00"):
        proof = prove_range_absent(ids, track)
        assert verify_range_absent(proof, root, len(ids)), track
    with pytest.raises(ProofError):
        prove_range_absent(ids, "trk_c")
    # A forged bracket around a present track fails: trk_a's samples sit between these leaves.
    forged = prove_range_absent(ids, "trk_0").model_copy(update={"track_id": "trk_a", "low": "trk_a:",
                                                                 "high": "trk_a;"})
    assert not verify_range_absent(forged, root, len(ids))


def test_denied_recording_is_proven_absent_from_the_model(pipeline: Pipeline, tmp_path: Path) -> None:
    proof = _prove(pipeline, isrc=ABSENT, run_id=pipeline.run_id)
    assert isinstance(proof, AbsenceProof) and proof.run_id == pipeline.run_id
    assert proof.track_ids == (pipeline.track_ids[ABSENT],)
    assert proof.ranges is not None and len(proof.ranges) == 1
    manifest = Path(pipeline.manifest_uri).read_bytes()
    assert check_proof(proof, manifest).ok
    # The proof survives a round trip through a file and fails against any other manifest content.
    again = load_proof(proof.model_dump_json())
    assert check_proof(again, manifest).ok
    other = check_proof(again, manifest.replace(b'"total_rows": 6', b'"total_rows": 7'))
    assert not other.ok and any("manifest hash" in p for p in other.problems)
    # A recording never delivered is absent too (its derived track ID is bracketed).
    assert check_proof(_prove(pipeline, isrc=NEVER_DELIVERED, manifest_uri=pipeline.manifest_uri), manifest).ok


def test_present_recordings_cannot_be_proven_absent(pipeline: Pipeline) -> None:
    with pytest.raises(ProofError, match="is in shard"):
        _prove(pipeline, isrc="GBLNR2600001", run_id=pipeline.run_id)


def test_tampered_absence_claim_is_caught(pipeline: Pipeline) -> None:
    manifest = Path(pipeline.manifest_uri).read_bytes()
    honest = _prove(pipeline, isrc=ABSENT, run_id=pipeline.run_id)
    present_track = pipeline.track_ids["GBLNR2600001"]
    lie = honest.model_copy(update={"isrc": "GBLNR2600001", "track_ids": (present_track,),
                                    "ranges": tuple(r.model_copy(update={"track_id": present_track})
                                                    for r in honest.ranges or ())})
    result = check_proof(lie, manifest)
    assert not result.ok
    assert any("listed in shard" in p for p in result.problems)
    assert any("does not verify" in p for p in result.problems)


def test_sample_inclusion_proof(pipeline: Pipeline) -> None:
    sample = f"{pipeline.track_ids['GBLNR2600002']}:0001"
    claim = _prove(pipeline, sample_id=sample, run_id=pipeline.run_id)
    assert isinstance(claim, InclusionClaim) and claim.dataset_proof.size == 6
    manifest = Path(pipeline.manifest_uri).read_bytes()
    assert check_proof(claim, manifest).ok
    wrong = claim.model_copy(update={"sample_id": f"{pipeline.track_ids[ABSENT]}:0001"})
    assert not check_proof(wrong, manifest).ok
    with pytest.raises(ProofError, match="not in"):
        _prove(pipeline, sample_id=f"{pipeline.track_ids[ABSENT]}:0000", run_id=pipeline.run_id)


def test_cli_writes_and_rechecks_proofs(pipeline: Pipeline, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "absent.json"
    made = runner.invoke(app, ["prove", "absent", "--isrc", ABSENT, "--run", pipeline.run_id, "--out", str(out),
                               "--home", str(pipeline.home)])
    assert made.exit_code == 0, made.output
    assert "absent from" in " ".join(made.output.split()) and json.loads(out.read_text())["isrc"] == ABSENT
    checked = runner.invoke(app, ["prove", "check", str(out)])
    assert checked.exit_code == 0 and "proof holds" in checked.output
    doc = json.loads(out.read_text())
    side = doc["ranges"][0]["left"] or doc["ranges"][0]["right"]
    side["path"][0] = "0" * 64
    out.write_text(json.dumps(doc))
    broken = runner.invoke(app, ["prove", "check", str(out)])
    assert broken.exit_code == 1 and "does not verify" in " ".join(broken.output.split())
    present = runner.invoke(app, ["prove", "present", "--sample", f"{pipeline.track_ids['GBLNR2600001']}:0000",
                                  "--manifest", pipeline.manifest_uri, "--home", str(pipeline.home), "--json"])
    assert present.exit_code == 0, present.output
    assert json.loads(present.output)["kind"] == "linernotes.proof.inclusion/1"
    refused = runner.invoke(app, ["prove", "absent", "--isrc", "GBLNR2600001", "--run", pipeline.run_id,
                                  "--home", str(pipeline.home)])
    assert refused.exit_code == 1 and "is in shard" in " ".join(refused.output.split())
