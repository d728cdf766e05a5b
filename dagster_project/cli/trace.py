"""``linernotes trace``: from song to model and back."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import typer
from rich.markup import escape
from rich.tree import Tree

from dagster_project.cli.common import (
    ActorOption,
    HomeOption,
    JsonOption,
    actor_from,
    console,
    fail,
    home_from,
    print_json,
    refusals,
)
from store.roles import RoleRefused


def _when(value: Any) -> str:
    return str(value)[:16].replace("T", " ") if value else "-"


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
             lambda m: f"{m['kind']}: {m['matched_ref']} by {m['method']}, score {m['score']:.3f} "
                       f"(threshold {m['threshold']:g})")
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
    _section(tree, "[red]consents revoked since[/red]", r["revoked_consents"],
             lambda c: f"{c['consent_id']} ({c['party_id']}) revoked {_when(c['revoked_at'])}")
    _section(tree, "release alerts", r["release_alerts"],
             lambda a: f"{a['isrc']}: {', '.join(a['reason_codes'])} (checked {a['checked_on']})")
    tree.add(_snapshot_line(r["snapshot"]))
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
    _section(tree, "release alerts", r["release_alerts"],
             lambda a: f"{a['isrc']}: {', '.join(a['reason_codes'])} (checked {a['checked_on']})")
    tree.add(_snapshot_line(r["snapshot"]))
    return tree


def _snapshot_line(s: dict[str, Any]) -> str:
    if s["used"]:
        return (f"tracks from snapshot {s['uri']} (sha256 {_short(s['sha256'], 16)}, built {_when(s['built_at'])} "
                f"by {s['built_by']}; verified)")
    return f"tracks traced from the ledger: {escape(str(s['problem']))}"


def register(app: typer.Typer) -> None:
    trace_app = typer.Typer(no_args_is_help=True, help="Trace a song to every model it reached, and back.")
    app.add_typer(trace_app, name="trace")
    live_option = typer.Option(False, "--live", help="Ignore the stored snapshot and trace everything from the "
                                                     "ledger (model and release traces).")

    def add(kind: str, key_name: str, doc: str, render: Callable[[dict[str, Any]], Tree]) -> None:
        def command(key: str = typer.Argument(..., metavar=key_name), home: str | None = HomeOption,
                    as_json: bool = JsonOption, live: bool = live_option,
                    top: int | None = typer.Option(None, "--top", min=1,
                                                   help="Only the N tracks with most samples (model traces).")) -> None:
            from lineage import trace as tracing
            from store.database import connect

            options: dict[str, Any] = {} if kind == "isrc" else {"use_snapshot": not live}
            if kind == "model":
                options["limit"] = top
            with connect(home_from(home).db_path, read_only=True) as con:
                try:
                    text = {"isrc": tracing.trace_isrc_json, "model": tracing.trace_model_json,
                            "release": tracing.trace_release_json}[kind](con, key, **options)
                except (tracing.TraceNotFound, ValueError) as exc:
                    fail(str(exc))
                    return
            if as_json:
                typer.echo(text)
            else:
                console.print(render(json.loads(text)))

        command.__doc__ = doc
        trace_app.command(kind)(command)

    add("isrc", "ISRC", "Fingerprint, every decision over time, releases, shards, models and exposure of a recording.",
        _isrc_tree)
    add("model", "RUN_ID", "Every track, rights holder, license, consent and decision behind a training run.",
        _model_tree)
    add("release", "RELEASE_ID", "A release: approvals, tracks and their decisions, shard builds, training runs.",
        _release_tree)

    @trace_app.command("snapshot")
    def snapshot(run_id: str | None = typer.Argument(None, help="A training run (and its release); default: all."),
                 rebuild: bool = typer.Option(False, "--rebuild", help="Build again even where one is stored."),
                 actor: str | None = ActorOption, home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Store the frozen part of model and release traces (bill of materials), hashed and audit-logged.

        Runs record theirs when they complete; this builds what is missing, e.g. for older runs.
        """
        from lineage.trace import TraceNotFound, ensure_snapshots
        from store.database import connect

        who = actor_from(actor, home_from(home))
        with connect(home_from(home).db_path) as con, refusals():
            try:
                built = ensure_snapshots(con, actor=who, run_id=run_id, rebuild=rebuild)
            except RoleRefused:
                raise  # a PermissionError, hence an OSError: refusals() reports it
            except (TraceNotFound, ValueError, OSError) as exc:
                fail(str(exc))
                return
        if as_json:
            print_json([b.model_dump(mode="json") for b in built])
            return
        for b in built:
            console.print(f"{b.kind} {b.subject}: {b.track_count} tracks, {b.bytes:,} bytes, sha256 "
                          f"{_short(b.sha256, 16)} at {b.uri}")
        console.print(f"{len(built)} snapshot(s) built")
