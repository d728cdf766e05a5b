"""Unicode in every text field (titles, names, comments, actors, paths) survives ingest -> decisions -> shards ->
trace unchanged, and through the command line's JSON output."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from catalog.ingest import ingest_delivery, party_id_for
from dagster_project.cli import app
from fingerprinting.ledger import fingerprint_delivery
from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.releases import approve_release, propose_release
from lineage.trace import trace_isrc, trace_release
from shards.loader import ShardDataset
from shards.writer import build_shards
from store.audit import verify_chain
from store.database import connect
from store.paths import ledger_path
from store.roles import RoleBook
from tests.audio_fixtures import music_like, write_audio
from tests.licensing.helpers import consent, deal
from tests.roles import write_test_roles

TITLE = "Ünïcødé Sông 曲 🎵 «ʻOkina» \u200d\u0301e"
ARTISTS = ["Zoë Ånders", "李雷", "Ørjan Ñúñez"]
ALBUM = "Ålbum ☃ — صوت"
LICENSOR = "Étiquette ☃ Records 株式会社"
ML = "mïra.ml@例え.jp"
RIGHTS = "rïta.rights 👩‍⚖️"
COMMENT = "Geprüft: alle Einwilligungen liegen vor ✓ — 已核对"
ISRC = "GBAYE2600042"
ON = date(2026, 3, 1)


def test_unicode_round_trips_from_delivery_to_trace(tmp_path: Path) -> None:
    home = tmp_path / "hôme ☃"
    delivery = home / "deliveries" / "délivery 曲"
    audio = write_audio(delivery / "audio" / "Ünï ☃ 曲.flac", music_like(10, seed=77),
                        tags={"TITLE": TITLE, "ARTIST": "; ".join(ARTISTS), "ALBUM": ALBUM, "ISRC": ISRC})
    db = home / "linernotes.duckdb"
    roles = RoleBook(users={ML: ("ml_engineer",), RIGHTS: ("rights_team",)})
    write_test_roles(home, extra={ML: ["ml_engineer"], RIGHTS: ["rights_team"]})
    with connect(db) as con:
        report = ingest_delivery(con, delivery, delivery_id="délivery-1", actor=RIGHTS)
        assert report.ingested == 1 and report.quarantined == 0
    assert fingerprint_delivery(lambda: connect(db), "délivery-1").stored == 1
    with connect(db) as con:
        party_ids = [party_id_for(a) for a in ARTISTS]
        rights = tmp_path / "dröits ☃.json"
        rights.write_text(json.dumps({
            "schema_version": 1,
            "parties": [{"party_id": "P-étiquette", "name": LICENSOR, "isni": None, "ipi": None}]
            + [{"party_id": p, "name": a, "isni": None, "ipi": None} for p, a in zip(party_ids, ARTISTS)],
            "deals": [deal("D-ñ-1", [ISRC], licensor="P-étiquette")],
            "consents": [consent(f"C-{i}-ü", p) for i, p in enumerate(party_ids)]}, ensure_ascii=False),
            encoding="utf-8")
        assert import_rights_file(con, rights, actor=RIGHTS).ok
        release = propose_release(con, purpose="UseForTrainingGenerativeAI", territory="DE", on_date=ON, actor=ML,
                                  policy=load_policy(), roles=roles)
        assert [t.isrc for t in release.tracks] == [ISRC]
        approve_release(con, release.release_id, actor=RIGHTS, comment=COMMENT, roles=roles, on_date=ON)
        out = home / "objects" / "shärds ☃"
        manifest = build_shards(con, release.release_id, output_uri=str(out), actor=ML)
        assert manifest.built_by == ML and manifest.approval.comment == COMMENT and manifest.approval.actor == RIGHTS

        shard = pq.read_table(out / manifest.shards[0].name, columns=["title", "artists", "rights_holders"])
        assert set(shard.column("title").to_pylist()) == {TITLE}
        assert shard.column("artists").to_pylist()[0] == ARTISTS
        assert shard.column("rights_holders").to_pylist()[0] == [{"party_id": "P-étiquette", "name": LICENSOR,
                                                                  "share": 100.0}]

        traced = trace_isrc(con, ISRC)
        track = traced["tracks"][0]
        assert (track["title"], track["artists"], track["album"]) == (TITLE, ARTISTS, ALBUM)
        assert ledger_path(con, track["source_path"]) == str(audio) and track["delivery_id"] == "délivery-1"
        assert traced["releases"][0]["approved_by"] == RIGHTS
        assert traced["decisions"][0]["allowed"] and traced["shards"][0]["manifest_uri"].endswith(
            "shärds ☃/manifest.json")
        rel = trace_release(con, release.release_id)
        assert rel["approvals"][0]["comment"] == COMMENT and rel["shard_builds"][0]["built_by"] == ML
        contributors = con.execute("SELECT name FROM contributors ORDER BY name").fetchall()
        assert sorted(n for (n,) in contributors) == sorted(ARTISTS)
        actors = {a for (a,) in con.execute("SELECT DISTINCT actor FROM audit_log").fetchall()}
        assert {ML, RIGHTS} <= actors and verify_chain(con).ok

    served = list(ShardDataset(str(out), ledger_path=db, shuffle=False))
    assert {s["isrc"] for s in served} == {ISRC} and len(served) == manifest.total_rows

    shown = CliRunner().invoke(app, ["trace", "isrc", ISRC, "--home", str(home), "--json"])
    assert shown.exit_code == 0, shown.output
    printed = json.loads(shown.output)
    assert printed["tracks"][0]["title"] == TITLE and printed["releases"][0]["approved_by"] == RIGHTS
