"""``linernotes prove``: proofs of absence and presence an auditor re-checks from a shard manifest alone."""

from __future__ import annotations

from pathlib import Path

import typer

from dagster_project.cli.common import HomeOption, JsonOption, console, fail, home_from, print_json

RunOption = typer.Option(None, "--run", help="Training run: the manifest it recorded (hash checked).")
ManifestOption = typer.Option(None, "--manifest", help="Shard manifest URI or directory (local or s3://).")
OutOption = typer.Option(None, "--out", help="Also write the proof to this JSON file.")


def register(app: typer.Typer) -> None:
    prove_app = typer.Typer(no_args_is_help=True, help="Prove a recording absent from, or a sample present in, "
                                                       "a model's training data.")
    app.add_typer(prove_app, name="prove")

    def _make(home: str | None, out: Path | None, as_json: bool, **what: str | None) -> None:
        from lineage.proofs import ProofError, check_proof, prove
        from store.database import connect
        from store.objects import ObjectStore

        if not what.get("run_id") and not what.get("manifest_uri"):
            fail("name a training run (--run) or a manifest (--manifest)", code=2)
        store = ObjectStore()
        try:
            with connect(home_from(home).db_path, read_only=True) as con:
                proof = prove(con, store=store, **what)
        except (ProofError, ValueError) as exc:
            fail(str(exc))
            return
        text = proof.model_dump_json(indent=2)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
        check = check_proof(proof, store.get(proof.manifest_uri))
        if as_json:
            print_json(proof.model_dump(mode="json"))
        else:
            subject = getattr(proof, "isrc", None) or getattr(proof, "sample_id", "")
            verb = "absent from" if proof.kind.startswith("linernotes.proof.absence") else "present in"
            console.print(f"[bold]{subject}[/bold] is {verb} release {proof.release_id}'s shards "
                          f"(manifest {proof.manifest_uri}, sha256 {proof.manifest_sha256[:16]}…, dataset root "
                          f"{proof.dataset_root[:16]}…); re-checked: {'ok' if check.ok else check.problems}")
            if getattr(proof, "note", ""):
                console.print(proof.note)  # type: ignore[union-attr]
            if out is not None:
                console.print(f"proof written to {out}; re-check with `linernotes prove check {out}`")
        if not check.ok:
            fail("; ".join(check.problems))

    @prove_app.command("absent")
    def absent(isrc: str = typer.Option(..., "--isrc", help="The recording that must not be in the data."),
               run: str | None = RunOption, manifest: str | None = ManifestOption, out: Path | None = OutOption,
               home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Prove that no sample of a recording is in a run's (or a manifest's) training data."""
        _make(home, out, as_json, isrc=isrc, run_id=run, manifest_uri=manifest)

    @prove_app.command("present")
    def present(sample: str = typer.Option(..., "--sample", help="Sample ID, <track_id>:<crop>."),
                run: str | None = RunOption, manifest: str | None = ManifestOption, out: Path | None = OutOption,
                home: str | None = HomeOption, as_json: bool = JsonOption) -> None:
        """Prove that a sample is in a run's (or a manifest's) training data with Merkle inclusion paths."""
        _make(home, out, as_json, sample_id=sample, run_id=run, manifest_uri=manifest)

    @prove_app.command("check")
    def check(proof_file: Path = typer.Argument(..., exists=True, dir_okay=False),
              manifest: str | None = typer.Option(None, "--manifest",
                                                  help="Manifest to check against (default: the one the proof "
                                                       "names)."),
              as_json: bool = JsonOption) -> None:
        """Re-check a proof file against a shard manifest; exit 1 naming what does not hold."""
        from lineage.proofs import check_proof, load_proof
        from shards.verify import manifest_location
        from store.objects import ObjectStore

        try:
            proof = load_proof(proof_file.read_bytes())
            manifest_bytes = ObjectStore().get(manifest_location(manifest or proof.manifest_uri))
        except (ValueError, OSError) as exc:
            fail(str(exc))
            return
        result = check_proof(proof, manifest_bytes)
        if as_json:
            print_json(result.model_dump(mode="json"))
        elif result.ok:
            console.print(f"[green]proof holds[/green] ({result.kind})")
        if not result.ok:
            fail("proof does not hold: " + "; ".join(result.problems))
