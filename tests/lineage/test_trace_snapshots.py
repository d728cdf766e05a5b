"""Trace snapshots: what `trace model` / `trace release` answer from, checked against a from-scratch trace."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
from typer.testing import CliRunner

from dagster_project.cli import app
from lineage import snapshots
from lineage.integrity import verify_ledger
from lineage.trace import ensure_snapshots, trace_isrc, trace_model, trace_model_json, trace_release
from store.database import connect
from tests.lineage.pipeline import ALLOWED, REJECTED_RELEASE_ID, Pipeline


def _frozen(trace: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in trace.items() if k != "snapshot"}


def test_the_run_stores_snapshots_that_equal_a_from_scratch_trace(pipeline: Pipeline) -> None:
    with connect(pipeline.db_path, read_only=True) as con:
        stored = {(k, s) for k, s in con.execute("SELECT kind, subject FROM trace_snapshots").fetchall()}
        assert {("model", pipeline.run_id), ("release", pipeline.release_id)} <= stored
        for limit in (None, 1, 0, 5):
            fast = trace_model(con, pipeline.run_id, limit=limit)
            slow = trace_model(con, pipeline.run_id, limit=limit, use_snapshot=False)
            assert fast["snapshot"]["used"] and not slow["snapshot"]["used"]
            assert _frozen(fast) == _frozen(slow)
        assert [t["isrc"] for t in trace_model(con, pipeline.run_id, limit=1)["tracks"]] == \
               [trace_model(con, pipeline.run_id)["tracks"][0]["isrc"]]
        release = trace_release(con, pipeline.release_id)
        assert release["snapshot"]["used"] and len(release["tracks"]) == release["release"]["track_count"] == len(ALLOWED)
        assert _frozen(release) == _frozen(trace_release(con, pipeline.release_id, use_snapshot=False))
        # Only the release a run used was snapshotted; the rejected one is traced from the ledger.
        rejected = trace_release(con, REJECTED_RELEASE_ID)
        assert not rejected["snapshot"]["used"] and "no snapshot" in rejected["snapshot"]["problem"]
        report = verify_ledger(con)
        assert report.ok and report.checked["snapshots"] >= 2
        record = snapshots.lookup(con, "model", pipeline.run_id)
    assert record is not None and record.uri.startswith("objects/traces/model/")  # relative to the data directory
    header = json.loads((pipeline.home / record.uri).read_bytes().split(b"\n", 1)[0])
    assert (header["kind"], header["subject"], header["tracks_total"]) == ("model", pipeline.run_id, 2)
    cli = CliRunner().invoke(app, ["trace", "model", pipeline.run_id, "--home", str(pipeline.home), "--json"])
    live = CliRunner().invoke(app, ["trace", "model", pipeline.run_id, "--home", str(pipeline.home), "--json",
                                    "--live"])
    assert cli.exit_code == live.exit_code == 0, cli.output + live.output
    assert _frozen(json.loads(cli.output)) == _frozen(json.loads(live.output))
    text = CliRunner().invoke(app, ["trace", "model", pipeline.run_id, "--home", str(pipeline.home)])
    assert text.exit_code == 0 and "tracksfromsnapshot" in "".join(text.output.split())


def test_tampered_snapshot_is_found_and_not_used(pipeline: Pipeline, ledger_copy: Path, tmp_path: Path) -> None:
    root = str(tmp_path / "traces")
    with connect(ledger_copy) as con:
        rebuilt = ensure_snapshots(con, actor="aude.audit", run_id=pipeline.run_id, rebuild=True, root=root)
        assert {r.kind for r in rebuilt} == {"model", "release"} and verify_ledger(con).ok
        model = next(r for r in rebuilt if r.kind == "model")
        path = Path(model.uri)  # outside the data directory: recorded as it is
        assert path.is_absolute() and path.parent.parent == tmp_path / "traces"
        original = path.read_bytes()
        assert b'"share":60.0' in original
        path.write_bytes(original.replace(b'"share":60.0', b'"share":90.0'))

        report = verify_ledger(con)
        assert not report.ok
        assert report.first is not None and report.first.kind == "snapshot" and report.first.subject == model.uri
        assert report.first.expected == model.sha256
        trace = trace_model(con, pipeline.run_id)
        assert not trace["snapshot"]["used"] and "does not match its recorded SHA-256" in trace["snapshot"]["problem"]
        second = next(t for t in trace["tracks"] if t["isrc"] == "GBLNR2600002")
        assert [h["share"] for h in second["rights_holders"]] == [60.0, 40.0]

        # Rewriting the ledger row to the tampered file's hash breaks its seal, and the audit log disagrees.
        forged = hashlib.sha256(path.read_bytes()).hexdigest()
        con.execute("UPDATE trace_snapshots SET sha256 = ? WHERE kind = 'model' AND subject = ?",
                    [forged, pipeline.run_id])
        report = verify_ledger(con)
        assert report.first is not None and report.first.kind == "sealed_row"
        assert report.first.subject.startswith("trace_snapshots kind=model")
        audited = next(f for f in report.findings if f.kind == "ledger_row")
        assert "differs from the audited one" in audited.problem and audited.actual == forged

        path.unlink()
        assert "missing" in trace_model(con, pipeline.run_id)["snapshot"]["problem"]
        assert any(f.kind == "snapshot" and "missing" in f.problem for f in verify_ledger(con).findings)
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "verify", "--home", str(ledger_copy.parent)])
    assert result.exit_code == 1 and "snapshot" in result.output


def test_consents_revoked_since_training_show_beside_the_frozen_tracks(pipeline: Pipeline, ledger_copy: Path,
                                                                       tmp_path: Path) -> None:
    from licensing.importers.tabular import import_rights_file

    rights = json.loads((pipeline.home / "deliveries" / "dlv-lineage" / "rights" / "rights.json").read_text())
    for consent in rights["consents"]:
        if consent["consent_id"] == "C-P-ada-lark":
            consent["revoked_at"] = "2026-06-01T00:00:00Z"
    changed = tmp_path / "rights-revoked.json"
    changed.write_text(json.dumps(rights), encoding="utf-8")
    with connect(ledger_copy) as con:
        import_rights_file(con, changed, actor="rita.rights")
        fast = trace_model(con, pipeline.run_id)
        slow = trace_model(con, pipeline.run_id, use_snapshot=False)
    assert fast["snapshot"]["used"]
    for trace in (fast, slow):
        assert [c["consent_id"] for c in trace["revoked_consents"]] == ["C-P-ada-lark"]
        assert trace["revoked_consents"][0]["revoked_at"].startswith("2026-06-01T00:00:00")

    def ada(trace: dict[str, Any]) -> list[Any]:
        return [c["revoked_at"] for t in trace["tracks"] for c in t["consents"] if c["consent_id"] == "C-P-ada-lark"]

    # The snapshot keeps the consents as they stood when the model was trained; --live shows today's.
    assert ada(fast) and all(v is None for v in ada(fast))
    assert ada(slow) and all(v is not None for v in ada(slow))


def test_snapshot_command_is_role_gated_and_audited(pipeline: Pipeline, ledger_copy: Path) -> None:
    home = str(ledger_copy.parent)
    runner = CliRunner()
    refused = runner.invoke(app, ["trace", "snapshot", pipeline.run_id, "--home", home, "--actor", "nobody"])
    assert refused.exit_code == 3, refused.output
    missing = runner.invoke(app, ["trace", "snapshot", "--home", home, "--actor", "aude.audit", "--json"])
    assert missing.exit_code == 0, missing.output
    assert [(b["kind"], b["subject"]) for b in json.loads(missing.output)] == [("release", REJECTED_RELEASE_ID)]
    nothing = runner.invoke(app, ["trace", "snapshot", "--home", home, "--actor", "aude.audit", "--json"])
    assert nothing.exit_code == 0 and json.loads(nothing.output) == [], nothing.output
    built = runner.invoke(app, ["trace", "snapshot", "--home", home, "--actor", "aude.audit", "--rebuild", "--json"])
    assert built.exit_code == 0, built.output
    kinds = sorted((b["kind"], b["subject"]) for b in json.loads(built.output))
    assert kinds == [("model", pipeline.run_id), ("release", pipeline.release_id), ("release", REJECTED_RELEASE_ID)]
    with connect(ledger_copy, read_only=True) as con:
        entries = con.execute("SELECT actor, subject FROM audit_log WHERE action = 'trace.snapshot' "
                              "ORDER BY seq DESC LIMIT 3").fetchall()
        assert {a for a, _ in entries} == {"aude.audit"}
        assert trace_release(con, REJECTED_RELEASE_ID)["snapshot"]["used"]
        assert verify_ledger(con).ok
    unknown = runner.invoke(app, ["trace", "snapshot", "run-nope", "--home", home, "--actor", "aude.audit"])
    assert unknown.exit_code == 1 and "does not exist" in unknown.output


def test_ledger_from_before_snapshots_traces_live_read_only(pipeline: Pipeline, ledger_copy: Path) -> None:
    con = duckdb.connect(str(ledger_copy))
    con.execute("DROP TABLE trace_snapshots")
    con.close()
    with connect(ledger_copy, read_only=True) as con:
        trace = trace_model(con, pipeline.run_id)
        assert not trace["snapshot"]["used"] and trace["tracks_total"] == 2
        assert json.loads(trace_model_json(con, pipeline.run_id, limit=1))["tracks"] == trace["tracks"][:1]
        assert verify_ledger(con).checked["snapshots"] == 0
        assert trace_isrc(con, "GBLNR2600001")["summary"]["models"] == 1


def test_snapshot_file_keeps_one_track_per_line_whatever_the_text() -> None:
    con = duckdb.connect()
    awkward = "line one\n,\nline two\r\u2028 \"quoted\" ☃"
    docs = [con.execute("SELECT to_json({'title': ?, 'n': ?})::VARCHAR", [awkward, i]).fetchone()[0]  # type: ignore[index]
            for i in range(3)]
    data = snapshots.encode({"kind": "model", "subject": "r", "schema_version": 1, "track_count": 3}, docs)
    header, start = snapshots.decode(data)
    record = snapshots.SnapshotRecord(kind="model", subject="r", schema_version=1, uri="mem://r",
                                      sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                                      track_count=3, built_by="t", built_at="2026-01-01T00:00:00Z")
    snap = snapshots.Snapshot(record=record, header=header, data=data, start=start)
    assert json.loads(bytes(snap.tracks_json())) == [{"title": awkward, "n": i} for i in range(3)]
    assert json.loads(bytes(snap.tracks_json(2))) == [{"title": awkward, "n": i} for i in range(2)]
    assert json.loads(bytes(snap.tracks_json(0))) == []
