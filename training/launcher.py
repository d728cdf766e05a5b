"""Start a gated training run under ``torchrun`` and write its record, model card and attribution.

The parent holds the ledger only before and after the run: the training processes read shards
and write exposure files in the run directory; they open the DuckDB file only to re-ask the release
gate, and to record an acknowledgement the loader accepted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from licensing.gate import refusal_code
from schemas.gate import GateDecision
from schemas.runs import (
    AttributionStatement,
    CodeVersion,
    EpochMetrics,
    RunRecord,
    TrainConfig,
)
from shards.exposure import read_exposure
from store.database import connect
from store.digest import sha256_file
from store.ledger import Writer, authorize, command, record_refusal
from store.objects import ObjectStore, join
from store.paths import ledger_ref
from store.roles import Principal, RoleBook, as_principal
from training import attribution, card, gate
from training.runtime import SPEC_ENV, RunSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


ACTION = "train.start"


class TrainingRefused(RuntimeError):
    """The gate refused the run; the refusal is already recorded (``train.start.refused``; its id is
    ``refusal-<audit seq>``, as ``training_refusals`` shows it)."""

    def __init__(self, decision: GateDecision, refusal_id: str) -> None:
        super().__init__(decision.message)
        self.decision = decision
        self.refusal_id = refusal_id


class TrainingFailed(RuntimeError):
    """The training processes exited with an error; the run is recorded as failed and can be resumed."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__(record.error or "training failed")
        self.record = record


def code_version(root: Path = PROJECT_ROOT) -> CodeVersion:
    """Git commit and dirty flag of the code that trains, or ``unknown`` outside a checkout."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True, timeout=30).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return CodeVersion(commit="unknown", dirty=None)
    return CodeVersion(commit=commit, dirty=bool(status.strip()))


def torchrun_command(nproc: int, script: Path | None, *, nnodes: int = 1, node_rank: int = 0,
                     rdzv_endpoint: str | None = None, rdzv_id: str = "linernotes") -> list[str]:
    """``python -m torch.distributed.run`` for the reference trainer or a user script.

    One node runs ``--standalone``; several meet at ``rdzv_endpoint`` (``host:port`` of node 0)
    with the c10d rendezvous, every node running this same command with its own ``node_rank``.
    """
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--max_restarts=0"]
    if nnodes > 1:
        if not rdzv_endpoint:
            raise ValueError("training on several nodes needs a rendezvous endpoint (host:port of node 0)")
        command += [f"--nnodes={nnodes}", f"--node_rank={node_rank}", "--rdzv_backend=c10d",
                    f"--rdzv_endpoint={rdzv_endpoint}", f"--rdzv_id={rdzv_id}"]
    else:
        command.insert(3, "--standalone")
    return command + ([str(script)] if script else ["-m", "training.reference"])


def _row(record: RunRecord) -> dict[str, Any]:
    ack = record.acknowledgement
    return {
        "run_id": record.run_id, "release_id": record.release_id, "status": record.status, "actor": record.actor,
        "model": record.config.model, "script": record.script, "script_sha256": record.script_sha256,
        "config": record.config.model_dump_json(), "manifest_uri": record.manifest_uri,
        "manifest_sha256": record.manifest_sha256, "policy_hash": record.policy_hash,
        "code_commit": record.code.commit, "code_dirty": record.code.dirty, "torch_version": record.torch_version,
        "device": record.device, "world_size": record.world_size, "started_at": record.started_at,
        "ended_at": record.ended_at, "metrics": json.dumps([m.model_dump() for m in record.metrics]),
        "samples_consumed": record.samples_consumed, "checkpoint_uri": record.checkpoint_uri,
        "checkpoint_sha256": record.checkpoint_sha256, "attempts": record.attempts,
        "acknowledged_by": ack.actor if ack else None, "acknowledged_reason": ack.reason if ack else None,
        "acknowledged_tracks": list(ack.track_ids) if ack else None, "error": record.error,
        "record": record.model_dump_json(),
    }


def _save(w: Writer, record: RunRecord, *, new: bool) -> None:
    """Insert the run, or write its next version (the one it replaces moves to history)."""
    row = _row(record)
    if new:
        w.insert("training_runs", [row])
    else:
        w.update("training_runs", "run_id = ?", [record.run_id], {k: v for k, v in row.items() if k != "run_id"})


def load_run(con: duckdb.DuckDBPyConnection, run_id: str) -> RunRecord | None:
    """The recorded run, or None."""
    row = con.execute("SELECT record FROM training_runs WHERE run_id = ?", [run_id]).fetchone()
    return RunRecord.model_validate_json(row[0]) if row else None


def _epoch_metrics(run_dir: Path, exposure: Any, run_id: str) -> tuple[EpochMetrics, ...]:
    """Steps and samples per epoch from exposure (all ranks); the trainer's own numbers beside them."""
    logged: dict[int, dict[str, Any]] = {}
    path = run_dir / "metrics.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                logged[int(row["epoch"])] = row
    counted: dict[int, tuple[set[int], int]] = {}
    if exposure.num_rows:
        for rid, epoch, step in zip(exposure.column("run_id").to_pylist(), exposure.column("epoch").to_pylist(),
                                    exposure.column("step").to_pylist()):
            if rid == run_id:
                steps, samples = counted.setdefault(int(epoch), (set(), 0))
                steps.add(int(step))
                counted[int(epoch)] = (steps, samples + 1)
    result = []
    for epoch in sorted(set(logged) | set(counted)):
        extra = {k: v for k, v in logged.get(epoch, {}).items() if k not in ("epoch", "steps", "samples")}
        steps, samples = counted.get(epoch, (set(), 0))
        result.append(EpochMetrics(epoch=epoch, steps=len(steps), samples=samples, **extra))
    return tuple(result)


def _read_exposure(directory: Path) -> Any:


    if not directory.exists():
        return pa.table({"run_id": pa.array([], pa.string()), "rank": pa.array([], pa.int64()),
                         "epoch": pa.array([], pa.int64()), "step": pa.array([], pa.int64()),
                         "sample_id": pa.array([], pa.string())})
    return read_exposure(directory)


def _tail(path: Path, chars: int = 4000) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[-chars:]


def launch_run(
    ledger_path: Path,
    *,
    run_id: str,
    config: TrainConfig,
    actor: Principal | str,
    script: Path | None = None,
    acknowledge: str | None = None,
    resume: bool = False,
    runs_dir: Path | None = None,
    timeout_s: float | None = None,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    publish_uri: str | None = None,
    roles: RoleBook | None = None,
) -> RunRecord:
    """Gate, train under torchrun, and record the run; return the completed :class:`RunRecord`.

    The actor's role (``train.start``) is checked first. The run's start and its end are each one
    ``train.start`` command (payload ``event``: started, resumed, completed or failed) writing its
    ``training_runs`` version; locations in the record are relative to the data directory.
    Raises :class:`TrainingRefused` when the gate says no (recorded first) and
    :class:`TrainingFailed` when the processes fail (recorded as failed; call again with
    ``resume=True`` to continue from the last checkpoint). With ``nnodes > 1`` this is node 0;
    the other nodes run :func:`torchrun_command` with their ``node_rank`` and the run's
    ``spec.json`` (the run directory must be on storage every node shares). ``publish_uri``
    (e.g. ``s3://bucket/runs/<run>``) receives the checkpoint and the run's files once it completes.
    """
    import torch

    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id must match {RUN_ID.pattern}: {run_id!r}")
    if script is None and config.model != "reference":
        raise ValueError(f"unknown model {config.model!r}: use 'reference' or pass a script")
    principal = as_principal(actor)
    ledger_path = Path(ledger_path)
    run_dir = (Path(runs_dir) if runs_dir else ledger_path.parent / "runs") / run_id
    script = Path(script).resolve() if script else None
    with connect(ledger_path) as con:
        authorize(con, principal, ACTION, run_id, roles=roles)
        previous = load_run(con, run_id)
        if resume and (previous is None or previous.status == "completed"):
            raise ValueError(f"run {run_id!r} has nothing to resume (status: "
                             f"{previous.status if previous else 'unknown'})")
        if not resume and previous is not None:
            raise ValueError(f"run {run_id!r} already exists (status {previous.status}); pick a new run id")
        if resume and previous is not None:
            config, script = previous.config, Path(previous.script) if previous.script else None
        decision = gate.check_release(con, config.release_id, manifest_uri=config.manifest_uri,
                                      acknowledge=acknowledge, actor=principal)
        if not decision.allowed or decision.manifest_uri is None:
            seq = record_refusal(con, principal, ACTION, run_id, code=refusal_code(decision), message=decision.message,
                                 details={"release_id": config.release_id,
                                          "reason_codes": [str(r) for r in decision.reason_codes],
                                          "denied_track_ids": list(decision.denied_track_ids),
                                          "decision": decision.model_dump(mode="json", exclude={"denied_tracks"})})
            raise TrainingRefused(decision, f"refusal-{seq}")
        labels = [r[0] for r in con.execute(
            "SELECT track_id FROM release_tracks WHERE release_id = ? ORDER BY track_id", [config.release_id]
        ).fetchall()]
        record = RunRecord(
            run_id=run_id, release_id=config.release_id, status="running", actor=principal.name, config=config,
            script=str(script) if script else None, script_sha256=sha256_file(script) if script else None,
            manifest_uri=ledger_ref(con, decision.manifest_uri), manifest_sha256=decision.manifest_sha256,
            policy_hash=decision.policy_hash, code=code_version(), torch_version=torch.__version__,
            device="cuda" if torch.cuda.is_available() else "cpu", world_size=config.nproc * nnodes,
            started_at=previous.started_at if previous else datetime.now(UTC),
            attempts=previous.attempts + 1 if previous else 1,
            acknowledgement=decision.acknowledgement,
        )
        with command(con, principal, ACTION, run_id, roles=roles) as w:
            _save(w, record, new=previous is None)
            w.payload.update({"event": "resumed" if resume else "started", "release_id": config.release_id,
                              "attempt": record.attempts, "config": config.model_dump(mode="json"),
                              "manifest_uri": record.manifest_uri, "manifest_sha256": decision.manifest_sha256,
                              "script_sha256": record.script_sha256, "gate": _gate_summary(decision)})
            if decision.acknowledgement is not None:
                w.payload["acknowledgement"] = decision.acknowledgement.model_dump(mode="json")

    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = run_dir / "spec.json"
    ack = decision.acknowledgement
    RunSpec(run_id=run_id, run_dir=str(run_dir), manifest_uri=decision.manifest_uri, ledger_path=str(ledger_path),
            actor=ack.actor if ack else principal.name, config=config.model_dump(mode="json"), labels=labels,
            acknowledge=ack.reason if ack else None, resume=resume).write(spec_path)
    log_path = run_dir / "logs" / f"attempt-{record.attempts}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, SPEC_ENV: str(spec_path), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with log_path.open("w", encoding="utf-8") as log:
        argv = torchrun_command(config.nproc, script, nnodes=nnodes, rdzv_endpoint=rdzv_endpoint, rdzv_id=run_id)
        process = subprocess.Popen(argv, cwd=run_dir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout_s)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = -signal.SIGKILL
    return _finish(ledger_path, record, run_dir, returncode, log_path, principal, roles, publish_uri)


def _gate_summary(decision: GateDecision) -> dict[str, Any]:
    return {"checked_on": decision.checked_on.isoformat(), "policy_hash": decision.policy_hash,
            "reason_codes": [str(r) for r in decision.reason_codes],
            "denied_track_ids": list(decision.denied_track_ids)}


def _finish(ledger_path: Path, record: RunRecord, run_dir: Path, returncode: int, log_path: Path,
            principal: Principal, roles: RoleBook | None, publish_uri: str | None = None) -> RunRecord:
    exposure = _read_exposure(run_dir / "exposure")
    metrics = _epoch_metrics(run_dir, exposure, record.run_id)
    model_path = run_dir / "model.pt"
    device_file = run_dir / "device.json"
    device = json.loads(device_file.read_text())["name"] if device_file.exists() else record.device
    ok = returncode == 0 and model_path.exists()
    with connect(ledger_path) as con:
        statement: AttributionStatement = attribution.build_statement(
            con, run_id=record.run_id, release_id=record.release_id, manifest_sha256=record.manifest_sha256,
            exposure=exposure)
        updates: dict[str, Any] = {
            "status": "completed" if ok else "failed", "ended_at": datetime.now(UTC), "metrics": metrics,
            "samples_consumed": statement.total_samples, "device": device,
        }
        if ok:
            checkpoint_uri = model_path.as_posix()
            if publish_uri:

                checkpoint_uri = join(publish_uri, "model.pt")
                ObjectStore().put_file(checkpoint_uri, model_path)
            updates |= {"checkpoint_uri": ledger_ref(con, checkpoint_uri),
                        "checkpoint_sha256": sha256_file(model_path)}
        else:
            updates["error"] = f"training processes exited with status {returncode}; log {log_path}:\n{_tail(log_path)}"
        final = record.model_copy(update=updates)
        with command(con, principal, ACTION, record.run_id, roles=roles) as w:
            _save(w, final, new=False)
            attribution.record_statement(w, statement)
            w.payload.update({"event": "completed" if ok else "failed", "attempt": final.attempts,
                              "returncode": returncode, "samples_consumed": statement.total_samples,
                              "checkpoint_uri": final.checkpoint_uri,
                              "checkpoint_sha256": final.checkpoint_sha256})
        if ok:
            model_card = card.build_card(con, final, statement)
    if not ok:
        raise TrainingFailed(final)
    attribution.write_statement(statement, run_dir)
    card.write_card(model_card, statement, run_dir)
    (run_dir / "run.json").write_text(final.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if publish_uri:
        ObjectStore().upload_tree(run_dir, publish_uri)
    return final
