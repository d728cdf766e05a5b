"""``linernotes audit``: verify that the records, and the files they vouch for, were not altered."""

from __future__ import annotations

import typer

from dagster_project.cli.common import HomeOption, JsonOption, console, fail, home_from, print_json


def register(app: typer.Typer) -> None:
    audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
    app.add_typer(audit_app, name="audit")

    @audit_app.command("verify")
    def verify(home: str | None = HomeOption, as_json: bool = JsonOption,
               audio: bool = typer.Option(False, "--audio", help="Also re-hash every catalog audio file.")) -> None:
        """Re-walk the audit chain and re-hash every manifest, shard and checkpoint; name the first mismatch."""
        from lineage.integrity import verify_ledger
        from store.database import connect

        with connect(home_from(home).db_path, read_only=True) as con:
            report = verify_ledger(con, audio=audio)
        if as_json:
            print_json({**report.model_dump(mode="json"),
                        "first": report.first.model_dump(mode="json") if report.first else None})
        elif report.ok:
            counts = ", ".join(f"{n} {k}" for k, n in report.checked.items() if n)
            console.print(f"[green]intact[/green]: {report.audit_entries} audit entries chained; re-hashed {counts}")
        first = report.first
        if first is not None:
            others = [f"  also: {f.describe()}" for f in report.findings[1:]]
            fail("\n".join([f"first mismatch: {first.describe()}", *others]))

    @audit_app.command("log")
    def log(subject: str | None = typer.Option(None, "--subject", help="Only entries about this subject."),
            action: str | None = typer.Option(None, "--action", help="Only this action (prefix match)."),
            limit: int = typer.Option(50, "--limit", min=1), home: str | None = HomeOption,
            as_json: bool = JsonOption) -> None:
        """The latest audit entries, newest last."""
        from rich.table import Table

        from store.database import connect

        with connect(home_from(home).db_path, read_only=True) as con:
            rows = con.execute(
                "SELECT * FROM (SELECT seq, recorded_at, actor, action, subject, payload_sha256, entry_hash "
                "FROM audit_log WHERE (? IS NULL OR subject = ?) AND (? IS NULL OR starts_with(action, ?)) "
                "ORDER BY seq DESC LIMIT ?) ORDER BY seq", [subject, subject, action, action, limit]).fetchall()
        keys = ["seq", "recorded_at", "actor", "action", "subject", "payload_sha256", "entry_hash"]
        if as_json:
            print_json([dict(zip(keys, r, strict=True)) for r in rows])
            return
        table = Table("seq", "recorded at", "actor", "action", "subject", "entry hash")
        for seq, at, actor, act, subj, _, entry in rows:
            table.add_row(str(seq), f"{at:%Y-%m-%d %H:%M:%S}", actor, act, subj, entry[:16] + "…")
        console.print(table)
