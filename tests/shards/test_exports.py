import hashlib
import json

import numpy as np
import pytest

from licensing.lyrics import record_lyrics_licences
from schemas.shards import LongformConfig
from shards.exports import RIGHTS_COLUMNS, ExportManifest, export_longform
from shards.longform import _decode, build_longform
from store.database import connect
from store.roles import RoleRefused
from tests.shards.ledger import isrc_for, make_release
from tests.shards.test_longform import _licence


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from tests.roles import write_test_roles

    tmp = tmp_path_factory.mktemp("exp")
    write_test_roles(tmp)
    release = make_release(tmp, seconds=[2.5, 1.5], db_name="linernotes.duckdb")
    texts = tmp / "texts.jsonl"
    texts.write_text(json.dumps({"isrc": isrc_for(1), "kind": "qa", "question": "How fast is it?",
                                 "text": "Slow.", "author": "Ann", "license": "CC-BY-4.0"}) + "\n")
    with connect(release.db_path) as con:
        record_lyrics_licences(con, [_licence(0)], actor="rita.rights", source="t")
        manifest = build_longform(con, release.release_id, output_uri=str(tmp / "lf"), actor="ml@x",
                                  texts_path=texts, config=LongformConfig(sample_rate=16000, channels=1))
    return release, str(tmp / "lf"), manifest, tmp


def _export(built, fmt, out, actor="ml@x"):
    release, lf, _, _ = built
    return export_longform(lf, out, format=fmt, actor=actor, ledger_path=release.db_path)


def _source_pcm(built, track_index: int) -> np.ndarray:
    release = built[0]
    pcm, _, _ = _decode(str(release.audio[release.track_ids[track_index]]), 16000, 1)
    return pcm


def _check_manifest(out, export: ExportManifest, manifest) -> None:
    on_disk = json.loads((out / "export_manifest.json").read_text())
    assert on_disk["source_merkle_root"] == manifest.merkle_root and on_disk["records"] == 2
    for name, sha in export.files.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha


def test_audio_flamingo_conversation_json(built, tmp_path) -> None:
    release, _, manifest, _ = built
    export = _export(built, "af-json", tmp_path / "af")
    entries = json.loads((tmp_path / "af" / "af_conversations.json").read_text())
    first, second = entries
    assert first["sound"] == [f"audio/{release.track_ids[0]}.flac"] and first["rights"]["isrc"] == isrc_for(0)
    assert set(first["rights"]) == set(RIGHTS_COLUMNS)
    assert first["conversations"][0] == {"from": "human", "value": "<sound-0>\nDescribe this music."}
    assert first["conversations"][3]["value"].startswith("Hello tone")  # the licensed lyrics
    assert second["conversations"][2:] == [{"from": "human", "value": "How fast is it?"},
                                           {"from": "gpt", "value": "Slow."}]
    assert [p["kind"] for p in second["text_provenance"]] == ["caption", "qa"]
    stored, _, _ = _decode(str(tmp_path / "af" / first["sound"][0]), None, None)
    assert np.array_equal(stored, _source_pcm(built, 0))
    _check_manifest(tmp_path / "af", export, manifest)
    with connect(release.db_path) as con:
        payload = json.loads(con.execute("SELECT payload FROM audit_log WHERE action = 'shards.export' "
                                         "ORDER BY seq DESC LIMIT 1").fetchone()[0])
    assert payload["format"] == "af-json" and payload["records"] == 2


def test_webdataset_tar_read_back_with_webdataset(built, tmp_path) -> None:
    import webdataset as wds

    release, _, manifest, _ = built
    export = _export(built, "webdataset", tmp_path / "wds")
    samples = list(wds.WebDataset(str(tmp_path / "wds" / "shard-00000.tar"), shardshuffle=False))
    assert [s["__key__"] for s in samples] == release.track_ids
    meta = json.loads(samples[0]["json"])
    assert meta["rights_holders"][0]["share"] == 25.0 and meta["lyrics_status"] == "included"
    assert hashlib.sha256(samples[0]["flac"]).hexdigest() == meta["audio_sha256"]
    _check_manifest(tmp_path / "wds", export, manifest)


def test_hugging_face_datasets_with_an_audio_feature(built, tmp_path) -> None:
    import datasets

    release, _, manifest, _ = built
    export = _export(built, "hf-datasets", tmp_path / "hf")
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.num_rows == 2
    raw = ds.cast_column("audio", datasets.Audio(decode=False))
    assert raw[0]["isrc"] == isrc_for(0) and raw[0]["decision_id"] == release.decision_ids[release.track_ids[0]]
    assert hashlib.sha256(raw[0]["audio"]["bytes"]).hexdigest() == raw[0]["audio_sha256"]
    assert raw[1]["texts"][1]["question"] == "How fast is it?" and raw[1]["lyrics"] is None
    _check_manifest(tmp_path / "hf", export, manifest)


def test_lhotse_shar_read_back_with_lhotse(built, tmp_path) -> None:
    from lhotse import CutSet

    release, _, manifest, _ = built
    export = _export(built, "lhotse-shar", tmp_path / "shar")
    cuts = list(CutSet.from_shar(in_dir=str(tmp_path / "shar" / "shar")))
    assert [c.custom["rights"]["track_id"] for c in cuts] == release.track_ids
    audio = cuts[1].load_audio()
    assert cuts[1].sampling_rate == 16000 and audio.shape == (1, len(_source_pcm(built, 1)))
    assert np.allclose(audio[0], _source_pcm(built, 1) / 32768.0, atol=1 / 32768)
    assert cuts[0].custom["lyrics_status"] == "included" and cuts[0].custom["texts"][0]["kind"] == "caption"
    _check_manifest(tmp_path / "shar", export, manifest)


def test_an_export_needs_the_role_and_an_empty_directory(built, tmp_path) -> None:
    with pytest.raises(RoleRefused):
        _export(built, "af-json", tmp_path / "no", actor="aude.audit")
    assert not (tmp_path / "no").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        _export(built, "webdataset", tmp_path / "full")


def test_export_through_the_cli(built, tmp_path) -> None:
    from typer.testing import CliRunner

    from dagster_project.cli import app

    _, lf, _, home = built
    result = CliRunner().invoke(app, ["shards", "export", lf, "--format", "webdataset", "--output",
                                      str(tmp_path / "w"), "--home", str(home), "--actor", "ml@x", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["records"] == 2 and (tmp_path / "w" / "shard-00000.tar").is_file()
    bad = CliRunner().invoke(app, ["shards", "export", lf, "--format", "zip", "--output", str(tmp_path / "z"),
                                   "--home", str(home), "--actor", "ml@x"])
    assert bad.exit_code == 2
