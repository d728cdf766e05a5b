"""What every command shares: the data directory, the acting user, rich output."""

from __future__ import annotations

import json
import os
from typing import Any

import typer
from rich.console import Console

from store.home import Home

console = Console()
err_console = Console(stderr=True)

HomeOption = typer.Option(None, "--home", help="Data directory (default: $LINERNOTES_HOME or .linernotes/).")
ActorOption = typer.Option(None, "--actor", help="Who performs this action (default: $LINERNOTES_ACTOR).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def home_from(option: str | None) -> Home:
    return Home.from_env(option).ensure()


def actor_from(option: str | None) -> str:
    actor = option or os.environ.get("LINERNOTES_ACTOR")
    if not actor:
        err_console.print("[red]error:[/red] this command changes records: name yourself with --actor or LINERNOTES_ACTOR")
        raise typer.Exit(2)
    return actor


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def authorize_or_fail(con: Any, *, actor: str, action: str, subject: str) -> None:
    """Refuse (exit 3, audited) when ``actor``'s roles do not allow ``action``; see licensing.roles.PERMISSIONS."""
    from store.roles import RoleRefused, authorize

    try:
        authorize(con, actor=actor, action=action, subject=subject)
    except RoleRefused as exc:
        fail(f"refused ({exc.code}): {exc.message}", code=3)
