"""``linernotes outbox apply``: apply batches written by workers on other machines, each as its domain command."""

from __future__ import annotations

import typer

from dagster_project.cli.common import ActorOption, HomeOption, JsonOption, actor_from, console, home_from, print_json


def register(app: typer.Typer) -> None:
    outbox_app = typer.Typer(no_args_is_help=True, help="Batches from workers on other machines.")
    app.add_typer(outbox_app, name="outbox")

    @outbox_app.command("apply")
    def apply_cmd(outbox_uri: str = typer.Argument(..., help="The outbox: a folder or s3://bucket/prefix."),
                  home: str | None = HomeOption, actor: str | None = ActorOption, as_json: bool = JsonOption) -> None:
        """Apply pending batches once each; a batch asking for a command not on the allow-list is rejected."""
        from dagster_project.outbox import OUTBOX_HANDLERS
        from store.database import connect
        from store.outbox import apply_outbox

        data_home = home_from(home)
        who = actor_from(actor, data_home)
        with connect(data_home.db_path) as con:
            report = apply_outbox(con, outbox_uri, handlers=OUTBOX_HANDLERS, actor=who)
        if as_json:
            print_json({"applied": report.applied, "already_applied": report.already_applied,
                        "rejected": report.rejected, "rows_by_table": report.rows_by_table})
            return
        console.print(f"applied {len(report.applied)} batch(es), {report.already_applied} already applied, "
                      f"{len(report.rejected)} rejected")
        for batch_id, code, message in report.rejected:
            console.print(f"  [red]{code}[/red] {batch_id[:16]}: {message}")
        if report.rejected:
            raise typer.Exit(1)
