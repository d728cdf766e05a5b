"""``linernotes audit``: verify that the records, and the files they vouch for, were not altered."""

from __future__ import annotations

from pathlib import Path

import typer

from dagster_project.cli.common import HomeOption, JsonOption, console, fail, home_from, print_json


def register(app: typer.Typer) -> None:
    audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
    app.add_typer(audit_app, name="audit")

    @audit_app.command("verify")
    def verify(home: str | None = HomeOption, as_json: bool = JsonOption,
               audio: bool = typer.Option(False, "--audio", help="Also re-hash every catalog audio file."),
               against: Path | None = typer.Option(None, "--against", exists=True, dir_okay=False,
                                                   help="A checkpoint (`audit checkpoint`) kept elsewhere: prove the "
                                                        "log was only appended to since.")) -> None:
        """Re-walk the audit chain and its signed heads, re-hash every sealed row, manifest, shard and checkpoint;
        name the first mismatch."""
        from lineage.integrity import verify_ledger
        from store.audit import Checkpoint
        from store.database import connect

        checkpoint = None
        if against is not None:
            try:
                checkpoint = Checkpoint.model_validate_json(against.read_text(encoding="utf-8"))
            except ValueError as exc:
                fail(f"{against} is not an audit checkpoint: {exc}", code=2)
        with connect(home_from(home).db_path, read_only=True) as con:
            report = verify_ledger(con, audio=audio, against=checkpoint)
        if as_json:
            print_json({**report.model_dump(mode="json"),
                        "first": report.first.model_dump(mode="json") if report.first else None})
        elif report.ok:
            counts = ", ".join(f"{n} {k}" for k, n in report.checked.items() if n)
            since = f"; only appended to since checkpoint #{checkpoint.seq}" if checkpoint else ""
            console.print(f"[green]intact[/green]: {report.audit_entries} audit entries chained and signed{since}; "
                          f"re-hashed {counts}")
        first = report.first
        if first is not None:
            others = [f"  also: {f.describe()}" for f in report.findings[1:]]
            fail("\n".join([f"first mismatch: {first.describe()}", *others]))

    @audit_app.command("checkpoint")
    def checkpoint_cmd(home: str | None = HomeOption,
                       out: Path | None = typer.Option(None, "--out", help="Write it to this file too.")) -> None:
        """Print the signed head of the audit log: keep it outside the data directory, then later
        `audit verify --against FILE` proves the log was only appended to since."""
        from store.audit import checkpoint
        from store.database import connect

        with connect(home_from(home).db_path, read_only=True) as con:
            head = checkpoint(con)
        if head is None:
            fail("nothing has been written through the write path yet: there is no signed head")
            return
        text = head.model_dump_json(indent=2)
        if out is not None:
            out.write_text(text + "\n", encoding="utf-8")
        typer.echo(text)

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
