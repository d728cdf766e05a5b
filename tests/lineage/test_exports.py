"""`linernotes export`: OpenLineage events, the EU AI Act summary and the evidence pack."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagster_project.cli import app
from lineage.openlineage import FACET_NAME, ledger_events, validate_event
from store.database import connect
from tests.lineage.pipeline import ABSENT, PURPOSE, Pipeline

AUDITOR = ("--actor", "aude.audit")


def _invoke(home: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [*args, "--home", str(home)])


def _actions(db: Path) -> list[str]:
    with connect(db, read_only=True) as con:
        return [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]


def test_exports_need_the_auditor_or_rights_role_and_refusals_are_audited(ledger_copy: Path, tmp_path: Path,
                                                                         pipeline: Pipeline) -> None:
    refused = _invoke(ledger_copy.parent, "export", "ai-act-summary", pipeline.run_id, "--out", str(tmp_path / "a"),
                      "--actor", "mira.ml")
    assert refused.exit_code == 3 and "audit.export" in refused.output
    assert _actions(ledger_copy)[-1] == "audit.export.refused"
    assert not (tmp_path / "a").exists()


def test_ai_act_summary_from_lineage(ledger_copy: Path, tmp_path: Path, pipeline: Pipeline) -> None:
    out = tmp_path / "summary"
    result = _invoke(ledger_copy.parent, "export", "ai-act-summary", pipeline.run_id, "--out", str(out),
                     "--provider", "Lineage Records Ltd", "--model-name", "lineage-tagger-1", *AUDITOR)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "ai_act_summary.json").read_text())
    general, sources, processing = doc["general_information"], doc["data_sources"], doc["data_processing"]
    assert general["provider"]["name"] == "Lineage Records Ltd" and general["modalities"] == ["audio"]
    size = general["training_data_size"]["audio"]
    assert (size["samples_consumed"], size["recordings"], size["crop_seconds"]) == (6, 2, 4.0)
    licensed = sources["private_datasets_from_third_parties"]["commercially_licensed_by_rightsholders"]
    assert [d["delivery_id"] for d in licensed["deliveries"]] == ["dlv-lineage"]
    assert [(x["name"], x["license"], x["tracks"]) for x in licensed["licensors"]] == [
        ("Lineage Records", "contract:LNR-2026-01", 2)]
    assert not sources["crawled_or_scraped_online"]["used"] and not sources["user_data"]["used"]
    rights = processing["rights_reservations"]
    assert rights["denied_by_reason"] == {"ai_generated": 1, "consent_not_allowed": 1, "no_deal": 1,
                                          "optout_match": 1}
    assert rights["opt_out_registry"]["recordings_matched"] == 1 and rights["policy"]["purpose"] == PURPOSE
    # one threshold per matching method, each on its own scale
    thresholds = rights["opt_out_registry"]["match_thresholds"]
    assert thresholds and set(thresholds) <= {"chromaprint", "landmark"}
    assert all(0 < v <= 1 for m, values in thresholds.items() if m == "chromaprint" for v in values)
    markdown = (out / "ai_act_summary.md").read_text()
    for heading in ("## 1. General information", "## 2. List of data sources", "### 2.3 Data crawled or scraped",
                    "## 3. Data processing aspects", "### 3.1 Respect of reservations of rights"):
        assert heading in markdown
    assert "optout_match 1" in markdown and "lineage-tagger-1" in markdown
    assert _actions(ledger_copy)[-1] == "audit.export"
    with connect(ledger_copy, read_only=True) as con:
        actor, payload = con.execute("SELECT actor, payload FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    files = json.loads(payload)["files"]
    assert actor == "aude.audit" and json.loads(payload)["export"] == "ai_act_summary"
    assert files["json"]["path"] == str(out / "ai_act_summary.json")  # outside the data directory: as given
    assert files["json"]["sha256"] == hashlib.sha256((out / "ai_act_summary.json").read_bytes()).hexdigest()


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Collector.received.append(json.loads(body))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_openlineage_events_validate_and_are_written_and_posted(ledger_copy: Path, tmp_path: Path,
                                                               pipeline: Pipeline) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Collector.received.clear()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/v1/lineage"
        result = _invoke(ledger_copy.parent, "export", "openlineage", "--out", str(tmp_path / "ol"), "--url", url,
                         *AUDITOR)
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "ol").glob("*.json"))
    events = [json.loads(f.read_text()) for f in files]
    assert events == _Collector.received and events
    assert all(validate_event(e) == [] for e in events)
    by_job: dict[str, list[str]] = {}
    for e in events:
        by_job.setdefault(e["job"]["name"].removeprefix("linernotes."), []).append(e["eventType"])
    assert set(by_job) == {"ingest", "fingerprint", "decide", "release", "shards", "train"}
    assert by_job["release"] == ["START", "COMPLETE", "START", "FAIL"]  # approved, then rejected
    assert by_job["train"] == ["START", "COMPLETE", "START", "FAIL"]  # trained, then refused
    train = next(e for e in events if e["job"]["name"] == "linernotes.train" and e["eventType"] == "COMPLETE")
    facet = train["run"]["facets"][FACET_NAME]
    assert facet["deniedByReason"]["optout_match"] == 1 and len(facet["policyHash"]) == 64
    assert facet["_schemaURL"].endswith("#/$defs/RightsDecisionsRunFacet") and facet["_producer"]
    # Datasets are where the copy's files are: the ledger's relative locations resolved against its directory.
    assert train["inputs"][0]["name"] == str(ledger_copy.parent / "objects" / "shards" / pipeline.release_id)
    assert train["outputs"][0]["name"].endswith("/model.pt")
    # Only the lineage of one run, and the same run ids on a second export.
    with connect(ledger_copy, read_only=True) as con:
        scoped = ledger_events(con, run_id=pipeline.run_id)
    assert {e["job"]["name"] for e in scoped} == {f"linernotes.{j}" for j in by_job}
    assert {e["run"]["runId"] for e in scoped} < {e["run"]["runId"] for e in events}
    with connect(ledger_copy, read_only=True) as con:
        action, payload = con.execute("SELECT action, payload FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    assert action == "audit.export" and json.loads(payload)["events"] == len(events) == json.loads(payload)["posted"]


def test_validation_catches_non_conforming_events(ledger_copy: Path) -> None:
    with connect(ledger_copy, read_only=True) as con:
        event = next(e for e in ledger_events(con) if FACET_NAME in e["run"]["facets"])
    bad_run = json.loads(json.dumps(event))
    bad_run["run"]["runId"] = "not-a-uuid"
    assert validate_event(bad_run)
    no_producer = json.loads(json.dumps(event))
    del no_producer["run"]["facets"][FACET_NAME]["_producer"]
    assert validate_event(no_producer)
    bad_facet = json.loads(json.dumps(event))
    bad_facet["run"]["facets"][FACET_NAME]["policyHash"] = "short"
    assert any("linernotes_rights" in p for p in validate_event(bad_facet))
    extra = json.loads(json.dumps(event))
    extra["surprise"] = 1
    assert validate_event(extra) == ["unexpected top-level fields ['surprise']"]


def _check(pack: Path) -> subprocess.CompletedProcess[str]:
    # -I: isolated mode, no PYTHONPATH and no user site; cwd is the pack, so linernotes is not importable.
    return subprocess.run([sys.executable, "-I", "verify_evidence.py"], cwd=pack, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pack)}, timeout=120)


def test_evidence_pack_verifies_standalone_and_names_a_tampered_file(ledger_copy: Path, tmp_path: Path,
                                                                     pipeline: Pipeline) -> None:
    pack = tmp_path / "pack"
    result = _invoke(ledger_copy.parent, "export", "evidence", pipeline.run_id, "--out", str(pack), *AUDITOR,
                     "--provider", "Lineage Records Ltd")
    assert result.exit_code == 0, result.output
    for name in ("manifest.json", "samples.parquet", "decisions.parquet", "decisions.csv", "approvals.json",
                 "exposure.csv", "attribution/attribution.json", "audit_segment.jsonl", "ai_act_summary.md",
                 f"proofs/absent-{ABSENT}.json", "verify_evidence.py", "index.json"):
        assert (pack / name).is_file(), name
    assert "import lineage" not in (pack / "verify_evidence.py").read_text()
    ok = _check(pack)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "4 exclusion proof(s) hold" in ok.stdout and "verified" in ok.stdout
    with connect(ledger_copy, read_only=True) as con:
        [(payload,)] = con.execute("SELECT payload FROM audit_log WHERE action = 'audit.export'").fetchall()
    assert json.loads(payload)["export"] == "evidence"
    assert json.loads(payload)["index_sha256"] == hashlib.sha256((pack / "index.json").read_bytes()).hexdigest()

    csv_file = pack / "decisions.csv"
    original = csv_file.read_text()
    csv_file.write_text(original.replace("consent_not_allowed", "allowed_really"))
    failed = _check(pack)
    assert failed.returncode == 1 and "FAILED decisions.csv" in failed.stdout
    csv_file.write_text(original)
    assert _check(pack).returncode == 0


@pytest.mark.parametrize("target", ["audit_segment.jsonl", "proof", "samples.parquet"])
def test_evidence_checks_go_beyond_the_index(ledger_copy: Path, tmp_path: Path, pipeline: Pipeline,
                                             target: str) -> None:
    """Even with index.json rewritten to match, a forged audit entry, proof or sample list is caught."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pack = tmp_path / "pack"
    assert _invoke(ledger_copy.parent, "export", "evidence", pipeline.run_id, "--out", str(pack),
                   *AUDITOR).exit_code == 0
    if target == "audit_segment.jsonl":
        path = pack / target
        lines = path.read_text().splitlines()
        entry = json.loads(lines[3])
        entry["actor"] = "someone.else"
        lines[3] = json.dumps(entry, sort_keys=True)
        path.write_text("\n".join(lines) + "\n")
        expected = f"audit_segment.jsonl seq {entry['seq']}"
    elif target == "proof":
        path = pack / "proofs" / f"absent-{ABSENT}.json"
        proof = json.loads(path.read_text())
        side = proof["ranges"][0]["left"] or proof["ranges"][0]["right"]
        side["index"] = side["index"] + 1
        path.write_text(json.dumps(proof))
        expected = f"proofs/absent-{ABSENT}.json"
    else:
        path = pack / target
        table = pq.read_table(path)
        ids = table.column("sample_id").to_pylist()
        ids[0] = ids[0][:-1] + "9"
        pq.write_table(table.set_column(0, "sample_id", pa.array(ids)), path)
        expected = "samples.parquet"
    index = json.loads((pack / "index.json").read_text())
    rel = path.relative_to(pack).as_posix()
    index["files"][rel]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (pack / "index.json").write_text(json.dumps(index))
    failed = _check(pack)
    assert failed.returncode == 1 and f"FAILED {expected}" in failed.stdout, failed.stdout
