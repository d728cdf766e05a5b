"""The pages over a real pipeline ledger: search, explained decisions, denied CSV, review with its diff,
revocations and deal ends with their impact preview, auditors' traces and downloads, imports."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from licensing.evaluate import evaluate_catalog
from licensing.importers.ddex import validate_against_xsd
from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.records import Supersession
from licensing.releases import propose_release
from store.audit import Checkpoint
from store.database import connect
from store.home import Home
from tests.ledger_seed import today
from tests.licensing.helpers import add_track, consent, deal
from tests.lineage.pipeline import RELEASE_ID, RUN_ID
from tests.roles import write_test_roles
from tests.web.conftest import csrf_of, login, settings_for
from web import reads
from web.app import create_app, templates

WEB = Path(__file__).resolve().parents[2] / "web"


def _one(home: Home, sql: str, params: list[object] | None = None) -> object:
    with connect(home.db_path, read_only=True) as con:
        return con.execute(sql, params or []).fetchone()


def _party(name: str) -> str:
    from catalog.ingest import party_id_for

    return party_id_for(name)


def test_search_finds_tracks_by_isrc_title_artist_party_and_deal(client: TestClient) -> None:
    login(client, "rita.rights")
    for q, expected in (("GBLNR2600003", {"GBLNR2600003"}), ("third rail", {"GBLNR2600003"}),
                        ("Cleo Refuser", {"GBLNR2600003"}), ("Ben Byrd", {"GBLNR2600002", "GBLNR2600005",
                                                                          "GBLNR2600006"}),
                        ("D-LNR-2", {"GBLNR2600003", "GBLNR2600004"})):
        html = client.get("/search", params={"q": q}).text
        found = {isrc for isrc in ("GBLNR2600001", "GBLNR2600002", "GBLNR2600003", "GBLNR2600004", "GBLNR2600005",
                                   "GBLNR2600006") if f">{isrc}</a>" in html}
        assert found == expected, q
    assert "No track matches" in client.get("/search", params={"q": "no such song"}).text


def test_a_denied_track_says_why_in_plain_words_with_the_party_and_evidence(client: TestClient,
                                                                            web_home: Home) -> None:
    login(client, "rita.rights")
    track_id = _one(web_home, "SELECT track_id FROM tracks WHERE isrc = 'GBLNR2600003'")[0]  # type: ignore[index]
    html = client.get(f"/tracks/{track_id}").text
    assert "UseForTrainingGenerativeAI in GB on 2026-03-01: <span class=\"denied\">denied</span>" in html
    assert "a required contributor does not allow this purpose" in html and "consent_not_allowed" in html
    cleo = _party("Cleo Refuser")
    assert f'<a href="/parties/{cleo}">Cleo Refuser</a>' in html
    assert f"consent <a href=\"/consents/C-{cleo}\">C-{cleo}</a> does not allow it (evidence: test://consent/{cleo})" in html
    # the same recording is allowed for mining: the page shows both decisions
    assert "UseForDataMining in GB" in html and 'class="allowed"' in html
    opted = _one(web_home, "SELECT track_id FROM tracks WHERE isrc = 'GBLNR2600006'")[0]  # type: ignore[index]
    page = client.get(f"/tracks/{opted}").text
    assert "the audio matches a recording whose owner opted out" in page and "OPT-LNR-1" in page
    method = _one(web_home, "SELECT method FROM audio_matches WHERE matched_ref = 'OPT-LNR-1'")[0]  # type: ignore[index]
    assert f"<td>OPT-LNR-1</td><td>{method}</td>" in page and " s long" in page


def test_denied_tracks_page_and_csv_cover_every_denied_track(client: TestClient, web_home: Home) -> None:
    login(client, "rita.rights")
    query = {"purpose": "UseForTrainingGenerativeAI", "territory": "GB"}
    html = client.get("/denied", params=query).text
    rows = list(csv.DictReader(io.StringIO(client.get("/denied.csv", params=query).text)))
    expected = _one(web_home, "SELECT count(*) FROM current_decisions WHERE purpose = ? AND territory = ? "
                              "AND NOT allowed", list(query.values()))[0]  # type: ignore[index]
    assert len(rows) == expected >= 4
    assert {r["isrc"] for r in rows} >= {"GBLNR2600003", "GBLNR2600004", "GBLNR2600005", "GBLNR2600006"}
    assert all(r["reason_codes"] and r["explanation"].startswith("denied:") for r in rows)
    for r in rows:
        assert f">{r['isrc']}</a>" in html


def test_review_shows_the_diff_against_the_last_approved_release(client: TestClient, web_home: Home) -> None:
    login(client, "rita.rights")
    ben = _party("Ben Byrd")
    preview = client.get(f"/consents/C-{ben}/revoke").text
    assert RELEASE_ID in preview and RUN_ID in preview  # the impact before anything is recorded
    assert _one(web_home, "SELECT revoked_at FROM consents WHERE consent_id = ?", [f"C-{ben}"])[0] is None  # type: ignore[index]
    token = csrf_of(client, f"/consents/C-{ben}/revoke")
    done = client.post(f"/consents/C-{ben}/revoke", data={"evidence_ref": "s3://evidence/ben-withdrawal.pdf",
                                                          "reason": "withdrawn by letter", "csrf_token": token})
    assert done.status_code == 303
    assert _one(web_home, "SELECT revoked_at FROM consents WHERE consent_id = ?", [f"C-{ben}"])[0] is not None  # type: ignore[index]
    assert "revoked by rita.rights" in client.get(done.headers["location"]).text

    with connect(web_home.db_path) as con:
        propose_release(con, purpose="UseForTrainingGenerativeAI", territory="GB", on_date=today(), actor="mira.ml",
                        policy=load_policy(), release_id="rel-web-after")
    html = client.get("/releases/rel-web-after").text
    assert f'(<a href="/releases/{RELEASE_ID}">{RELEASE_ID}</a>)' in html
    assert "<tr><th>Tracks added</th><td>0</td></tr>" in html
    assert "<tr><th>Tracks removed</th><td>1</td></tr>" in html
    newly = html.split("<h3>Newly denied</h3>", 1)[1].split("</table>", 1)[0]
    assert ">GBLNR2600002</a>" in newly and "revoked consent" in newly
    assert "Excluded tracks (" in html and "the audio matches a recording whose owner opted out" in html
    queue = client.get("/releases").text
    assert "rel-web-after" in queue and "UseForTrainingGenerativeAI" in queue


def test_ending_a_deal_previews_its_impact_then_records_it(client: TestClient, web_home: Home) -> None:
    login(client, "rita.rights")
    preview = client.get("/deals/D-LNR-1/end").text
    assert "Recordings concerned</th><td>3" in preview and RUN_ID in preview and RELEASE_ID in preview
    token = csrf_of(client, "/deals/D-LNR-1/end")
    client.post("/deals/D-LNR-1/end", data={"valid_to": "2026-06-30", "evidence_ref": "termination.pdf",
                                            "csrf_token": token})
    assert str(_one(web_home, "SELECT valid_to FROM deals WHERE deal_id = 'D-LNR-1'")[0]) == "2026-06-30"  # type: ignore[index]
    page = client.get("/deals/D-LNR-1").text
    assert "deal.expired" in page and "termination.pdf" in page


def test_an_auditor_traces_songs_and_models_and_downloads_the_evidence(client: TestClient, web_home: Home) -> None:
    login(client, "aude.audit")
    model = client.get(f"/models/{RUN_ID}").text
    assert "Lineage Records" in model and "First Light" in model and "Second Wind" in model
    assert "Ben Byrd 40%" in model and "Lineage Records 60%" in model  # shares of GBLNR2600002
    song = client.get("/trace", params={"isrc": "GBLNR2600001"}).text
    assert f'<a href="/models/{RUN_ID}">{RUN_ID}</a>' in song
    absent = client.get("/trace", params={"isrc": "GBLNR2600003"}).text
    assert "No model learned from this song." in absent

    audit_page = client.get("/audit?verify=1").text
    assert "Signature</th><td>valid" in audit_page and "intact" in audit_page and "verified:" in audit_page
    head = Checkpoint.model_validate_json(client.get("/audit/head.json").content)
    assert head.signature_ok()

    token = csrf_of(client, f"/models/{RUN_ID}")
    pack = client.post(f"/models/{RUN_ID}/export/evidence", data={"provider": "Label Ltd", "csrf_token": token})
    assert pack.status_code == 200 and pack.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(pack.content)).namelist()
    assert "verify_evidence.py" in names and any(n.endswith(".csv") for n in names)
    summary = client.post(f"/models/{RUN_ID}/export/ai-act-summary", data={"provider": "Label Ltd",
                                                                            "csrf_token": token})
    assert any(n.endswith(".md") for n in zipfile.ZipFile(io.BytesIO(summary.content)).namelist())
    with connect(web_home.db_path, read_only=True) as con:
        exports = con.execute("SELECT actor, payload FROM audit_log WHERE action = 'audit.export' ORDER BY seq").fetchall()
    assert [a for a, _ in exports][-2:] == ["aude.audit", "aude.audit"]
    assert json.loads(exports[-1][1])["principal"]["method"] == "web_login"

    ml = TestClient(client.app, follow_redirects=False)
    login(ml, "mira.ml")
    token = csrf_of(ml, f"/models/{RUN_ID}")
    refused = ml.post(f"/models/{RUN_ID}/export/evidence", data={"provider": "x", "csrf_token": token})
    assert refused.status_code == 303 and "refused (role_missing)" in ml.get(refused.headers["location"]).text


def test_import_upload_shows_the_per_record_report_and_templates_import_cleanly(client: TestClient,
                                                                                web_home: Home) -> None:
    login(client, "rita.rights")
    for name in ("rights.json", "parties.csv", "licenses.csv", "consents.csv", "ddex-ern43.xml"):
        body = client.get(f"/import/templates/{name}").content
        assert body == (WEB / "rights_templates" / name).read_bytes()
        token = csrf_of(client, "/import")
        html = client.post("/import", data={"csrf_token": token}, files={"file": (name, body)}).text
        assert '<span class="allowed">imported</span>' in html or "already imported" in html, name
        assert "Records refused</th><td>0" in html, name
    assert _one(web_home, "SELECT count(*) FROM consents WHERE consent_id = 'C-EXAMPLE-1'")[0] == 1  # type: ignore[index]
    ddex_deal = _one(web_home, "SELECT d.use_types, rc.share FROM deals d JOIN rights_controllers rc USING (deal_id) "
                               "WHERE rc.isrc = 'ZZEXA2600001' AND d.source LIKE 'ddex%'")
    assert ddex_deal is not None and "UseForTrainingGenerativeAI" in ddex_deal[0] and ddex_deal[1] == 100.0

    bad = ("consent_id,party_id,scope,scope_ref,ai_training,ai_generative_training,data_mining,ai_inference,"
           "evidence_ref,evidence_sha256,granted_at,revoked_at\n"
           "C-GOOD,P-example-artist,all,,allowed,allowed,allowed,notAllowed,ev.pdf,"
           "3126a1ab9c621a95a308ddf34d3b4236502c2b04025afe8c72592dc09a0b2fd4,2026-01-15T00:00:00Z,\n"
           "C-BAD,P-example-artist,all,,maybe,allowed,allowed,notAllowed,ev.pdf,"
           "3126a1ab9c621a95a308ddf34d3b4236502c2b04025afe8c72592dc09a0b2fd4,2026-01-15T00:00:00Z,\n")
    token = csrf_of(client, "/import")
    html = client.post("/import", data={"csrf_token": token}, files={"file": ("bad.csv", bad.encode())}).text
    assert "Records refused</th><td>1" in html and "bad.csv:3</td>" in html and "&#39;constrained&#39;" in html
    assert _one(web_home, "SELECT count(*) FROM consents WHERE consent_id = 'C-GOOD'")[0] == 1  # type: ignore[index]
    quarantine = client.get("/quarantine").text
    assert "bad.csv" in quarantine

    ml = TestClient(client.app, follow_redirects=False)
    login(ml, "mira.ml")
    token = csrf_of(ml, "/import")
    refused = ml.post("/import", data={"csrf_token": token}, files={"file": ("x.json", b"{}")})
    assert "refused (role_missing)" in ml.get(refused.headers["location"]).text


def test_parties_deals_and_consents_list_and_show(client: TestClient) -> None:
    login(client, "rita.rights")
    ada = _party("Ada Lark")
    assert f'<a href="/parties/{ada}">{ada}</a>' in client.get("/parties", params={"q": "ada"}).text
    party = client.get(f"/parties/{ada}").text
    assert f"C-{ada}" in party and "<td>rita.rights</td>" in party  # the history names who imported it
    assert "D-LNR-1" in client.get("/deals").text and "contract:LNR-2026-01" in client.get("/deals/D-LNR-1").text
    assert f"C-{ada}" in client.get("/consents", params={"q": "Ada"}).text
    assert "test://consent/" in client.get(f"/consents/C-{ada}").text


def test_the_ddex_template_is_valid_ern43() -> None:
    xsd = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "ddex" / "xsd"
    assert xsd.exists(), f"{xsd} is missing"
    validate_against_xsd((WEB / "rights_templates" / "ddex-ern43.xml").read_bytes(), "http://ddex.net/xml/ern/43", xsd)


def test_a_ddex_message_uploads_with_its_report(client: TestClient, web_home: Home) -> None:
    """The official ERN 4.3 audio sample (from ../shared/testdata) through the Import page."""
    sample = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "ddex" / "ern43" / "1 Audio.xml"
    assert sample.exists(), f"{sample} is missing"
    login(client, "rita.rights")
    token = csrf_of(client, "/import")
    html = client.post("/import", data={"csrf_token": token},
                       files={"file": ("1 Audio.xml", sample.read_bytes())}).text
    assert '<span class="allowed">imported</span>' in html
    assert "Recordings</th><td>21" in html and "Deals</th><td>3" in html
    assert _one(web_home, "SELECT count(*) FROM recordings WHERE isrc = 'JPTO09404900'")[0] == 1  # type: ignore[index]


def test_counts_per_reason_follow_a_change(client: TestClient) -> None:
    """The denied page's counts per reason (kept as decisions are written) follow a recorded change at once."""
    login(client, "rita.rights")
    query = {"purpose": "UseForTrainingGenerativeAI", "territory": "GB"}
    expired = "the deals licensing this use here have expired by this date"
    before = client.get("/denied", params=query).text
    assert expired not in before
    token = csrf_of(client, "/deals/D-LNR-1/end")
    client.post("/deals/D-LNR-1/end", data={"valid_to": "2025-06-30", "evidence_ref": "termination.pdf",
                                            "csrf_token": token})
    after = client.get("/denied", params=query).text
    assert f"{expired}</a></th><td>3</td>" in after  # GBLNR2600001, -02 and -06 as of 2026-03-01


def test_denied_pages_by_number_and_by_next_link_agree(client: TestClient, web_home: Home,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads, "PAGE", 2)
    login(client, "rita.rights")
    query = "purpose=UseForTrainingGenerativeAI&territory=GB"
    with connect(web_home.db_path, read_only=True) as con:
        ids = [r[0] for r in con.execute(
            "SELECT track_id FROM current_decisions WHERE purpose = 'UseForTrainingGenerativeAI' AND territory = 'GB' "
            "AND NOT allowed AND on_date = (SELECT max(on_date) FROM current_decisions WHERE "
            "purpose = 'UseForTrainingGenerativeAI' AND territory = 'GB') ORDER BY track_id").fetchall()]
    assert len(ids) >= 4

    def shown(html: str) -> list[str]:
        return re.findall(r'<tr><td><a href="/tracks/([^"]+)">', html)

    html = client.get(f"/denied?{query}").text
    assert shown(html) == ids[:2]
    for number in range(2, -(-len(ids) // 2) + 1):
        next_link = re.search(r'<a href="(/denied\?[^"]+)">next', html)
        assert next_link, number
        html = client.get(next_link.group(1).replace("&amp;", "&")).text
        assert shown(html) == ids[(number - 1) * 2: number * 2]
        assert shown(client.get(f"/denied?{query}&page={number}").text) == ids[(number - 1) * 2: number * 2]


def test_a_track_page_shows_the_decision_in_force_not_the_newest_row(tmp_path: Path) -> None:
    """An identical decision is stored once: when a refusal is superseded, the track is allowed again by its
    older decision row, and the page must show that allow (the current decision), not the newer denial."""
    isrc = "QZXXX2600001"
    on = datetime.now(UTC).date()
    write_test_roles(tmp_path)

    def load(con, name: str, supersede: Supersession | None = None, **records: list) -> None:  # type: ignore[no-untyped-def]
        path = tmp_path / name
        path.write_text(json.dumps({"schema_version": 1, "parties": [], "deals": [], "consents": [], **records}),
                        encoding="utf-8")
        assert not import_rights_file(con, path, actor="rita", supersede=supersede).errors

    with connect(tmp_path / "ledger.duckdb") as con:
        load(con, "r1.json", parties=[{"party_id": "P-label", "name": "Label", "isni": None, "ipi": None},
                                      {"party_id": "P-a", "name": "Ada", "isni": None, "ipi": None}],
             deals=[deal("D1", [isrc], shares=[("P-label", isrc, 100.0)])], consents=[consent("C-a", "P-a")])
        track_id = add_track(con, 1, isrc, [("P-a", "MainArtist")])
        evaluate_catalog(con, load_policy(), purpose="UseForTrainingGenerativeAI", territory="DE", on_date=on,
                         actor="rita")
        shown = lambda: [(d["allowed"], d["reason_codes"]) for d in reads.track_page(con, track_id)["decisions"]]
        assert shown() == [(True, [])]
        load(con, "r2.json", consents=[consent("C-label", "P-label", ai_generative_training="notAllowed",
                                               granted=f"{on}T00:00:00Z")])
        assert shown() == [(False, ["rights_controller_refused"])]
        (refusal,) = con.execute("SELECT event_id FROM rights_events WHERE subject_id = 'C-label'").fetchone()
        load(con, "r3.json", supersede=Supersession(frozenset([refusal]), "test://withdrawn-refusal"),
             consents=[consent("C-label", "P-label", granted=f"{on}T00:00:00Z")])
        current = con.execute("SELECT allowed FROM current_decisions WHERE track_id = ? AND on_date = ?",
                              [track_id, on]).fetchall()
        assert current == [(True,)] and shown() == [(True, [])]


def test_start_up_compiles_every_template_and_reads_the_ledger_before_the_first_request(web_home: Home) -> None:
    assert templates.env.cache is not None
    templates.env.cache.clear()  # compiled by earlier tests in this process
    app = create_app(web_home, settings_for(web_home))
    with TestClient(app, follow_redirects=False):
        compiled = {key[1] for key in templates.env.cache}
        assert compiled == set(templates.env.list_templates())
        assert app.state.warm_up_s > 0
