"""``linernotes fingerprint`` (fpcalc-compatible output) and ``linernotes match``."""

from __future__ import annotations

from pathlib import Path

import typer

from dagster_project.cli.common import HomeOption, JsonOption, console, err_console, fail, home_from, print_json

INDEX_DIRNAME = "fingerprint-index"


def register(app: typer.Typer) -> None:
    @app.command("fingerprint")
    def fingerprint(
        files: list[Path] = typer.Argument(..., help="Audio files (WAV, FLAC, MP3, Ogg Vorbis, Opus, AAC/M4A)."),
        raw: bool = typer.Option(False, "--raw", help="Print the raw 32-bit items, like `fpcalc -raw`."),
        length: float = typer.Option(120.0, "--length", help="Seconds of audio to use, like `fpcalc -length` (0: all)."),
        as_json: bool = JsonOption,
        progress: bool = typer.Option(False, "--progress", help="Show a progress bar."),
    ) -> None:
        """Fingerprint files with Chromaprint; output matches `fpcalc` for the same length."""
        from fingerprinting.batch import fingerprint_many

        failures = 0
        results = []
        for i, outcome in enumerate(fingerprint_many(files, max_seconds=length or None, progress=progress)):
            if outcome.fingerprint is None:
                failures += 1
                err_console.print(f"ERROR: {outcome.reason_code}: {outcome.message}", markup=False, highlight=False)
                results.append({"file": str(outcome.path), "error": outcome.reason_code, "message": outcome.message})
                continue
            fp = outcome.fingerprint
            value: object = [int(x) for x in fp.items] if raw else fp.encoded()
            if as_json:
                results.append({"file": str(outcome.path), "duration": round(fp.duration_s, 2), "fingerprint": value})
                continue
            if len(files) > 1:
                typer.echo(("\n" if i else "") + f"FILE={outcome.path}")
            typer.echo(f"DURATION={int(fp.duration_s)}")
            typer.echo("FINGERPRINT=" + (",".join(str(x) for x in value) if raw else str(value)))  # type: ignore[union-attr]
        if as_json:
            print_json(results if len(files) > 1 else results[0])
        if failures:
            raise typer.Exit(1)

    @app.command("match")
    def match(
        file: Path = typer.Argument(..., help="Audio to look up: a full track or an excerpt."),
        limit: int = typer.Option(5, "--limit", help="How many matches to show."),
        index_dir: Path | None = typer.Option(None, "--index", help="Index directory (default: <home>/fingerprint-index)."),
        home: str | None = HomeOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Print the catalog tracks and opt-outs whose audio best matches FILE."""
        from fingerprinting.chromaprint import ITEM_SECONDS, FingerprintError, fingerprint_file
        from fingerprinting.index import LANDMARK, FingerprintIndex
        from fingerprinting.landmarks import QUERY_FANOUT, query_landmarks
        from fingerprinting.ledger import (
            LANDMARK_THRESHOLD,
            MATCH_THRESHOLD,
            OPTOUT_PREFIX,
            TRACK_PREFIX,
            is_match,
            landmark_index_dir,
        )

        data = home_from(home)
        root = index_dir or data.root / INDEX_DIRNAME
        if not (root / "manifest.json").exists():
            fail(f"no fingerprint index at {root}: fingerprint the catalog and run matching first")
        try:
            fp = fingerprint_file(file, max_seconds=None, landmarks=True)
        except FingerprintError as exc:
            fail(f"{exc.reason_code}: {exc.message}")
            return
        matches = FingerprintIndex.open(root).query(fp.items, limit=limit)
        if fp.query_peaks is not None and (landmark_index_dir(root) / "manifest.json").exists():
            matches += FingerprintIndex.open(landmark_index_dir(root), method=LANDMARK).query(
                query_landmarks(fp.query_peaks), limit=limit, fanout=QUERY_FANOUT)
        titles = _titles(data.db_path)
        query_s = len(fp.items) * ITEM_SECONDS
        rows = [{"ref": m.ref, "title": titles.get(m.ref), "method": m.method, "score": round(m.score, 4),
                 "match": is_match(m, query_s), "offset_s": round(m.offset_s, 2), "span_s": round(m.span_s, 2),
                 "bit_error_rate": None if m.bit_error_rate is None else round(m.bit_error_rate, 4),
                 "speed": m.speed, "query_start_s": round(m.query_start_s, 2)}
                for m in matches]
        rows.sort(key=lambda r: not r["match"])  # what would be acted on first, Chromaprint before landmarks
        if as_json:
            print_json({"file": str(file), "threshold": MATCH_THRESHOLD, "landmark_threshold": LANDMARK_THRESHOLD,
                        "matches": rows})
            return
        from rich.table import Table

        table = Table(title=f"{file.name}: best matches (threshold {MATCH_THRESHOLD} chromaprint, "
                            f"{LANDMARK_THRESHOLD:g} landmark)")
        for col in ("kind", "id", "title", "method", "score", "offset s", "span s", "BER", "match"):
            table.add_column(col)
        for r in rows:
            ref = str(r["ref"])
            kind, _, ident = ref.partition(":") if ref.startswith((TRACK_PREFIX, OPTOUT_PREFIX)) else ("", "", ref)
            ber = r["bit_error_rate"]
            table.add_row(kind, ident, str(r["title"] or ""), str(r["method"]), f"{r['score']:.3f}",
                          f"{r['offset_s']:.1f}", f"{r['span_s']:.1f}", "" if ber is None else f"{ber:.3f}",
                          "yes" if r["match"] else "no")
        console.print(table if rows else "no matching audio in the index")


def _titles(db_path: Path) -> dict[str, str]:
    if not db_path.exists():
        return {}
    from store.database import connect

    try:
        with connect(db_path, read_only=True, timeout_s=5) as con:
            titles = {f"track:{t}": n for t, n in con.execute("SELECT track_id, title FROM tracks").fetchall() if n}
            titles.update({f"optout:{o}": n for o, n in
                           con.execute("SELECT optout_id, coalesce(title, claimant) FROM optout_registry").fetchall()})
            return titles
    except Exception:  # noqa: BLE001 - titles are a nicety; a locked or older ledger must not stop a lookup
        return {}
