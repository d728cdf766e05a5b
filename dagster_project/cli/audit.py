"""``linernotes audit``: verify that the records were not altered."""

from __future__ import annotations

import typer

from dagster_project.cli.common import HomeOption, JsonOption, console, fail, home_from, print_json


def register(app: typer.Typer) -> None:
    audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
    app.add_typer(audit_app, name="audit")

    @audit_app.command("verify")
    def verify(home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Re-walk the audit chain and name the first entry that does not match."""
        from lineage.audit import verify_chain
        from store.database import connect

        with connect(home_from(home).db_path, read_only=True) as con:
            report = verify_chain(con)
        if as_json:
            print_json(report.__dict__)
        elif report.ok:
            console.print(f"[green]audit chain intact[/green]: {report.entries} entries")
        if not report.ok:
            fail(f"audit chain broken at entry {report.first_bad_seq}: {report.problem}")
