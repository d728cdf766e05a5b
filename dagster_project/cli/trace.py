"""``linernotes trace``: from song to model and back."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import typer
from rich.markup import escape
from rich.tree import Tree

from dagster_project.cli.common import HomeOption, JsonOption, console, fail, home_from, print_json


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else "-"


def _short(value: Any, n: int = 12) -> str:
    return f"{str(value)[:n]}…" if value else "-"


def _section(tree: Tree, title: str, items: Iterable[dict[str, Any]], line: Callable[[dict[str, Any]], str]) -> None:
    items = list(items)
    branch = tree.add(f"{title} ({len(items)})")
    for item in items:
        branch.add(line(item))


def _verdict(allowed: bool | None) -> str:
    return "[green]ALLOW[/green]" if allowed else "[red]DENY[/red]"


def _isrc_tree(r: dict[str, Any]) -> Tree:
    t = r["tracks"][0]
    tree = Tree(f"[bold]{r['isrc']}[/bold] {escape(str(t['title']))} by {', '.join(t['artists'] or [])}")
    for track in r["tracks"]:
        tree.add(f"file {track['source_path']} sha256 {_short(track['audio_sha256'], 16)} delivery "
                 f"{track['delivery_id']}; fingerprint {track['fp_prefix'] or 'none'}… "
                 f"({track['fp_seconds'] or 0:g} s, items sha256 {_short(track['fp_items_sha256'])})")
    _section(tree, "contributors", r["contributors"], lambda c: f"{c['role']}: {c['name']} ({c['party_id']})")
    _section(tree, "audio matches", r["audio_matches"],
             lambda m: f"{m['kind']}: {m['matched_ref']} score {m['score']:.3f} (threshold {m['threshold']})")
    _section(tree, "decisions", r["decisions"],
             lambda d: f"{_when(d['decided_at'])} {_verdict(d['allowed'])} {d['purpose']} {d['territory']} "
                       f"{', '.join(d['reason_codes'])} — {escape(d['explanation'])}")
    _section(tree, "releases", r["releases"],
             lambda x: f"{x['release_id']} {x['purpose']} ({x['status']}) approved by {x['approved_by'] or '-'}")
    _section(tree, "shards", r["shards"],
             lambda s: f"{s['shard_uri']}: {s['rows']} of {s['shard_rows']} rows (release {s['release_id']})")
    _section(tree, "models", r["models"],
             lambda m: f"{m['run_id']} ({m['status']}) {m['samples']} samples ({100 * m['fraction']:.2f}% of "
                       f"{m['run_samples']}) checkpoint {m['checkpoint_uri']}")
    return tree


def _owners(track: dict[str, Any]) -> str:
    return ", ".join(f"{h['name']} {h['share']:g}%" for h in track["rights_holders"]) or "-"


def _model_tree(r: dict[str, Any]) -> Tree:
    run = r["run"]
    tree = Tree(f"[bold]model {run['run_id']}[/bold] ({run['status']}) release {r['release_id']}, "
                f"{r['samples_consumed']} samples, checkpoint sha256 {_short(run['checkpoint_sha256'], 16)}")
    _section(tree, "approvals", r["approvals"],
             lambda a: f"{a['action']} by {a['actor']} at {_when(a['recorded_at'])}: {escape(a['comment'])}")
    _section(tree, "rights holders", r["rights_holders"],
             lambda h: f"{h['name']} ({h['party_id']}): {100 * h['fraction']:.2f}% of samples, {h['tracks']} track(s)")
    shown = f"{len(r['tracks'])} of {r['tracks_total']}" if len(r["tracks"]) < r["tracks_total"] else "all"
    _section(tree, f"tracks ({shown}); licenses {r['licenses']}", r["tracks"],
             lambda t: f"{t['isrc']} {escape(str(t['title']))}: {t['samples']} samples; {_verdict(t['allowed'])} decision "
                       f"{_short(t['decision_id'])} under {t['license']} (deal {t['deal_id']}); consents "
                       f"{', '.join(c['consent_id'] for c in t['consents']) or '-'}; owners {_owners(t)}")
    return tree


def _release_tree(r: dict[str, Any]) -> Tree:
    rel = r["release"]
    tree = Tree(f"[bold]release {rel['release_id']}[/bold] {rel['purpose']} {rel['territory']} ({rel['status']}) "
                f"{rel['track_count']} tracks, policy {_short(rel['policy_hash'])}")
    _section(tree, "approvals", r["approvals"], lambda a: f"{a['action']} by {a['actor']}: {escape(a['comment'])}")
    _section(tree, "tracks", r["tracks"],
             lambda t: f"{t['isrc']} {escape(str(t['title']))} {_verdict(t['allowed'])} deal {t['deal_id']}")
    _section(tree, "shard builds", r["shard_builds"],
             lambda b: f"{b['manifest_uri']} ({b['shard_count']} files, {b['row_count']} rows, "
                       f"{b['excluded_count']} excluded)")
    _section(tree, "runs", r["runs"], lambda x: f"{x['run_id']} ({x['status']}) {x['samples_consumed']} samples")
    _section(tree, "refused training starts", r["training_refusals"],
             lambda x: f"{x['run_id']} by {x['actor']}: {', '.join(x['reason_codes'])}")
    return tree


def register(app: typer.Typer) -> None:
    trace_app = typer.Typer(no_args_is_help=True, help="Trace a song to every model it reached, and back.")
    app.add_typer(trace_app, name="trace")

    def add(kind: str, key_name: str, doc: str, render: Callable[[dict[str, Any]], Tree]) -> None:
        def command(key: str = typer.Argument(..., metavar=key_name), home: str | None = HomeOption,
                    as_json: bool = JsonOption,
                    top: int | None = typer.Option(None, "--top", min=1,
                                                   help="Only the N tracks with most samples (model traces).")) -> None:
            from lineage import trace as tracing
            from store.database import connect

            with connect(home_from(home).db_path, read_only=True) as con:
                try:
                    if kind == "model":
                        result = tracing.trace_model(con, key, limit=top)
                    else:
                        result = {"isrc": tracing.trace_isrc, "release": tracing.trace_release}[kind](con, key)
                except (tracing.TraceNotFound, ValueError) as exc:
                    fail(str(exc))
                    return
            if as_json:
                print_json(result)
            else:
                console.print(render(result))

        command.__doc__ = doc
        trace_app.command(kind)(command)

    add("isrc", "ISRC", "Fingerprint, every decision over time, releases, shards, models and exposure of a recording.",
        _isrc_tree)
    add("model", "RUN_ID", "Every track, rights holder, license, consent and decision behind a training run.",
        _model_tree)
    add("release", "RELEASE_ID", "A release: approvals, tracks and their decisions, shard builds, training runs.",
        _release_tree)
