"""``linernotes train`` and ``linernotes runs``: gated training runs and their records."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from dagster_project.cli.common import (
    ActorOption,
    HomeOption,
    JsonOption,
    actor_from,
    console,
    err_console,
    fail,
    home_from,
    print_json,
    refusals,
)
from store.home import Home

if TYPE_CHECKING:
    from schemas.runs import RunRecord

runs_app = typer.Typer(no_args_is_help=True, help="Inspect training runs: record, metrics, attribution.")


def new_run_id() -> str:
    return f"run_{datetime.now(UTC):%Y%m%dT%H%M%S}_{secrets.token_hex(3)}"


def train(
    release: str = typer.Option(..., "--release", help="Approved release to train on."),
    script: Path | None = typer.Option(None, "--script", exists=True, dir_okay=False,
                                       help="Your torch script; it gets data through training.runtime."),
    run_id: str | None = typer.Option(None, "--run-id", help="Run id (default: generated)."),
    resume: str | None = typer.Option(None, "--resume", help="Resume this failed run from its last checkpoint."),
    epochs: int = typer.Option(2, "--epochs", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    learning_rate: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    nproc: int = typer.Option(2, "--nproc", min=1, help="Processes (torchrun --nproc_per_node)."),
    checkpoint_every: int = typer.Option(10, "--checkpoint-every", min=1, help="Optimizer steps per checkpoint."),
    manifest: str | None = typer.Option(None, "--manifest", help="Shard manifest URI (default: latest build)."),
    acknowledge_denied: str | None = typer.Option(
        None, "--acknowledge-denied", help="Train although tracks were denied after approval; the reason is recorded."),
    home: str | None = HomeOption,
    actor: str | None = ActorOption,
    as_json: bool = JsonOption,
) -> None:
    """Train on an approved release under torchrun; writes the run record, model card and attribution."""
    from schemas.runs import TrainConfig
    from training.launcher import TrainingFailed, TrainingRefused, launch_run

    who = actor_from(actor, home_from(home))
    data_home = home_from(home)
    config = TrainConfig(release_id=release, model="script" if script else "reference", epochs=epochs,
                         batch_size=batch_size, learning_rate=learning_rate, seed=seed, nproc=nproc,
                         checkpoint_every=checkpoint_every, manifest_uri=manifest)
    chosen = resume or run_id or new_run_id()
    if not as_json:
        console.print(f"[bold]{'resuming' if resume else 'starting'}[/bold] {chosen} on release {release} "
                      f"({nproc} process{'es' if nproc > 1 else ''})")
    try:
        with refusals():
            record = launch_run(data_home.db_path, run_id=chosen, config=config, actor=who, script=script,
                                acknowledge=acknowledge_denied, resume=resume is not None, runs_dir=data_home.runs)
    except TrainingRefused as exc:
        fail(f"training refused ({', '.join(exc.decision.reason_codes)}): {escape(exc.decision.message)} "
             f"(recorded as {exc.refusal_id})", code=3)
    except TrainingFailed as exc:
        fail(f"{exc.record.error}\nresume with: linernotes train --release {release} --resume {chosen}", code=4)
    except ValueError as exc:
        fail(str(exc), code=2)
    _snapshot_trace(data_home, record.run_id, who)
    if as_json:
        print_json(record.model_dump(mode="json"))
        return
    _show(record, data_home.runs / record.run_id)


def _snapshot_trace(data_home: Home, run_id: str, actor: str) -> None:
    """Freeze the run's bill of materials for ``trace model``; a failure only means traces are computed live."""
    from lineage.trace import ensure_snapshots
    from store.database import connect

    try:
        with connect(data_home.db_path) as con:
            ensure_snapshots(con, actor=actor, run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - the run is recorded; `linernotes trace snapshot` builds it later
        err_console.print(f"[yellow]warning:[/yellow] trace snapshot of {run_id} not stored ({exc}); "
                          f"`linernotes trace snapshot {run_id}` builds it")


def _show(record: RunRecord, run_dir: Path) -> None:
    from rich.table import Table

    console.print(f"[bold]{record.run_id}[/bold] {record.status} on release {record.release_id}, "
                  f"{record.samples_consumed} samples consumed, attempts {record.attempts}")
    console.print(f"code {record.code.commit}{' (dirty)' if record.code.dirty else ''}, torch {record.torch_version} "
                  f"on {record.device}, manifest sha256 {record.manifest_sha256}")
    if record.checkpoint_uri:
        console.print(f"checkpoint {record.checkpoint_uri} sha256 {record.checkpoint_sha256}")
    if record.acknowledgement:
        console.print(f"[yellow]acknowledged by {record.acknowledgement.actor}:[/yellow] "
                      f"{record.acknowledgement.reason} ({len(record.acknowledgement.track_ids)} denied tracks)")
    if record.error:
        console.print(f"[red]{record.error}[/red]")
    table = Table("epoch", "steps", "samples", "metrics")
    for m in record.metrics:
        extra = {k: v for k, v in m.model_dump().items() if k not in ("epoch", "steps", "samples")}
        table.add_row(str(m.epoch), str(m.steps), str(m.samples),
                      ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(extra.items())))
    console.print(table)
    if (run_dir / "MODEL_CARD.md").exists():
        console.print(f"model card: {run_dir / 'MODEL_CARD.md'}; attribution: {run_dir / 'attribution.json'}")


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(...), home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Show a run's record: config, code version, metrics, checkpoint and attribution totals."""
    from store.database import connect
    from training.launcher import load_run

    data_home = home_from(home)
    with connect(data_home.db_path) as con:
        record = load_run(con, run_id)
        holders = con.execute(
            "SELECT party_id, name, tracks, samples_milli, fraction FROM training_attribution WHERE run_id = ? "
            "ORDER BY samples_milli DESC, party_id", [run_id]).fetchall() if record else []
    if record is None:
        fail(f"no run {run_id!r}")
        return
    if as_json:
        print_json({"run": record.model_dump(mode="json"),
                    "attribution": [dict(zip(("party_id", "name", "tracks", "samples_milli", "fraction"), h))
                                    for h in holders]})
        return
    _show(record, data_home.runs / run_id)
    from rich.table import Table

    table = Table("rights holder", "tracks", "samples", "share")
    for party_id, name, tracks, milli, fraction in holders:
        table.add_row(f"{name} ({party_id})", str(tracks), f"{milli / 1000:.3f}", f"{fraction:.2%}")
    console.print(table)


@runs_app.command("list")
def runs_list(home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
    """List training runs, newest first."""
    from store.database import connect

    with connect(home_from(home).db_path) as con:
        rows = con.execute("SELECT run_id, release_id, status, samples_consumed, started_at FROM training_runs "
                           "ORDER BY started_at DESC").fetchall()
    if as_json:
        print_json([dict(zip(("run_id", "release_id", "status", "samples_consumed", "started_at"), r)) for r in rows])
        return
    from rich.table import Table

    table = Table("run", "release", "status", "samples", "started")
    for run_id, release_id, status, samples, started in rows:
        table.add_row(run_id, release_id, status, str(samples), str(started))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.add_typer(runs_app, name="runs")
