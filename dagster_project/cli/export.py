"""``linernotes export``: what auditors and regulators ask for, generated from lineage.

Every export needs the auditor (or rights_team) role and is itself written to the audit log with
the hashes of what it produced.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dagster_project.cli.common import (
    ActorOption,
    HomeOption,
    JsonOption,
    actor_from,
    authorize_or_fail,
    console,
    fail,
    home_from,
    print_json,
)

ProviderOption = typer.Option(None, "--provider", help="Provider named in the summary (default: "
                                                        "$LINERNOTES_PROVIDER).")
ContactOption = typer.Option(None, "--contact", help="Provider contact for the summary.")


def _provider(option: str | None) -> str:
    return option or os.environ.get("LINERNOTES_PROVIDER") or "provider not named (pass --provider)"


def register(app: typer.Typer) -> None:
    export_app = typer.Typer(no_args_is_help=True, help="Exports for auditors and regulators.")
    app.add_typer(export_app, name="export")

    @export_app.command("evidence")
    def evidence(run_id: str, out: Path = typer.Option(..., "--out", help="Empty or new directory."),
                 provider: str | None = ProviderOption, contact: str | None = ContactOption,
                 actor: str | None = ActorOption, home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Evidence pack for a model, with a standalone verify_evidence.py."""
        from lineage.evidence import build_pack
        from lineage.trace import TraceNotFound
        from store import audit
        from store.database import connect

        who = actor_from(actor, home_from(home))
        with connect(home_from(home).db_path) as con:
            authorize_or_fail(con, actor=who, action="audit.export", subject=run_id)
            try:
                pack = build_pack(con, run_id, out, provider=_provider(provider), contact=contact)
            except (TraceNotFound, FileExistsError, ValueError, OSError) as exc:
                fail(str(exc))
                return
            audit.record(con, actor=who, action="export.evidence", subject=run_id, payload=pack.model_dump())
        if as_json:
            print_json(pack.model_dump())
        else:
            console.print(f"evidence pack for {run_id}: {pack.files} files in {out} (index sha256 "
                          f"{pack.index_sha256[:16]}…, audit entries {pack.audit_first_seq}-{pack.audit_last_seq}, "
                          f"{pack.proofs} exclusion proof(s)); check it with `python {out}/verify_evidence.py`")

    @export_app.command("ai-act-summary")
    def ai_act_summary(run_id: str, out: Path = typer.Option(..., "--out", help="Directory for .md and .json."),
                       provider: str | None = ProviderOption, contact: str | None = ContactOption,
                       model_name: str | None = typer.Option(None, "--model-name", help="Public model name."),
                       actor: str | None = ActorOption, home: str | None = HomeOption,
                       as_json: bool = JsonOption) -> None:
        """EU AI Act public summary of training content (AI Office template, July 2025) for a model."""
        from lineage.ai_act import build_summary, write_summary
        from lineage.trace import TraceNotFound
        from store import audit
        from store.database import connect
        from store.digest import sha256_file

        who = actor_from(actor, home_from(home))
        with connect(home_from(home).db_path) as con:
            authorize_or_fail(con, actor=who, action="audit.export", subject=run_id)
            try:
                summary = build_summary(con, run_id, provider=_provider(provider), contact=contact,
                                        model_name=model_name)
            except TraceNotFound as exc:
                fail(str(exc))
                return
            paths = write_summary(summary, out)
            audit.record(con, actor=who, action="export.ai_act_summary", subject=run_id,
                         payload={k: {"path": str(p), "sha256": sha256_file(p)} for k, p in paths.items()})
        if as_json:
            print_json(summary.model_dump(mode="json"))
        else:
            console.print(f"AI Act summary for {run_id}: {paths['markdown']} and {paths['json']}")

    @export_app.command("openlineage")
    def openlineage(out: Path | None = typer.Option(None, "--out", help="Write one JSON file per event here."),
                    url: str | None = typer.Option(None, "--url", help="POST each event to this OpenLineage "
                                                                       "endpoint (e.g. http://host:5000/api/v1/lineage)."),
                    run_id: str | None = typer.Option(None, "--run", help="Only the stages leading to this run."),
                    namespace: str = typer.Option("linernotes", "--namespace", help="Job namespace."),
                    actor: str | None = ActorOption, home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
        """OpenLineage RunEvents (START/COMPLETE/FAIL) for every pipeline stage, from the ledger."""
        from lineage import openlineage as ol
        from schemas.canonical import canonical_json, sha256_text
        from store import audit
        from store.database import connect

        if out is None and url is None:
            fail("give --out DIR and/or --url URL", code=2)
        who = actor_from(actor, home_from(home))
        data_home = home_from(home)
        with connect(data_home.db_path) as con:
            authorize_or_fail(con, actor=who, action="audit.export", subject=run_id or "ledger")
            events = ol.ledger_events(con, namespace=namespace, run_id=run_id)
            problems = [p for e in events for p in ol.validate_event(e)]
            if problems:
                fail("generated events do not validate: " + "; ".join(problems[:5]))
            written = ol.write_events(events, out) if out is not None else []
            try:
                posted = ol.post_events(events, url) if url is not None else 0
            except OSError as exc:
                fail(f"could not post to {url}: {exc}")
                return
            audit.record(con, actor=who, action="export.openlineage", subject=run_id or "ledger",
                         payload={"events": len(events), "out": str(out) if out else None, "url": url,
                                  "events_sha256": sha256_text(canonical_json(events))})
        if as_json:
            print_json({"events": len(events), "written": [str(p) for p in written], "posted": posted})
        else:
            console.print(f"{len(events)} OpenLineage events" + (f" written to {out}" if out else "")
                          + (f", {posted} posted to {url}" if url else ""))
