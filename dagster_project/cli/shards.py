"""``linernotes shards build|verify|list|schema``: training shards of an approved release."""

from __future__ import annotations

import re

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

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def register(app: typer.Typer) -> None:
    shards = typer.Typer(no_args_is_help=True, help="Attribution-tagged Parquet training shards.")
    app.add_typer(shards, name="shards")

    @shards.command("build")
    def build(
        release_id: str = typer.Argument(..., help="An approved release."),
        output: str = typer.Option(None, "--output", "-o",
                                   help="Directory or s3:// prefix (default: <home>/objects/shards/<release>)."),
        seed: int = typer.Option(0, help="Seed for crop offsets."),
        crops_per_track: int = typer.Option(8, help="Crops cut from each track (fewer for short tracks)."),
        rows_per_shard: int = typer.Option(None, help="Samples per Parquet file (crops 512, longform 16)."),
        layout: str = typer.Option("crops", "--layout", help="crops (4 s PCM crops) or longform (whole recordings "
                                                             "with their text)."),
        codec: str = typer.Option("flac", help="longform: flac (lossless) or opus."),
        sample_rate: int = typer.Option(None, "--sample-rate", help="longform: declared rate (default: the source's)."),
        channels: int = typer.Option(None, help="longform: 1 or 2 (default: the source's)."),
        texts: str = typer.Option(None, "--texts", help="longform: JSON Lines of captions / QA keyed by ISRC."),
        ack_reason: str = typer.Option(None, "--acknowledge",
                                       help="Build despite a revoked release or recordings denied since approval; "
                                            "this reason is recorded with your name."),
        home: str = HomeOption, actor: str = ActorOption, as_json: bool = JsonOption,
    ) -> None:
        """Cut samples from the release's audio into Parquet shards, then write the manifest."""
        from licensing.gate import ReleaseRefused
        from schemas.shards import Acknowledgement, ShardConfig
        from shards.writer import build_shards
        from store.database import connect

        who = actor_from(actor, home_from(home))
        h = home_from(home)
        if not output and not _SAFE_ID.match(release_id):
            fail(f"release id {release_id!r} cannot name a directory under {h.objects / 'shards'}; "
                 "pass --output", code=2)
        target = output or str(h.objects / "shards" / release_id)
        ack = Acknowledgement(actor=who, reason=ack_reason) if ack_reason else None
        if layout not in ("crops", "longform"):
            fail(f"--layout must be crops or longform, not {layout!r}", code=2)
        try:
            if layout == "longform":
                from pydantic import ValidationError

                from schemas.shards import LongformConfig
                from shards.longform import build_longform

                try:
                    longform = LongformConfig(codec=codec, sample_rate=sample_rate, channels=channels,
                                              rows_per_shard=rows_per_shard or 16)
                except ValidationError as exc:
                    fail(f"invalid long-form settings: {exc.errors()[0]['msg']}", code=2)
                    return
                with connect(h.db_path) as con, refusals():
                    manifest = build_longform(con, release_id, output_uri=target, config=longform, actor=who,
                                              acknowledge=ack, texts_path=texts)
            else:
                config = ShardConfig(seed=seed, crops_per_track=crops_per_track, rows_per_shard=rows_per_shard or 512)
                with connect(h.db_path) as con, refusals():
                    manifest = build_shards(con, release_id, output_uri=target, config=config, actor=who,
                                            acknowledge=ack)
        except ReleaseRefused as exc:
            fail(str(exc))
            return
        if as_json:
            print_json(manifest.model_dump(mode="json"))
            return
        console.print(f"[green]built[/green] {len(manifest.shards)} {layout} shards, {manifest.total_rows} samples from "
                      f"{manifest.track_count} tracks -> {target}/manifest.json")
        if manifest.excluded:
            counts: dict[str, int] = {}
            for e in manifest.excluded:
                counts[e.reason_code] = counts.get(e.reason_code, 0) + 1
            console.print("[yellow]excluded tracks:[/yellow] " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        console.print(f"query: SELECT isrc, count(*) FROM '{target}/*.parquet' GROUP BY isrc")

    @shards.command("purge")
    def purge(
        release_id: str = typer.Option(..., "--release", help="The release whose revoked recordings to purge."),
        proof_out: str = typer.Option(None, "--proof-out", help="Also write the exclusion proofs (JSON) here."),
        home: str = HomeOption, actor: str = ActorOption, as_json: bool = JsonOption,
    ) -> None:
        """Rewrite the release's shards without its revoked recordings, erase the old files, record the
        new Merkle root and an exclusion proof; loaders of the old build are refused from then on."""
        import json as json_

        from shards.purge import purge_release
        from store.database import connect

        h = home_from(home)
        who = actor_from(actor, h)
        try:
            with connect(h.db_path) as con, refusals():
                results = purge_release(con, release_id, actor=who)
        except KeyError as exc:
            fail(str(exc.args[0]))
            return
        proofs = [r.proof.model_dump(mode="json") for r in results if r.proof is not None]
        if proof_out:
            from pathlib import Path

            Path(proof_out).write_text(json_.dumps(proofs, indent=2), encoding="utf-8")
        if as_json:
            print_json([r.model_dump(mode="json", exclude={"proof"}) for r in results])
            return
        if not results:
            console.print(f"no shard builds of {release_id} are recorded")
        for r in results:
            if r.status == "purged":
                console.print(f"[green]purged[/green] {r.manifest_uri}: {len(r.track_ids)} recordings, "
                              f"{r.samples_removed} samples, {len(r.deleted)} files erased; root "
                              f"{(r.old_merkle_root or '')[:16]} -> {(r.new_merkle_root or '')[:16]}; proof {r.proof_uri}")
            else:
                colour = "green" if r.status == "clean" else "yellow"
                console.print(f"[{colour}]{r.status}[/{colour}] {r.manifest_uri}")

    @shards.command("export")
    def export(
        manifest_uri: str = typer.Argument(..., help="A long-form manifest.json URI or the directory holding it."),
        fmt: str = typer.Option(..., "--format", help="af-json, webdataset, hf-datasets or lhotse-shar."),
        output: str = typer.Option(..., "--output", "-o", help="An empty directory to write the export to."),
        home: str = HomeOption, actor: str = ActorOption, as_json: bool = JsonOption,
    ) -> None:
        """Hand long-form shards to another trainer: the format's files, the rights columns on every record,
        and export_manifest.json naming the source build."""
        from licensing.gate import ReleaseRefused
        from shards.exports import EXPORT_FORMATS, export_longform
        from shards.loader import ShardIntegrityError

        if fmt not in EXPORT_FORMATS:
            fail(f"--format must be one of {', '.join(EXPORT_FORMATS)}", code=2)
        h = home_from(home)
        who = actor_from(actor, h)
        try:
            with refusals():
                result = export_longform(manifest_uri, output, format=fmt, actor=who,  # type: ignore[arg-type]
                                         ledger_path=h.db_path)
        except (ReleaseRefused, ShardIntegrityError, FileExistsError, ValueError) as exc:
            fail(str(exc))
            return
        if as_json:
            print_json(result.model_dump(mode="json"))
            return
        console.print(f"[green]exported[/green] {result.records} recordings as {fmt} -> {output} "
                      f"(source root {result.source_merkle_root[:16]})")

    @shards.command("verify")
    def verify(manifest_uri: str = typer.Argument(..., help="manifest.json URI or the directory holding it."),
               as_json: bool = JsonOption) -> None:
        """Re-hash every shard and name any missing, extra or altered one; exit 1 if anything is wrong."""
        from shards.verify import verify_manifest

        report = verify_manifest(manifest_uri)
        if as_json:
            print_json(report.model_dump(mode="json"))
        else:
            from rich.table import Table

            table = Table(title=f"{report.manifest_uri} (release {report.release_id})")
            for column in ("shard", "status", "bytes", "problems"):
                table.add_column(column)
            for check in report.shards:
                colour = "green" if check.status == "ok" else "red"
                table.add_row(check.name, f"[{colour}]{check.status}[/{colour}]", str(check.actual_bytes or "-"),
                              "; ".join(check.problems))
            for name in report.extra:
                table.add_row(name, "[red]extra[/red]", "-", "not listed in the manifest")
            console.print(table)
            for problem in report.problems:
                console.print(f"[red]{problem}[/red]")
            console.print("[green]ok[/green]" if report.ok else "[red]FAILED[/red]")
        if not report.ok:
            raise typer.Exit(1)

    @shards.command("list")
    def list_builds(release_id: str = typer.Option(None, "--release", help="Only this release."),
                    home: str = HomeOption, as_json: bool = JsonOption) -> None:
        """Shard builds recorded in the ledger, newest first."""
        from store.database import connect

        h = home_from(home)
        sql = ("SELECT build_id, release_id, manifest_uri, shard_count, row_count, track_count, excluded_count, "
               "acknowledged, built_by, built_at FROM shard_builds")
        params: list[str] = []
        if release_id:
            sql += " WHERE release_id = ?"
            params.append(release_id)
        with connect(h.db_path) as con:
            cursor = con.execute(sql + " ORDER BY built_at DESC", params)
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, r)) for r in cursor.fetchall()]
        if as_json:
            print_json(rows)
            return
        from rich.table import Table

        table = Table()
        for name in ("release_id", "shard_count", "row_count", "track_count", "excluded_count", "acknowledged",
                     "built_by", "built_at", "manifest_uri"):
            table.add_column(name)
        for row in rows:
            table.add_row(*(str(row[k]) for k in ("release_id", "shard_count", "row_count", "track_count",
                                                  "excluded_count", "acknowledged", "built_by", "built_at",
                                                  "manifest_uri")))
        console.print(table)

    @shards.command("schema")
    def schema() -> None:
        """Print the manifest's JSON Schema."""
        from schemas.shards import manifest_json_schema

        print_json(manifest_json_schema())
