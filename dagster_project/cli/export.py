"""``linernotes export``: what auditors and regulators ask for, generated from lineage.

Every export is an ``audit.export`` command of :mod:`lineage` (auditor or rights_team role), written
to the audit log with the hashes of what it produced.
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
    console,
    fail,
    home_from,
    print_json,
    refusals,
)
from store.roles import RoleRefused

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
        from lineage.evidence import export_pack
        from lineage.trace import TraceNotFound
        from store.database import connect

        who = actor_from(actor, home_from(home))
        with connect(home_from(home).db_path) as con, refusals():
            try:
                pack = export_pack(con, run_id, out, actor=who, provider=_provider(provider), contact=contact)
            except RoleRefused:
                raise  # a PermissionError, hence an OSError: refusals() reports it
            except (TraceNotFound, FileExistsError, ValueError, OSError) as exc:
                fail(str(exc))
                return
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
        from lineage.ai_act import export_summary
        from lineage.trace import TraceNotFound
        from store.database import connect

        who = actor_from(actor, home_from(home))
        with connect(home_from(home).db_path) as con, refusals():
            try:
                summary, paths = export_summary(con, run_id, out, actor=who, provider=_provider(provider),
                                                contact=contact, model_name=model_name)
            except TraceNotFound as exc:
                fail(str(exc))
                return
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
        from store.database import connect

        if out is None and url is None:
            fail("give --out DIR and/or --url URL", code=2)
        who = actor_from(actor, home_from(home))
        data_home = home_from(home)
        with connect(data_home.db_path) as con, refusals():
            try:
                exported = ol.export_events(con, actor=who, out=out, url=url, run_id=run_id, namespace=namespace)
            except ValueError as exc:
                fail(str(exc))
                return
            except OSError as exc:
                fail(f"could not post to {url}: {exc}")
                return
        if as_json:
            print_json({"events": exported.events, "written": list(exported.written), "posted": exported.posted})
        else:
            console.print(f"{exported.events} OpenLineage events" + (f" written to {out}" if out else "")
                          + (f", {exported.posted} posted to {url}" if url else ""))
