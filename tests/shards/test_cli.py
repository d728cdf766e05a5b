import json

from typer.testing import CliRunner

from dagster_project.cli import app
from store.database import connect
from tests.roles import write_test_roles
from tests.shards.ledger import make_release


def _roles(home) -> None:
    """The test users; the account running the tests is an admin, acting as ``--actor``."""
    write_test_roles(home, extra={"x": ["ml_engineer"]})


def test_build_verify_list_through_the_cli(tmp_path) -> None:
    release = make_release(tmp_path / "home", seconds=[9.0, 2.0], db_name="linernotes.duckdb")
    _roles(tmp_path / "home")
    runner = CliRunner()
    home = str(tmp_path / "home")
    out = str(tmp_path / "shards")
    result = runner.invoke(app, ["shards", "build", release.release_id, "--output", out, "--home", home,
                                 "--actor", "ml@x", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["total_rows"] == 2 and manifest["excluded"][0]["reason_code"] == "audio_too_short"

    result = runner.invoke(app, ["shards", "verify", f"{out}/manifest.json"])
    assert result.exit_code == 0 and "ok" in result.output

    (tmp_path / "shards" / manifest["shards"][0]["name"]).write_bytes(b"tampered")
    result = runner.invoke(app, ["shards", "verify", out, "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["altered"] == [manifest["shards"][0]["name"]]

    result = runner.invoke(app, ["shards", "list", "--home", home, "--json"])
    assert result.exit_code == 0 and json.loads(result.output)[0]["row_count"] == 2
    with connect(tmp_path / "home" / "linernotes.duckdb") as con:
        entry = con.execute("SELECT actor, payload FROM audit_log WHERE action = 'shards.build'").fetchone()
    assert entry[0] == "ml@x" and json.loads(entry[1])["principal"]["method"] == "admin_as"


def test_build_of_unknown_release_fails_with_reason(tmp_path) -> None:
    _roles(tmp_path)
    result = CliRunner().invoke(app, ["shards", "build", "rel_nope", "--home", str(tmp_path), "--actor", "x"])
    assert result.exit_code == 1 and "release_unknown" in result.output
    refused = CliRunner().invoke(app, ["shards", "build", "rel_nope", "--home", str(tmp_path), "--actor", "rita"])
    assert refused.exit_code == 3 and "role_missing" in refused.output


def test_manifest_schema_is_exported_and_validates_a_manifest(tmp_path) -> None:
    import jsonschema

    release = make_release(tmp_path / "home", seconds=[9.0], db_name="linernotes.duckdb")
    _roles(tmp_path / "home")
    runner = CliRunner()
    schema = json.loads(runner.invoke(app, ["shards", "schema"]).output)
    built = runner.invoke(app, ["shards", "build", release.release_id, "--output", str(tmp_path / "o"),
                                "--home", str(tmp_path / "home"), "--actor", "ml@x", "--json"])
    jsonschema.validate(json.loads(built.output), schema)
    bad = json.loads(built.output) | {"shards": [{"index": 0}]}
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("schema accepted an incomplete shard entry")
