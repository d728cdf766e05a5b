"""``linernotes serve``: the web app for rights teams and auditors (see docs/web.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from dagster_project.cli.common import HomeOption, console, home_from


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
                  port: int = typer.Option(8000, "--port", envvar="LINERNOTES_WEB_PORT", help="Port to listen on."),
                  secure_cookies: bool = typer.Option(False, "--secure-cookies",
                                                      help="Send the session cookie over HTTPS only (behind TLS)."),
                  sso_header: Optional[str] = typer.Option(None, "--sso-header",
                                                           help="Trust this header (e.g. X-Forwarded-User) from "
                                                                "--trusted-proxy as the logged-in user."),
                  trusted_proxy: list[str] = typer.Option(["127.0.0.1", "::1"], "--trusted-proxy",
                                                          help="Addresses whose SSO header is believed."),
                  session_hours: float = typer.Option(8.0, "--session-hours", help="Sessions end after this long."),
                  home: Optional[str] = HomeOption) -> None:
        """Serve the web app over this data directory's ledger (the same domain commands as the CLI)."""
        import uvicorn

        from store.roles import ROLES_ENV, ROLES_FILE
        from web.app import create_app, session_secret
        from web.auth import WebSettings

        data_home = home_from(home)
        roles_path = os.environ.get(ROLES_ENV) or str(data_home.root / ROLES_FILE)
        settings = WebSettings(roles_path=Path(roles_path),
                               secret_key=os.environ.get("LINERNOTES_WEB_SECRET") or session_secret(data_home),
                               session_max_age_s=int(session_hours * 3600), secure_cookies=secure_cookies,
                               sso_header=sso_header, trusted_proxies=frozenset(trusted_proxy))
        console.print(f"linernotes web app on http://{host}:{port} (data directory {data_home.root}; "
                      f"roles {roles_path})")
        uvicorn.run(create_app(data_home, settings), host=host, port=port, log_level="info",
                    proxy_headers=False)
