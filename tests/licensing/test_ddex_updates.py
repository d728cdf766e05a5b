"""DDEX message semantics through the real CLI on a real ledger: updates change deals as events, a loosening update
after a termination is a conflict, takedowns and purges withdraw the release's recordings with the message as
evidence, messages apply in MessageCreatedDateTime / MessageId order, and a re-delivery changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dagster_project.cli import app
from licensing.importers.ddex import read_ddex
from store.database import connect
from store.home import Home
from tests.licensing.conftest import DDEX
from tests.licensing.ddex_samples import purge, single
from tests.licensing.helpers import add_track
from tests.roles import write_test_roles

runner = CliRunner()
ISRC = "GBAYC1700598"
DEAL = "ddex:grid:A10302B0003989564F:1"
RELEASE = "grid:A10302B0003989564F"


def _run(home: Path, *args: str):  # type: ignore[no-untyped-def]
    who = [] if args[1] in ("explain", "history") else ["--actor", "rita"]
    return runner.invoke(app, [*args, "--home", str(home), *who], catch_exceptions=False)


def _q(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    with connect(Home.from_env(home).db_path) as con:
        return con.execute(sql, params or []).fetchall()


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    write_test_roles(home)
    return home


def _audit_count(home: Path) -> int:
    return _q(home, "SELECT count(*) FROM audit_log")[0][0]


def test_update_amends_the_deal_as_an_event(tmp_path: Path) -> None:
    home = _home(tmp_path)
    assert _run(home, "rights", "import-ddex", str(single(tmp_path / "w1.xml", message_id="W1"))).exit_code == 0
    assert _q(home, "SELECT valid_to FROM deals WHERE deal_id = ?", [DEAL]) == [(None,)]
    r = _run(home, "rights", "import-ddex", str(single(tmp_path / "w2.xml", message_id="W2", end_date="2018-06-30",
                                                        created="2018-01-01T10:00:00+00:00")))
    assert r.exit_code == 0, r.output
    assert str(_q(home, "SELECT valid_to FROM deals WHERE deal_id = ?", [DEAL])[0][0]) == "2018-06-30"
    kinds = [(k, t) for k, t in _q(home, "SELECT kind, tightened FROM rights_events WHERE subject_id = ? "
                                         "ORDER BY audit_seq", [DEAL])]
    assert kinds == [("deal.recorded", []), ("deal.amended", ["valid_to"])]
    # an update that drops the deal's AI uses for new ones: the deal is amended, uses tightened
    r = _run(home, "rights", "import-ddex", str(single(tmp_path / "w3.xml", message_id="W3", end_date="2018-06-30",
                                                        use_types=("OnDemandStream",),
                                                        created="2018-02-01T10:00:00+00:00")))
    assert r.exit_code == 0, r.output
    assert _q(home, "SELECT use_types FROM deals WHERE deal_id = ?", [DEAL]) == [(["OnDemandStream"],)]


def test_loosening_update_after_termination_is_a_conflict(tmp_path: Path) -> None:
    home = _home(tmp_path)
    assert _run(home, "rights", "import-ddex", str(single(tmp_path / "w1.xml", message_id="W1"))).exit_code == 0
    r = _run(home, "rights", "expire-deal", DEAL, "--valid-to", "2019-01-01", "--evidence-ref", "termination.pdf")
    assert r.exit_code == 0, r.output
    later = single(tmp_path / "w2.xml", message_id="W2", created="2020-01-01T00:00:00+00:00")
    r = _run(home, "rights", "import-ddex", str(later), "--json")
    assert r.exit_code == 1
    errors = json.loads(r.output)["errors"]
    assert [e["reason_code"] for e in errors] == ["rights_conflict"] and "valid_to" in errors[0]["message"]
    assert str(_q(home, "SELECT valid_to FROM deals WHERE deal_id = ?", [DEAL])[0][0]) == "2019-01-01"
    event = _q(home, "SELECT event_id FROM rights_events WHERE kind = 'deal.expired'")[0][0]
    r = _run(home, "rights", "import-ddex", str(later), "--supersede", event, "--evidence-ref", "renewal.pdf")
    assert r.exit_code == 0, r.output
    assert _q(home, "SELECT valid_to FROM deals WHERE deal_id = ?", [DEAL]) == [(None,)]


def test_redelivery_of_the_same_message_is_a_no_op(tmp_path: Path) -> None:
    home = _home(tmp_path)
    first = single(tmp_path / "w1.xml", message_id="W1")
    assert _run(home, "rights", "import-ddex", str(first)).exit_code == 0
    before = (_audit_count(home), _q(home, "SELECT count(*) FROM rights_events"))
    # the same message again, byte for byte and re-serialised (another file, same MessageId)
    again = tmp_path / "again.xml"
    again.write_bytes(first.read_bytes().replace(b"<MessageHeader>", b"<MessageHeader>\n"))
    for path in (first, again):
        r = _run(home, "rights", "import-ddex", str(path), "--json")
        assert r.exit_code == 0 and json.loads(r.output)["already_imported"] is True
    assert (_audit_count(home), _q(home, "SELECT count(*) FROM rights_events")) == before


def test_messages_apply_in_created_then_message_id_order(tmp_path: Path) -> None:
    home = _home(tmp_path)
    newer = single(tmp_path / "w2.xml", message_id="W2", end_date="2018-06-30", created="2018-01-01T10:00:00Z")
    older = single(tmp_path / "w1.xml", message_id="W1", created="2017-04-25T15:00:29+00:00")
    assert _run(home, "rights", "import-ddex", str(newer)).exit_code == 0
    r = _run(home, "rights", "import-ddex", str(older), "--json")
    assert r.exit_code == 1
    report = json.loads(r.output)
    assert report["rejected"] and report["errors"][0]["reason_code"] == "ddex_stale_message"
    assert "W2" in report["errors"][0]["message"]
    assert str(_q(home, "SELECT valid_to FROM deals WHERE deal_id = ?", [DEAL])[0][0]) == "2018-06-30"
    # same creation time: the MessageId decides
    same_a = single(tmp_path / "a.xml", message_id="W1Z", created="2018-01-01T10:00:00Z")
    assert _run(home, "rights", "import-ddex", str(same_a)).exit_code == 1
    same_c = single(tmp_path / "c.xml", message_id="W3", created="2018-01-01T10:00:00Z")
    assert _run(home, "rights", "import-ddex", str(same_c)).exit_code == 0
    assert _q(home, "SELECT valid_to FROM deals WHERE deal_id = ?", [DEAL]) == [(None,)]


def test_takedown_withdraws_the_recordings_and_a_later_deal_conflicts(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with connect(Home.from_env(home).db_path) as con:
        add_track(con, 1, ISRC, [("P-x", "MainArtist")])
    assert _run(home, "rights", "import-ddex", str(single(tmp_path / "w1.xml", message_id="W1"))).exit_code == 0
    down = single(tmp_path / "td.xml", message_id="TD-7", takedown=True, created="2019-03-01T00:00:00Z")
    r = _run(home, "rights", "import-ddex", str(down))
    assert r.exit_code == 0, r.output
    rows = _q(home, "SELECT delivery_id, reason, restored_at FROM track_withdrawals")
    assert len(rows) == 1 and rows[0][0] == f"ddex:{RELEASE}" and "TD-7" in rows[0][1] and rows[0][2] is None
    assert str(_q(home, "SELECT valid_to FROM deals WHERE deal_id = ?", [DEAL])[0][0]) == "2019-02-28"
    ev = _q(home, "SELECT evidence_ref FROM rights_events WHERE kind = 'release.withdrawn' AND subject_id = ?",
            [RELEASE])
    assert len(ev) == 1 and "TD-7" in ev[0][0]
    r = _run(home, "rights", "explain", ISRC, "--purpose", "UseForDataMining", "--territory", "DE", "--on",
             "2019-03-02", "--json")
    assert "track_withdrawn" in json.loads(r.output)[0]["reason_codes"]
    # a newer message re-offering the release is a conflict, not an overwrite
    again = single(tmp_path / "w9.xml", message_id="W9", created="2020-01-01T00:00:00Z")
    r = _run(home, "rights", "import-ddex", str(again), "--json")
    assert r.exit_code == 1
    assert {e["reason_code"] for e in json.loads(r.output)["errors"]} == {"rights_conflict"}
    assert str(_q(home, "SELECT valid_to FROM deals WHERE deal_id = ?", [DEAL])[0][0]) == "2019-02-28"
    assert _q(home, "SELECT count(*) FROM track_withdrawals WHERE restored_at IS NULL") == [(1,)]


def test_purge_withdraws_every_recording_of_the_release(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with connect(Home.from_env(home).db_path) as con:
        add_track(con, 1, ISRC, [("P-x", "MainArtist")])
    assert _run(home, "rights", "import-ddex", str(single(tmp_path / "w1.xml", message_id="W1"))).exit_code == 0
    msg = purge(tmp_path / "p.xml", message_id="PURGE-1", created="2019-05-01T00:00:00Z")
    assert read_ddex(msg.read_bytes(), source="p", validate_xsd=True, xsd_dir=DDEX / "xsd").kind == "purge"
    r = _run(home, "rights", "import-ddex", str(msg), "--json")
    assert r.exit_code == 0, r.output
    assert _q(home, "SELECT count(*) FROM track_withdrawals WHERE restored_at IS NULL AND reason LIKE '%PURGE-1%'") == [
        (1,)]
    assert str(_q(home, "SELECT valid_to FROM deals WHERE deal_id = ?", [DEAL])[0][0]) == "2019-04-30"
    r = _run(home, "rights", "history", RELEASE, "--json")
    assert [e["kind"] for e in json.loads(r.output)][-1] == "release.withdrawn"


def test_derived_takedown_and_update_messages_are_valid_ern43(tmp_path: Path) -> None:
    for path in (single(tmp_path / "t.xml", takedown=True), single(tmp_path / "u.xml", end_date="2018-06-30")):
        read_ddex(path.read_bytes(), source=path.name, validate_xsd=True, xsd_dir=DDEX / "xsd")
