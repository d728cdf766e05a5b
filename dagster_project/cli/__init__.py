"""The ``linernotes`` command line: thin commands over the domain packages.

Each command group lives in its own module exposing ``register(app)``; heavy imports
(torch, dagster) happen inside the commands that need them.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="linernotes: train only on music you have the right to use, and prove it.")

COMMAND_MODULES = ("demo", "fingerprint", "rights", "shards", "train", "trace", "audit", "prove", "export",
                   "outbox", "users", "serve")

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"dagster_project.cli.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"dagster_project.cli.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    app()
