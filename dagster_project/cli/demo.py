"""``linernotes demo``: the whole pipeline on the real demo catalog, through Dagster."""

from __future__ import annotations

import json

import typer
from rich.panel import Panel
from rich.table import Table

from dagster_project.cli.common import HomeOption, console, fail, home_from


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        home: str | None = HomeOption,
        tracks_per_package: int | None = typer.Option(None, help="Use only this many tracks of each package."),
        epochs: int = typer.Option(2, help="Training epochs."),
    ) -> None:
        """Fetch the demo catalog and run ingest -> fingerprint -> enforce -> approve -> shards -> train -> lineage."""
        from catalog.demo import DemoSetupError
        from dagster_project.demo import run_demo
        from lineage.summary import pipeline_summary
        from lineage.trace import trace_isrc
        from store.database import connect

        data_home = home_from(home)
        try:
            outcome = run_demo(data_home, tracks_per_package=tracks_per_package, epochs=epochs, say=console.print)
        except DemoSetupError as exc:
            fail(str(exc))
        with connect(data_home.db_path, read_only=True) as con:
            summary = pipeline_summary(con, release_id=outcome.release_id, run_id=outcome.run_id)
            sample = con.execute(
                "SELECT isrc FROM training_exposure WHERE run_id = ? ORDER BY samples DESC, isrc LIMIT 1",
                [outcome.run_id]).fetchone()
            trace = trace_isrc(con, sample[0]) if sample else None
        render_summary(summary, trace, data_home.root)


def render_summary(s: dict, trace: dict | None, root: object) -> None:
    table = Table(title="linernotes demo: what happened", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    q = s["quarantined"]
    table.add_row("Ingested", f"{s['tracks_ingested']} tracks"
                  + (f"; quarantined {sum(q.values())}: " + ", ".join(f"{k} {v}" for k, v in q.items()) if q else ""))
    table.add_row("Fingerprinted", f"{s['fingerprinted']} tracks; {s['optout_matches']} opt-out match(es); "
                                   f"{s['duplicate_clusters']} duplicate cluster(s)")
    reasons = ", ".join(f"{k} {v}" for k, v in s["denied_by_reason"].items())
    table.add_row(f"Decided ({s['purpose']})", f"[green]{s['allowed']} allowed[/green], "
                                               f"[red]{s['denied']} denied[/red]" + (f" ({reasons})" if reasons else ""))
    r = s["release"]
    table.add_row("Release", f"{r['release_id']}: {r['tracks']} tracks, {r['status']} by {r['approved_by']} "
                             f"at {r['approved_at']:%Y-%m-%d %H:%M} UTC: \"{r['comment']}\"" if r["approved_by"]
                  else f"{r['release_id']}: {r['status']}")
    table.add_row("Shards", f"{s['shards']['files']} Parquet shard(s), {s['shards']['samples']} attributed samples")
    m = s["model"]
    metrics = m["metrics"]
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    table.add_row("Model", f"run {m['run_id']} {m['status']} on {m['device']} x{m['world_size']}; "
                           f"{m['samples_consumed']} samples consumed; checkpoint sha256 {str(m['checkpoint_sha256'])[:16]}…")
    if metrics:
        last = metrics[-1]
        table.add_row("Metrics", "; ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in last.items()))
    console.print(table)
    if trace:
        t = trace["tracks"][0]
        lines = [f"[bold]{t['title']}[/bold] by {', '.join(t['artists'] or [])}  ISRC {trace['isrc']}",
                 f"file   {t['source_path']} (sha256 {t['audio_sha256'][:12]}…)",
                 f"fprint chromaprint alg {t['fp_algorithm']}, {t['fp_seconds']:.0f} s, {t['fp_prefix']}…"]
        for d in trace["decisions"][-1:]:
            lines.append(f"decide {'ALLOW' if d['allowed'] else 'DENY'} {d['purpose']} (decision {d['decision_id'][:12]}…,"
                         f" deal {d['deal_id']}, policy {d['policy_hash'][:12]}…)")
        for rel in trace["releases"][-1:]:
            lines.append(f"release {rel['release_id']} {rel['status']} by {rel['approved_by']}")
        for sh in trace["shards"][-2:]:
            lines.append(f"shard  {sh['shard_uri']} ({sh['rows']} rows)")
        for model in trace["models"]:
            lines.append(f"model  {model['run_id']}: {model['samples']} samples seen "
                         f"({100 * model['fraction']:.2f}% of the run)")
        console.print(Panel("\n".join(lines), title="Trace of one song, file to model", title_align="left"))
    console.print(f"Data directory: {root}. Browse it in Dagster: [bold]make ui[/bold] "
                  f"(dagster dev -w workspace.yaml with DAGSTER_HOME={root}/dagster).")
