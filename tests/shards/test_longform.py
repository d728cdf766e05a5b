import io
import json
from datetime import date

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from licensing.lyrics import decide_lyrics, record_lyrics_licences, revoke_lyrics_licence
from schemas.shards import LongformConfig
from schemas.text import LyricsLicence
from shards.loader import ShardDataset
from shards.longform import _decode, build_longform
from shards.purge import purge_release, verify_purge_proof
from shards.verify import latest_build, verify_manifest
from store.database import connect
from store.roles import RoleRefused
from store.sealing import verify_sealed
from tests.shards.ledger import ARTIST, LABEL, PURPOSE, deny_since, isrc_for, make_release

LYRICS = "Hello tone, my old friend\nI've come to hum with you again"


def _licence(i: int, **kw) -> LyricsLicence:
    base = {"licence_id": f"LYR-{i}", "isrc": isrc_for(i), "publisher_party_id": "P-pub", "publisher_name": "Pub Co",
            "license": "lyrics-contract:PC-7", "purposes": [PURPOSE], "territories": ["GB"],
            "lyrics": f"{LYRICS} ({i})", "evidence_ref": "test://lyrics"}
    return LyricsLicence.model_validate({**base, **kw})


@pytest.fixture()
def release(tmp_path):
    return make_release(tmp_path, seconds=[6.0, 4.0, 3.0], album="Fixture Album",
                        tags={0: {"GENRE": "Ambient", "BPM": "96", "INITIALKEY": "A minor"}})


@pytest.fixture()
def texts(tmp_path):
    path = tmp_path / "texts.jsonl"
    path.write_text("\n".join([
        json.dumps({"isrc": isrc_for(0), "kind": "qa", "question": "What instrument leads?", "text": "A sine tone.",
                    "author": "Ann Notator", "license": "CC-BY-4.0"}),
        json.dumps({"isrc": isrc_for(2), "kind": "user_caption", "text": "A short calm drone.",
                    "author": "Ann Notator", "license": "CC-BY-4.0"}),
        json.dumps({"isrc": "not-an-isrc", "kind": "qa", "text": "x", "author": "a", "license": "b"}),
    ]) + "\n", encoding="utf-8")
    return path


def _rows(out, manifest):
    rows = []
    for entry in manifest.shards:
        rows += pq.read_table(out / entry.name).to_pylist()
    return {r["track_id"]: r for r in rows}


def test_whole_recordings_with_their_text_and_lyrics_gated_by_their_own_licence(release, texts, tmp_path) -> None:
    with connect(release.db_path) as con:
        with pytest.raises(RoleRefused):
            record_lyrics_licences(con, [_licence(0)], actor="ml@x", source="test://lyrics.json")
        record_lyrics_licences(con, [_licence(0), _licence(1, purposes=["UseForGenerativeAITraining"])],
                               actor="rita.rights", source="test://lyrics.json")
        manifest = build_longform(con, release.release_id, output_uri=str(tmp_path / "out"), actor="ml@x",
                                  texts_path=texts, config=LongformConfig(rows_per_shard=2))
    assert manifest.layout == "longform" and manifest.total_rows == 3 and [s.rows for s in manifest.shards] == [2, 1]
    rows = _rows(tmp_path / "out", manifest)
    first, second, third = (rows[t] for t in release.track_ids)

    # The audio is the whole recording, losslessly: decoding the stored FLAC gives the decoded source exactly.
    for track_id, row in rows.items():
        stored, rate, channels = _decode(io.BytesIO(row["audio"]), None, None)  # type: ignore[arg-type]
        source, src_rate, src_channels = _decode(str(release.audio[track_id]), None, None)
        assert (rate, channels) == (src_rate, src_channels) == (row["sample_rate"], row["channels"]) == (44100, 2)
        assert np.array_equal(stored, source) and row["num_frames"] == len(source) // 2
    assert first["duration_s"] == pytest.approx(6.0, abs=0.01) and first["codec"] == "flac"

    # Every attribution column of the crop shards is there.
    assert first["rights_holders"] == [{"party_id": ARTIST, "name": "Ada Fixture", "share": 25.0},
                                       {"party_id": LABEL, "name": "Fixture Records", "share": 75.0}]
    assert first["decision_id"] == release.decision_ids[release.track_ids[0]] and first["license"] == "contract:FX-1"

    assert first["caption"] == ('"Tone 0" by Ada Fixture; from the album Fixture Album; genre Ambient; tempo 96 BPM; '
                                "key A minor; duration 0:06.")
    # Lyrics only where the publisher's licence covers this release's purpose and territory.
    assert first["lyrics"] == f"{LYRICS} (0)" and first["lyrics_status"] == "included"
    assert first["lyrics_licence_id"] == "LYR-0"
    assert (second["lyrics"], second["lyrics_status"]) == (None, "purpose_not_licensed")
    assert (third["lyrics"], third["lyrics_status"]) == (None, "not_in_rights_data")
    assert [t["kind"] for t in first["texts"]] == ["caption", "lyrics", "qa"]
    lyrics_text, qa = first["texts"][1], first["texts"][2]
    assert (lyrics_text["author"], lyrics_text["license"], lyrics_text["source"]) == (
        "Pub Co", "lyrics-contract:PC-7", "lyrics licence LYR-0")
    assert (qa["question"], qa["author"], qa["license"]) == ("What instrument leads?", "Ann Notator", "CC-BY-4.0")
    assert not any(t["kind"] == "lyrics" for t in second["texts"])
    assert [t["kind"] for t in third["texts"]] == ["caption", "user_caption"]

    assert verify_manifest(str(tmp_path / "out")).ok
    with connect(release.db_path) as con:
        bad = con.execute("SELECT stage, reason_code, source_ref FROM quarantine").fetchall()
        assert bad == [("shards.longform.texts", "user_text_invalid", f"{texts}#3")]
        payload = json.loads(con.execute("SELECT payload FROM audit_log WHERE action = 'shards.build'").fetchone()[0])
        assert payload["layout"] == "longform" and payload["user_text_rejected"] == 1
        assert payload["lyrics"] == {"included": 1, "purpose_not_licensed": 1, "not_in_rights_data": 1}
        assert verify_sealed(con)[0] == []
    # The crop loader does not mistake compressed files for PCM.
    with pytest.raises(ValueError, match="long-form"):
        ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path)


def test_lyrics_decisions_deny_by_default_with_their_own_reasons(release) -> None:
    with connect(release.db_path) as con:
        record_lyrics_licences(con, [_licence(0), _licence(1, territories=["US"]),
                                     _licence(2, valid_to="2024-12-31")], actor="rita.rights", source="t")
        on = date(2025, 1, 10)
        got = {i: d.status for i, d in decide_lyrics(con, [isrc_for(i) for i in range(4)], purpose=PURPOSE,
                                                       territory="GB", on_date=on).items()}
        assert got == {isrc_for(0): "included", isrc_for(1): "territory_not_licensed",
                       isrc_for(2): "licence_not_in_force", isrc_for(3): "not_in_rights_data"}
        revoke_lyrics_licence(con, "LYR-0", actor="rita.rights", reason="publisher withdrew")
        after = decide_lyrics(con, [isrc_for(0)], purpose=PURPOSE, territory="GB", on_date=on)[isrc_for(0)]
        assert after.status == "licence_revoked" and after.lyrics is None


def test_declared_target_format_opus_and_length_limit(release, tmp_path) -> None:
    with connect(release.db_path) as con:
        mono = build_longform(con, release.release_id, output_uri=str(tmp_path / "mono"), actor="ml@x",
                              config=LongformConfig(sample_rate=16000, channels=1, max_seconds=5.0))
        opus = build_longform(con, release.release_id, output_uri=str(tmp_path / "opus"), actor="ml@x",
                              config=LongformConfig(codec="opus", opus_bitrate=64000))
        again = build_longform(con, release.release_id, output_uri=str(tmp_path / "mono2"), actor="ml@x",
                               config=LongformConfig(sample_rate=16000, channels=1, max_seconds=5.0))
    assert [(e.track_id, e.reason_code) for e in mono.excluded] == [(release.track_ids[0], "audio_too_long")]
    with connect(release.db_path) as con:
        # Training asks for crop builds: a long-form build never stands in for one.
        assert latest_build(con, release.release_id) is None
        assert latest_build(con, release.release_id, "longform").manifest_uri.startswith(str(tmp_path / "mono2"))
    rows = _rows(tmp_path / "mono", mono)
    row = rows[release.track_ids[1]]
    pcm, rate, channels = _decode(io.BytesIO(row["audio"]), None, None)  # type: ignore[arg-type]
    assert (rate, channels, row["sample_rate"], row["channels"]) == (16000, 1, 16000, 1)
    assert abs(len(pcm) - 4.0 * 16000) < 200
    assert [s.name for s in again.shards] == [s.name for s in mono.shards]  # reproducible bytes

    opus_rows = _rows(tmp_path / "opus", opus)
    container = av.open(io.BytesIO(opus_rows[release.track_ids[0]]["audio"]))
    assert container.streams.audio[0].codec_context.name == "opus"
    assert opus_rows[release.track_ids[0]]["sample_rate"] == 48000
    flac_size = len(_rows(tmp_path / "mono", mono)[release.track_ids[1]]["audio"])
    assert len(opus_rows[release.track_ids[1]]["audio"]) < flac_size


def test_purge_removes_a_whole_recording_and_its_text(release, texts, tmp_path) -> None:
    with connect(release.db_path) as con:
        record_lyrics_licences(con, [_licence(0)], actor="rita.rights", source="t")
        old = build_longform(con, release.release_id, output_uri=str(tmp_path / "out"), actor="ml@x", texts_path=texts)
    old_bytes = _rows(tmp_path / "out", old)[release.track_ids[0]]["audio"]
    deny_since(release.db_path, release.track_ids[0], isrc_for(0))
    with connect(release.db_path) as con:
        [result] = purge_release(con, release.release_id, actor="rita.rights")
    assert result.track_ids == (release.track_ids[0],) and verify_purge_proof(result.proof)
    for path in (tmp_path / "out").iterdir():
        data = path.read_bytes()
        assert old_bytes[-4000:-2000] not in data and b"Hello tone" not in data and b"What instrument" not in data
    assert verify_manifest(str(tmp_path / "out")).ok


def test_lyrics_import_and_longform_build_through_the_cli(tmp_path) -> None:
    from typer.testing import CliRunner

    from dagster_project.cli import app
    from tests.roles import write_test_roles

    home = tmp_path / "home"
    release = make_release(home, seconds=[3.0, 3.0], db_name="linernotes.duckdb")
    write_test_roles(home)
    lyrics = tmp_path / "lyrics.json"
    lyrics.write_text(json.dumps([_licence(1).model_dump(mode="json")]), encoding="utf-8")
    runner = CliRunner()
    refused = runner.invoke(app, ["rights", "import-lyrics", str(lyrics), "--home", str(home), "--actor", "ml@x"])
    assert refused.exit_code == 3, refused.output
    done = runner.invoke(app, ["rights", "import-lyrics", str(lyrics), "--home", str(home), "--actor", "rita"])
    assert done.exit_code == 0, done.output
    out = tmp_path / "lf"
    built = runner.invoke(app, ["shards", "build", release.release_id, "--layout", "longform", "--sample-rate",
                                "24000", "--channels", "1", "--output", str(out), "--home", str(home),
                                "--actor", "ml@x", "--json"])
    assert built.exit_code == 0, built.output
    manifest = json.loads(built.output)
    assert manifest["config"]["layout"] == "longform" and manifest["total_rows"] == 2
    rows = pq.read_table(out / manifest["shards"][0]["name"], columns=["isrc", "sample_rate", "lyrics_status"])
    assert rows.to_pylist() == [{"isrc": isrc_for(0), "sample_rate": 24000, "lyrics_status": "not_in_rights_data"},
                                {"isrc": isrc_for(1), "sample_rate": 24000, "lyrics_status": "included"}]
