"""OpenLineage RunEvents for every pipeline stage, generated from the ledger.

Events are built with the attrs models that ``openlineage-python`` generates from the OpenLineage
spec (``openlineage.client.generated``) and serialised with its ``Serde``, so field names, event
types and facet envelopes are the spec's own. :func:`validate_event` re-reads an emitted event
through the same models (their validators check the UUID run id, the ISO-8601 time and the URIs),
compares the round trip, checks every facet's ``_producer``/``_schemaURL``, and checks the custom
facet against the JSON Schema shipped beside this module.

Stages and their datasets (namespace ``linernotes`` unless the data lives in files or S3):

    ingest        delivery directory            -> deliveries/<id>
    fingerprint   deliveries/<id>               -> fingerprints/<id>
    decide        deliveries/*                  -> decisions/<purpose>/<territory>/<date>
    release       decisions/...                 -> releases/<id>        (FAIL when rejected)
    shards        releases/<id>                 -> the shard manifest's directory (file or s3)
    train         the shard manifest's directory -> the model checkpoint (FAIL when failed or refused)

Run ids are UUIDs derived from the stage and its key, so re-exporting yields the same runs.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import attr
import duckdb
import jsonschema
from openlineage.client.generated import base
from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
from openlineage.client.generated.job_type_job import JobTypeJobFacet
from openlineage.client.generated.output_statistics_output_dataset import (
    OutputStatisticsOutputDatasetFacet,
)
from openlineage.client.serde import Serde
from pydantic import BaseModel, ConfigDict

from schemas.canonical import canonical_json, sha256_text
from store.ledger import command
from store.paths import ledger_path, ledger_ref
from store.roles import Principal, RoleBook

PRODUCER = "urn:linernotes:0.1.0"
FACET_NAME = "linernotes_rights"
FACET_SCHEMA_FILE = Path(__file__).with_name("openlineage_rights_facet.json")
FACET_SCHEMA_URL = "urn:linernotes:openlineage:facets:1-0-0:RightsDecisionsRunFacet#/$defs/RightsDecisionsRunFacet"
_RUN_NS = uuid.UUID("5b1f0c7e-6c57-4c2e-9a55-6c696e65726e")


@attr.define
class RightsDecisionsRunFacet(base.RunFacet):
    """The rights decisions behind a run: the policy that decided, and allow/deny counts per reason."""

    policyHash: str  # noqa: N815
    purpose: str
    territory: str
    onDate: str  # noqa: N815
    evaluated: int
    allowed: int
    denied: int
    deniedByReason: dict[str, int] = attr.field(factory=dict)  # noqa: N815
    releaseId: str | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA_URL


def run_id_for(stage: str, key: str) -> str:
    """A stable UUID per stage run, so exporting twice gives the same OpenLineage runs."""
    return str(uuid.uuid5(_RUN_NS, f"{stage}:{key}"))


def _time(value: Any) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return str(value)


def _uri_dataset(uri: str) -> tuple[str, str]:
    """OpenLineage naming for a file or object URI: (namespace, name)."""
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        return f"s3://{parsed.netloc}", parsed.path.lstrip("/")
    path = urlparse(uri).path if uri.startswith("file://") else uri
    return "file", path


def _job(namespace: str, stage: str) -> base.Job:
    return base.Job(namespace=namespace, name=f"linernotes.{stage}",
                    facets={"jobType": JobTypeJobFacet(processingType="BATCH", integration="LINERNOTES",
                                                       jobType="STAGE", producer=PRODUCER)})


def _facet(row: dict[str, Any] | None, release_id: str | None = None) -> dict[str, base.RunFacet]:
    if not row:
        return {}
    return {FACET_NAME: RightsDecisionsRunFacet(
        policyHash=row["policy_hash"], purpose=row["purpose"], territory=row["territory"], onDate=str(row["on_date"]),
        evaluated=int(row["evaluated"]), allowed=int(row["allowed"]), denied=int(row["denied"]),
        deniedByReason={str(k): int(v) for k, v in (row.get("by_reason") or {}).items()}, releaseId=release_id,
        producer=PRODUCER)}


def _pair(namespace: str, stage: str, key: str, *, started: Any, ended: Any, ok: bool,
          inputs: list[base.InputDataset], outputs: list[base.OutputDataset], run_facets: dict[str, base.RunFacet],
          error: str | None = None) -> list[dict[str, Any]]:
    run_id = run_id_for(stage, key)
    job = _job(namespace, stage)
    events = []
    for event_type, when in ((base.EventType.START, started), (base.EventType.COMPLETE if ok else base.EventType.FAIL,
                                                               ended or started)):
        facets = dict(run_facets)
        if event_type == base.EventType.FAIL and error:
            facets["errorMessage"] = ErrorMessageRunFacet(message=error, programmingLanguage="PYTHON",
                                                          producer=PRODUCER)
        event = base.RunEvent(eventTime=_time(when), producer=PRODUCER, eventType=event_type,
                              run=base.Run(runId=run_id, facets=facets), job=job, inputs=inputs,
                              outputs=outputs if event_type != base.EventType.START else [])
        events.append(Serde.to_dict(event))
    return events


def _ds(namespace: str, name: str, output: bool = False, **facets: Any) -> Any:
    if output:
        return base.OutputDataset(namespace=namespace, name=name, outputFacets=facets or {})
    return base.InputDataset(namespace=namespace, name=name)


def _summaries(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Rights decision summaries per evaluation key, from the audited decision batches: every command that
    decided the whole catalog for a key (``rights.evaluate``, ``release.propose``) lists it under ``evaluations``."""
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for evaluations, at in con.execute(
            "SELECT json_extract(payload, '$.evaluations'), recorded_at FROM audit_log "
            "WHERE json_type(payload, '$.evaluations') = 'ARRAY' ORDER BY seq").fetchall():
        for p in json.loads(evaluations):
            if p.get("subset"):
                continue  # a re-decision of a few tracks says nothing about the key's batch
            out[(p["purpose"], p["territory"], str(p["on_date"]), p["policy_hash"])] = {**p, "recorded_at": at}
    return out


def ledger_events(con: duckdb.DuckDBPyConnection, *, namespace: str = "linernotes",
                  run_id: str | None = None) -> list[dict[str, Any]]:
    """Every stage's START and COMPLETE/FAIL events, oldest first; ``run_id`` keeps its lineage only."""
    ns = namespace
    events: list[dict[str, Any]] = []
    releases_wanted: set[str] | None = None
    deliveries_wanted: set[str] | None = None
    if run_id is not None:
        row = con.execute("SELECT release_id FROM training_runs WHERE run_id = ?", [run_id]).fetchone()
        refused = con.execute("SELECT release_id FROM training_refusals WHERE run_id = ?", [run_id]).fetchone()
        if row is None and refused is None:
            raise LookupError(f"training run {run_id} does not exist")
        releases_wanted = {(row or refused)[0]}
        deliveries_wanted = {r[0] for r in con.execute(
            "SELECT DISTINCT t.delivery_id FROM release_tracks rt JOIN tracks t USING (track_id) "
            "WHERE list_contains(?, rt.release_id)", [list(releases_wanted)]).fetchall()}

    deliveries = con.execute("SELECT delivery_id, source, received_at, manifest_sha256, track_count, "
                             "quarantined_count FROM deliveries ORDER BY received_at").fetchall()
    for delivery_id, source, received_at, _, tracks, quarantined in deliveries:
        if deliveries_wanted is not None and delivery_id not in deliveries_wanted:
            continue
        src_ns, src_name = _uri_dataset(str(source))
        events += _pair(ns, "ingest", delivery_id, started=received_at, ended=received_at, ok=True,
                        inputs=[_ds(src_ns, src_name)],
                        outputs=[_ds(ns, f"deliveries/{delivery_id}", True, outputStatistics=
                                     OutputStatisticsOutputDatasetFacet(rowCount=tracks, producer=PRODUCER))],
                        run_facets={})
    for subject, payload, at in con.execute("SELECT subject, payload, recorded_at FROM audit_log "
                                            "WHERE action = 'fingerprint.store' ORDER BY seq").fetchall():
        delivery_id = subject.removeprefix("delivery:")
        if deliveries_wanted is not None and delivery_id not in deliveries_wanted:
            continue
        stored = json.loads(payload).get("stored", 0)
        events += _pair(ns, "fingerprint", f"{delivery_id}@{_time(at)}", started=at, ended=at, ok=True,
                        inputs=[_ds(ns, f"deliveries/{delivery_id}")],
                        outputs=[_ds(ns, f"fingerprints/{delivery_id}", True, outputStatistics=
                                     OutputStatisticsOutputDatasetFacet(rowCount=stored, producer=PRODUCER))],
                        run_facets={})
    summaries = _summaries(con)
    all_deliveries = [_ds(ns, f"deliveries/{d[0]}") for d in deliveries
                      if deliveries_wanted is None or d[0] in deliveries_wanted]
    release_rows = con.execute("SELECT release_id, purpose, territory, on_date, policy_hash, status, proposed_at "
                               "FROM releases ORDER BY proposed_at").fetchall()
    keys_wanted = {(r[1], r[2], str(r[3]), r[4]) for r in release_rows
                   if releases_wanted is None or r[0] in releases_wanted}
    for key, summary in summaries.items():
        if releases_wanted is not None and key not in keys_wanted:
            continue
        dataset = f"decisions/{key[0]}/{key[1]}/{key[2]}"
        events += _pair(ns, "decide", f"{dataset}@{key[3]}", started=summary["recorded_at"],
                        ended=summary["recorded_at"], ok=True, inputs=all_deliveries,
                        outputs=[_ds(ns, dataset, True, outputStatistics=OutputStatisticsOutputDatasetFacet(
                            rowCount=int(summary["evaluated"]), producer=PRODUCER))],
                        run_facets=_facet(summary))
    for release_id, purpose, territory, on_date, policy_hash, status, proposed_at in release_rows:
        if releases_wanted is not None and release_id not in releases_wanted:
            continue
        decided = con.execute("SELECT actor, action, comment, recorded_at FROM approvals WHERE release_id = ? "
                              "ORDER BY recorded_at DESC LIMIT 1", [release_id]).fetchone()
        summary = summaries.get((purpose, territory, str(on_date), policy_hash))
        error = f"release rejected by {decided[0]}: {decided[2]}" if decided and decided[1] == "reject" else None
        if decided is None:
            continue  # still proposed: the run has not ended
        events += _pair(ns, "release", release_id, started=proposed_at, ended=decided[3], ok=error is None,
                        inputs=[_ds(ns, f"decisions/{purpose}/{territory}/{on_date}")],
                        outputs=[_ds(ns, f"releases/{release_id}", True)], run_facets=_facet(summary, release_id),
                        error=error)
    release_keys = {r[0]: (r[1], r[2], str(r[3]), r[4]) for r in release_rows}
    for build_id, release_id, manifest_uri, rows, files, built_at in con.execute(
            "SELECT build_id, release_id, manifest_uri, row_count, shard_count, built_at FROM shard_builds "
            "ORDER BY built_at").fetchall():
        if releases_wanted is not None and release_id not in releases_wanted:
            continue
        out_ns, out_name = _uri_dataset(ledger_path(con, manifest_uri).rsplit("/", 1)[0])
        size = con.execute("SELECT coalesce(sum(bytes), 0) FROM shard_files WHERE build_id = ?", [build_id]).fetchone()
        events += _pair(ns, "shards", build_id, started=built_at, ended=built_at, ok=True,
                        inputs=[_ds(ns, f"releases/{release_id}")],
                        outputs=[_ds(out_ns, out_name, True, outputStatistics=OutputStatisticsOutputDatasetFacet(
                            rowCount=rows, size=int(size[0]) if size else None, fileCount=files, producer=PRODUCER))],
                        run_facets=_facet(summaries.get(release_keys.get(release_id, ("",) * 4)), release_id))
    for rid, release_id, status, manifest_uri, started_at, ended_at, checkpoint_uri, samples, error in con.execute(
            "SELECT run_id, release_id, status, manifest_uri, started_at, ended_at, checkpoint_uri, "
            "samples_consumed, error FROM training_runs ORDER BY started_at").fetchall():
        if run_id is not None and rid != run_id:
            continue
        if status == "running":
            continue
        inputs = [_ds(*_uri_dataset(ledger_path(con, manifest_uri).rsplit("/", 1)[0]))] if manifest_uri else []
        outputs = [_ds(*_uri_dataset(ledger_path(con, checkpoint_uri)), True, outputStatistics=OutputStatisticsOutputDatasetFacet(
            rowCount=samples, producer=PRODUCER))] if checkpoint_uri else []
        events += _pair(ns, "train", rid, started=started_at, ended=ended_at, ok=status == "completed",
                        inputs=inputs, outputs=outputs,
                        run_facets=_facet(summaries.get(release_keys.get(release_id, ("",) * 4)), release_id),
                        error=(error or "training failed")[:2000] if status != "completed" else None)
    for rid, release_id, codes, message, at in con.execute(
            "SELECT run_id, release_id, reason_codes, message, recorded_at FROM training_refusals "
            "ORDER BY recorded_at").fetchall():
        if run_id is not None and rid != run_id:
            continue
        events += _pair(ns, "train", f"{rid}:refused@{_time(at)}", started=at, ended=at, ok=False,
                        inputs=[_ds(ns, f"releases/{release_id}")], outputs=[], run_facets={},
                        error=f"refused ({', '.join(codes)}): {message}")
    events.sort(key=lambda e: (e["eventTime"], e["eventType"] != "START"))
    return events


def _facet_schema() -> dict[str, Any]:
    return json.loads(FACET_SCHEMA_FILE.read_text(encoding="utf-8"))


def _rebuild_facet(name: str, data: dict[str, Any], kind: str) -> Any:
    """The attrs facet object for one emitted facet (standard ones by their generated class)."""
    known: dict[str, type] = {"jobType": JobTypeJobFacet, "errorMessage": ErrorMessageRunFacet,
                              "outputStatistics": OutputStatisticsOutputDatasetFacet,
                              FACET_NAME: RightsDecisionsRunFacet}
    cls = known.get(name)
    if cls is None:
        raise ValueError(f"{kind} facet {name!r} is not one linernotes emits")
    fields = {k: v for k, v in data.items() if k not in ("_producer", "_schemaURL")}
    facet = cls(**fields, producer=data["_producer"])
    if data["_schemaURL"] != cls._get_schema():
        raise ValueError(f"{kind} facet {name!r} names schema {data['_schemaURL']}, expected {cls._get_schema()}")
    return facet


def validate_event(event: dict[str, Any]) -> list[str]:
    """Problems with one emitted RunEvent; empty when it conforms.

    The event is rebuilt from its JSON through ``openlineage-python``'s generated spec models (whose
    validators check the run UUID, event time and URIs), serialised again and compared; every facet
    needs ``_producer`` and ``_schemaURL``; the rights facet is checked against its JSON Schema.
    """

    problems: list[str] = []
    allowed = {"eventTime", "producer", "schemaURL", "eventType", "run", "job", "inputs", "outputs"}
    extra = set(event) - allowed
    if extra:
        problems.append(f"unexpected top-level fields {sorted(extra)}")
    for key in ("eventTime", "producer", "schemaURL", "run", "job"):
        if key not in event:
            problems.append(f"missing required field {key}")
    if problems:
        return problems
    try:
        if event["schemaURL"] != base.RunEvent._get_schema():
            raise ValueError(f"schemaURL {event['schemaURL']} is not the RunEvent schema {base.RunEvent._get_schema()}")
        run = base.Run(runId=event["run"]["runId"],
                       facets={k: _rebuild_facet(k, v, "run") for k, v in event["run"].get("facets", {}).items()})
        job = base.Job(namespace=event["job"]["namespace"], name=event["job"]["name"],
                       facets={k: _rebuild_facet(k, v, "job") for k, v in event["job"].get("facets", {}).items()})
        inputs = [base.InputDataset(namespace=d["namespace"], name=d["name"]) for d in event.get("inputs", [])]
        outputs = [base.OutputDataset(namespace=d["namespace"], name=d["name"],
                                      outputFacets={k: _rebuild_facet(k, v, "output dataset")
                                                    for k, v in d.get("outputFacets", {}).items()})
                   for d in event.get("outputs", [])]
        rebuilt = base.RunEvent(eventTime=event["eventTime"], producer=event["producer"],
                                eventType=base.EventType(event["eventType"]) if "eventType" in event else None,
                                run=run, job=job, inputs=inputs, outputs=outputs)
    except (ValueError, TypeError, KeyError) as exc:
        return [f"{type(exc).__name__}: {exc}"]
    if Serde.to_dict(rebuilt) != event:
        problems.append("event changes when read back through the OpenLineage models")
    for facets in [event["run"].get("facets", {}), event["job"].get("facets", {}),
                   *(d.get("outputFacets", {}) for d in event.get("outputs", []))]:
        for name, facet in facets.items():
            for key in ("_producer", "_schemaURL"):
                if not isinstance(facet.get(key), str) or not urlparse(facet[key]).scheme:
                    problems.append(f"facet {name} has no URI in {key}")
    rights = event["run"].get("facets", {}).get(FACET_NAME)
    if rights is not None:
        try:
            jsonschema.validate(rights, _facet_schema())
        except jsonschema.ValidationError as exc:
            problems.append(f"facet {FACET_NAME}: {exc.message}")
    return problems


def write_events(events: Iterable[dict[str, Any]], directory: Path) -> list[Path]:
    """One ``<n>-<job>-<type>.json`` file per event, in event order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, event in enumerate(events, 1):
        path = directory / f"{n:05d}-{event['job']['name']}-{event['eventType'].lower()}.json"
        path.write_text(json.dumps(event, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def post_events(events: Iterable[dict[str, Any]], url: str, *, timeout_s: float = 10.0) -> int:
    """POST each event as JSON to an OpenLineage endpoint; raises OSError on the first failure."""
    sent = 0
    for event in events:
        request = urllib.request.Request(url, data=json.dumps(event).encode("utf-8"), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if response.status >= 300:
                raise OSError(f"{url} answered {response.status}")
        sent += 1
    return sent


class OpenLineageExport(BaseModel):
    """What :func:`export_events` produced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: int
    written: tuple[str, ...]
    posted: int
    events_sha256: str


def export_events(con: duckdb.DuckDBPyConnection, *, actor: Principal | str, out: Path | None = None,
                  url: str | None = None, run_id: str | None = None, namespace: str = "linernotes",
                  roles: RoleBook | None = None) -> OpenLineageExport:
    """Generate, validate, write (``out``) and post (``url``) the ledger's events as the audited ``audit.export``
    command. Raises ValueError when a generated event does not validate, OSError when posting fails (nothing
    is recorded then)."""
    with command(con, actor, "audit.export", run_id or "ledger", roles=roles) as w:
        events = ledger_events(con, namespace=namespace, run_id=run_id)
        problems = [p for e in events for p in validate_event(e)]
        if problems:
            raise ValueError("generated events do not validate: " + "; ".join(problems[:5]))
        written = write_events(events, out) if out is not None else []
        posted = post_events(events, url) if url is not None else 0
        result = OpenLineageExport(events=len(events), written=tuple(str(p) for p in written), posted=posted,
                                   events_sha256=sha256_text(canonical_json(events)))
        w.payload.update({"export": "openlineage", "events": len(events),
                          "out": ledger_ref(con, out) if out is not None else None, "url": url,
                          "posted": posted, "events_sha256": result.events_sha256})
    return result
