"""``linernotes trace``: from song to model and back."""

from __future__ import annotations

import typer
from rich.tree import Tree

from dagster_project.cli.common import HomeOption, JsonOption, console, fail, home_from, print_json


def register(app: typer.Typer) -> None:
    trace_app = typer.Typer(no_args_is_help=True, help="Trace a song to every model it reached, and back.")
    app.add_typer(trace_app, name="trace")

    def _run(kind: str, key: str, home: str | None) -> dict:
        from lineage import trace as tracing
        from store.database import connect

        with connect(home_from(home).db_path, read_only=True) as con:
            try:
                return {"isrc": tracing.trace_isrc, "model": tracing.trace_model,
                        "release": tracing.trace_release}[kind](con, key)
            except (tracing.TraceNotFound, ValueError) as exc:
                fail(str(exc))
                raise

    @trace_app.command("isrc")
    def isrc(isrc: str, home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Fingerprint, decisions over time, releases, shards, models and exposure of one recording."""
        result = _run("isrc", isrc, home)
        if as_json:
            print_json(result)
            return
        t = result["tracks"][0]
        tree = Tree(f"[bold]{result['isrc']}[/bold] {t['title']} by {', '.join(t['artists'] or [])}")
        tree.add(f"file {t['source_path']} sha256 {t['audio_sha256'][:16]}… delivery {t['delivery_id']}")
        tree.add(f"fingerprint: {t['fp_prefix'] or 'none'}…")
        for m in result["audio_matches"]:
            tree.add(f"audio match [{m['kind']}] {m['matched_ref']} score {m['score']:.3f} (threshold {m['threshold']})")
        decisions = tree.add("decisions")
        for d in result["decisions"]:
            verdict = "[green]ALLOW[/green]" if d["allowed"] else "[red]DENY[/red]"
            decisions.add(f"{d['decided_at']:%Y-%m-%d %H:%M} {verdict} {d['purpose']} {d['territory']} "
                          f"{', '.join(d['reason_codes'])} — {d['explanation']}")
        releases = tree.add("releases")
        for r in result["releases"]:
            releases.add(f"{r['release_id']} {r['purpose']} {r['status']} (approved by {r['approved_by']})")
        shards = tree.add("shards")
        for s in result["shards"]:
            shards.add(f"{s['shard_uri']}: {s['rows']} rows (release {s['release_id']})")
        models = tree.add("models")
        for m in result["models"]:
            models.add(f"{m['run_id']} [{m['status']}] {m['samples']} samples ({100 * m['fraction']:.2f}%) "
                       f"checkpoint {m['checkpoint_uri']}")
        console.print(tree)

    @trace_app.command("model")
    def model(run_id: str, home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Every track, rights holder, license, consent and decision behind a training run."""
        result = _run("model", run_id, home)
        if as_json:
            print_json(result)
            return
        run = result["run"]
        tree = Tree(f"[bold]model {run['run_id']}[/bold] [{run['status']}] release {result['release_id']}, "
                    f"{result['samples_consumed']} samples, checkpoint sha256 {str(run['checkpoint_sha256'])[:16]}…")
        for a in result["approvals"]:
            tree.add(f"{a['action']} by {a['actor']} at {a['recorded_at']:%Y-%m-%d %H:%M}: {a['comment']}")
        holders = tree.add("rights holders")
        for h in result["rights_holders"]:
            holders.add(f"{h['name']} ({h['party_id']}): {100 * h['fraction']:.2f}% of samples, {h['tracks']} track(s)")
        tracks = tree.add(f"tracks ({len(result['tracks'])}); licenses {result['licenses']}")
        for t in result["tracks"]:
            owners = ", ".join(f"{h['name']} {h['share']:g}%" for h in t["rights_holders"])
            tracks.add(f"{t['isrc']} {t['title']}: {t['samples']} samples; {t['license']} deal {t['deal_id']}; "
                       f"consents {', '.join(t['consent_ids'] or [])}; decision {str(t['decision_id'])[:12]}…; "
                       f"owners {owners}")
        console.print(tree)

    @trace_app.command("release")
    def release(release_id: str, home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
        """A release: approvals, tracks and their decisions, shard builds, training runs."""
        result = _run("release", release_id, home)
        if as_json:
            print_json(result)
            return
        r = result["release"]
        tree = Tree(f"[bold]release {release_id}[/bold] {r['purpose']} [{r['status']}] {r['track_count']} tracks")
        for a in result["approvals"]:
            tree.add(f"{a['action']} by {a['actor']}: {a['comment']}")
        for b in result["shard_builds"]:
            tree.add(f"shards {b['manifest_uri']} ({b['shard_count']} files, {b['row_count']} rows)")
        for run in result["runs"]:
            tree.add(f"run {run['run_id']} [{run['status']}] {run['samples_consumed']} samples")
        console.print(tree)
