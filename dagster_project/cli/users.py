"""``linernotes users set-password``: the web login's argon2 hash in roles.yaml, as an audited command."""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from dagster_project.cli.common import ActorOption, HomeOption, actor_from, console, fail, home_from


def register(app: typer.Typer) -> None:
    users = typer.Typer(no_args_is_help=True, help="Users of the web app: passwords (roles stay in roles.yaml).")
    app.add_typer(users, name="users")

    @users.command("set-password")
    def set_password_cmd(name: str = typer.Argument(..., help="The user (as named in roles.yaml)."),
                         password_stdin: bool = typer.Option(False, "--password-stdin",
                                                             help="Read the password from standard input."),
                         home: Optional[str] = HomeOption, actor: Optional[str] = ActorOption) -> None:
        """Set NAME's web password (your own, or anyone's as an admin); stored as an argon2 hash, audited."""
        from store.database import connect
        from store.passwords import PasswordRejected, set_password
        from store.roles import RoleRefused

        data_home = home_from(home)
        who = actor_from(actor, data_home)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        elif os.environ.get("LINERNOTES_PASSWORD"):
            password = os.environ["LINERNOTES_PASSWORD"]
        else:
            password = typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True)
        with connect(data_home.db_path) as con:
            try:
                set_password(con, name, password, actor=who)
            except RoleRefused as exc:
                fail(f"refused ({exc.code}): {exc.message}", code=3)
            except PasswordRejected as exc:
                fail(f"{exc.code}: {exc.message}", code=3 if exc.code != "password_too_short" else 2)
        console.print(f"password set for {name} (argon2id hash in roles.yaml), by {who}")
