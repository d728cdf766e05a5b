"""What every command shares: the data directory, the acting user, rich output."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from store.database import connect
from store.home import Home
from store.ledger import record_refusal
from store.roles import (
    ROLES_ENV,
    ROLES_FILE,
    Principal,
    RoleRefused,
    RolesError,
    load_roles,
    os_user,
    principal_for_os_user,
)

console = Console()
err_console = Console(stderr=True)

HomeOption = typer.Option(None, "--home", help="Data directory (default: $LINERNOTES_HOME or .linernotes/).")
ActorOption = typer.Option(None, "--actor", help="Act as this user (admins only; default: the user roles.yaml maps your operating-system account to).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def home_from(option: str | None) -> Home:
    return Home.from_env(option).ensure()


def actor_from(option: str | None, home: Home | None = None) -> Principal:
    """Who is acting: the user ``roles.yaml`` maps this operating-system account to.

    ``--actor`` (or ``LINERNOTES_ACTOR``) may name someone else only when that user is an admin; it is
    recorded as such. An account the roles file does not map, an unreadable roles file or a refused
    ``--actor`` stops the command (exit 3), and the refusal is audited.
    """
    home = home or Home.from_env(None).ensure()
    requested = option or os.environ.get("LINERNOTES_ACTOR") or None
    account = os_user()
    path = Path(os.environ.get(ROLES_ENV) or home.root / ROLES_FILE)
    try:
        return principal_for_os_user(load_roles(path), account, requested)
    except (RolesError, RoleRefused) as exc:
        code = exc.code if isinstance(exc, RoleRefused) else "roles_unavailable"
        message = exc.message if isinstance(exc, RoleRefused) else str(exc)
        with connect(home.db_path) as con:
            record_refusal(con, Principal(name=requested or account, method="os_user", via=f"os:{account}"),
                           "identity", "command line", code=code, message=message)
        fail(f"refused ({code}): {message}", code=3)
        raise


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """A domain command's role refusal (already recorded) ends the command line with exit code 3."""
    try:
        yield
    except RoleRefused as exc:
        fail(f"refused ({exc.code}): {escape(exc.message)}", code=3)
