"""hypothesis fuzzing of the importers and the policy engine: never an unhandled exception, every bad record
quarantined with a reason, every good record imported, and no decision allows what the policy forbids."""

from __future__ import annotations

import json
import string
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.delivery import read_metadata
from licensing.evaluate import ConsentFact, DealFact, OptoutMatch, TrackFacts, evaluate_track
from licensing.importers.ddex import import_ddex
from licensing.importers.tabular import CSV_HEADERS, import_rights_file
from licensing.policy import load_policy
from store.audit import verify_chain
from tests.licensing.helpers import consent, deal, party
from tests.reliability.test_hostile_xml import AUDIO

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
ISRCS = ["GBAYE2600001", "GBAYE2600002", "USABC2612345"]
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | text,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=6)


def _quarantine_count(con) -> int:  # type: ignore[no-untyped-def]
    return con.execute("SELECT count(*) FROM quarantine").fetchone()[0]


# --- JSON rights files -------------------------------------------------------------------------------------

@st.composite
def mutated_record(draw: st.DrawFn, base: dict) -> dict | object:  # type: ignore[type-arg]
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return base
    if choice == 1:
        return draw(junk)
    record = dict(base)
    key = draw(st.sampled_from(sorted(record)))
    if choice == 2:
        record[key] = draw(junk)
    elif choice == 3:
        record.pop(key)
    else:
        record[draw(text)] = draw(junk)
    return record


@st.composite
def rights_docs(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    n = draw(st.integers(0, 1_000_000))
    parties = [draw(mutated_record(party(f"P-{n}-{i}"))) for i in range(draw(st.integers(0, 3)))]
    deals = [draw(mutated_record(deal(f"D-{n}-{i}", [draw(st.sampled_from(ISRCS))], licensor=f"P-{n}-0")))
             for i in range(draw(st.integers(0, 3)))]
    consents = [draw(mutated_record(consent(f"C-{n}-{i}", f"P-{n}-0"))) for i in range(draw(st.integers(0, 3)))]
    return {"schema_version": 1, "parties": parties, "deals": deals, "consents": consents}


@FUZZ
@given(doc=rights_docs())
def test_fuzzed_json_rights_files(doc: dict, con, tmp_path: Path) -> None:  # type: ignore[type-arg,no-untyped-def]
    path = tmp_path / "rights.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    before = _quarantine_count(con)
    report = import_rights_file(con, path, actor="fuzz")
    if report.already_imported:
        return
    assert not report.rejected
    records = len(doc["parties"]) + len(doc["deals"]) + len(doc["consents"])
    assert report.parties + report.deals + report.consents + report.unchanged + len(report.errors) == records
    assert _quarantine_count(con) - before == len(report.errors)
    assert all(e.reason_code and e.source_ref.startswith(str(path)) for e in report.errors)
    # Records the fuzzer left untouched are imported (deals and consents need their party known).
    parties = {r[0] for r in con.execute("SELECT party_id FROM parties").fetchall()}
    untouched_parties = {p["party_id"] for p in doc["parties"]
                         if isinstance(p, dict) and isinstance(p.get("party_id"), str) and p == party(p["party_id"])}
    assert untouched_parties <= parties
    licensor = f"P-{doc['deals'][0]['deal_id'].split('-')[1]}-0" if doc["deals"] and isinstance(doc["deals"][0], dict) \
        and isinstance(doc["deals"][0].get("deal_id"), str) and doc["deals"][0]["deal_id"].count("-") == 2 else None
    if licensor in parties:
        deals = {r[0] for r in con.execute("SELECT deal_id FROM deals").fetchall()}
        for d in doc["deals"]:
            if isinstance(d, dict) and isinstance(d.get("deal_id"), str) and isinstance(d.get("isrcs"), list) \
                    and d == deal(d["deal_id"], d["isrcs"], licensor=licensor):
                assert d["deal_id"] in deals


# --- CSV rights files --------------------------------------------------------------------------------------

cell = st.one_of(st.sampled_from(["", "GBAYE2600001", "Worldwide", "UseForDataMining", "100", "2026-01-01", "P-a",
                                  "allowed", "all", "DE;FR", "nan", "-5", "1e999"]), text)


@FUZZ
@given(kind=st.sampled_from(sorted(CSV_HEADERS)), rows=st.lists(st.lists(cell, min_size=0, max_size=15), max_size=5),
       quote=st.booleans())
def test_fuzzed_csv_rights_files(kind: str, rows: list[list[str]], quote: bool, con,  # type: ignore[no-untyped-def]
                                 tmp_path: Path) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL if quote else csv.QUOTE_MINIMAL)
    writer.writerow(CSV_HEADERS[kind])
    writer.writerows(rows)
    path = tmp_path / f"{kind}.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    before = _quarantine_count(con)
    report = import_rights_file(con, path, actor="fuzz")
    if report.already_imported:
        return
    assert _quarantine_count(con) - before == len(report.errors)
    assert all(e.reason_code and e.source_ref.startswith(str(path)) for e in report.errors)
    if report.rejected:
        assert len(report.errors) == 1
    elif kind != "licenses":  # license rows group into deals; the others are one record a row
        assert report.parties + report.consents + report.unchanged + len(report.errors) == len([r for r in rows if r])  # blank lines are no rows


# --- delivery metadata ---------------------------------------------------------------------------------------

@FUZZ
@given(records=st.lists(st.one_of(junk, st.fixed_dictionaries(
    {"file": st.one_of(st.sampled_from(["audio/a.flac", "audio/b.ogg", "../x", "/abs", "audio/../../y"]), text)},
    optional={"isrc": junk, "title": junk, "artists": junk, "album": junk, "ai_generated": junk, "license": junk})),
    max_size=6))
def test_fuzzed_delivery_metadata(records: list[object], tmp_path: Path) -> None:
    delivery = tmp_path / "delivery"
    delivery.mkdir(exist_ok=True)
    (delivery / "metadata.json").write_text(json.dumps({"tracks": records}, ensure_ascii=False), encoding="utf-8")
    entries, problems = read_metadata(delivery)
    assert len(entries) + len(problems) == len(records)  # every record is either taken or written down
    assert all(p.reason_code and p.source_ref.startswith("metadata.json#") for p in problems)
    for rel, entry in entries.items():
        assert ".." not in Path(rel).parts and not Path(rel).is_absolute()
        assert all(isinstance(entry.get(k), str) for k in ("isrc", "title", "album", "license") if k in entry)


# --- DDEX XML mutations ----------------------------------------------------------------------------------------

SAMPLE = AUDIO.read_bytes()


@st.composite
def mutated_xml(draw: st.DrawFn) -> bytes:
    data = bytearray(SAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 3))
        at = draw(st.integers(0, len(data) - 1))
        if op == 0:  # cut a range
            del data[at:at + draw(st.integers(1, 400))]
        elif op == 1:  # replace the text of the element around a position
            start, end = data.rfind(b">", 0, at), data.find(b"<", at)
            if 0 <= start < end:
                data[start + 1:end] = draw(st.text(string.printable + "ÄØ☃", max_size=20)).encode().replace(
                    b"<", b"").replace(b"&", b"")
        elif op == 2:  # insert arbitrary bytes
            data[at:at] = draw(st.binary(max_size=20))
        else:  # duplicate a chunk
            size = draw(st.integers(1, 2000))
            data[at:at] = data[at:at + size]
    return bytes(data)


@FUZZ
@given(data=mutated_xml())
def test_fuzzed_ddex_messages(data: bytes, con, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "message.xml"
    path.write_bytes(data)
    before = _quarantine_count(con)
    report = import_ddex(con, path, actor="fuzz")
    if report.already_imported:
        return
    assert _quarantine_count(con) - before == len(report.errors)
    assert all(e.reason_code for e in report.errors)
    if report.rejected:
        assert len(report.errors) == 1 and report.errors[0].source_ref == str(path)
    assert verify_chain(con).ok


# --- the policy engine -----------------------------------------------------------------------------------------

ON = date(2026, 3, 1)
days = st.integers(-30, 30).map(lambda d: ON + timedelta(days=d))
stamps = st.integers(-30 * 86400, 30 * 86400).map(lambda s: datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=s))
USES = ["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining", "Stream"]
deal_facts = st.builds(
    DealFact, deal_id=st.text(string.ascii_letters, min_size=1, max_size=4),
    use_types=st.lists(st.sampled_from(USES), max_size=3).map(tuple),
    include=st.lists(st.sampled_from(["Worldwide", "DE", "US", "FR"]), max_size=2).map(tuple),
    exclude=st.lists(st.sampled_from(["DE", "US"]), max_size=1).map(tuple),
    valid_from=st.none() | days, valid_to=st.none() | days,
    share_total=st.sampled_from([0.0, 50.0, 99.995, 100.0, 100.004, 150.0]))
PARTIES = ["P-a", "P-b", "P-c"]
consent_facts = st.builds(
    ConsentFact, consent_id=st.text(string.ascii_letters, min_size=1, max_size=4), party_id=st.sampled_from(PARTIES),
    scope=st.sampled_from(["all", "recording", "work"]), scope_ref=st.sampled_from([None, ISRCS[0], "T0345246801"]),
    values=st.fixed_dictionaries({f: st.sampled_from(["allowed", "notAllowed", "constrained"])
                                  for f in ("ai_training", "ai_generative_training", "data_mining", "ai_inference")}),
    granted_at=st.none() | stamps, revoked_at=st.none() | stamps)
facts = st.builds(
    TrackFacts, track_id=st.just("trk_0000000000000001"), isrc=st.just(ISRCS[0]),
    iswc=st.sampled_from([None, "T0345246801"]), ai_generated=st.booleans(),
    deals=st.lists(deal_facts, max_size=3).map(tuple),
    contributors=st.lists(st.tuples(st.sampled_from(PARTIES), st.sampled_from(
        ["MainArtist", "FeaturedArtist", "Composer", "Lyricist", "Publisher", "Producer"])), max_size=4).map(tuple),
    consents=st.lists(consent_facts, max_size=4).map(tuple),
    optout_matches=st.lists(st.builds(OptoutMatch, matched_ref=st.just("OPT-1"), score=st.floats(0, 1),
                                      threshold=st.sampled_from([0.6, 0.7])), max_size=2).map(tuple),
    duplicate_conflict=st.sampled_from([None, "dup-1"]))
POLICY = load_policy()


@settings(max_examples=400, deadline=None)
@given(f=facts, purpose=st.sampled_from([*USES, "Bogus"]), territory=st.sampled_from(["DE", "US", "FR", "Worldwide",
                                                                                       "de", "JP"]))
def test_fuzzed_policy_engine_decides_without_raising_and_denies_by_default(f: TrackFacts, purpose: str,
                                                                            territory: str) -> None:
    decision = evaluate_track(f, POLICY, purpose=purpose, territory=territory, on_date=ON)
    assert decision.allowed == (not decision.reason_codes) and decision.explanation
    again = evaluate_track(f, POLICY, purpose=purpose, territory=territory, on_date=ON)
    assert again.decision_id == decision.decision_id  # a decision is a value of its inputs
    if decision.allowed:
        rule = POLICY.purposes[purpose]  # type: ignore[index]
        deal_ = next(d for d in f.deals if d.deal_id == decision.deal_id)
        assert purpose in deal_.use_types and abs(deal_.share_total - 100.0) <= POLICY.share_tolerance
        assert not any(m.score >= m.threshold for m in f.optout_matches)
        assert not f.duplicate_conflict and not (f.ai_generated and rule.exclude_ai_generated)
        assert any(role in rule.required_listed_roles for _, role in f.contributors)
        required = {p for p, role in f.contributors if role in rule.required_consent_roles}
        granted = {c.party_id for c in f.consents if c.consent_id in decision.consent_ids}
        assert required <= granted  # every required party has an allowing consent in force
        for c in f.consents:  # and none of them refused in force
            in_force = c.granted_at is not None and c.granted_at.date() <= ON and not (
                c.revoked_at is not None and c.revoked_at.date() <= ON)
            applies = c.scope == "all" or (c.scope == "recording" and c.scope_ref == f.isrc) or (
                c.scope == "work" and f.iswc is not None and c.scope_ref == f.iswc)
            if c.party_id in required and in_force and applies:
                assert c.values[rule.consent_field] == "allowed"
    if purpose == "Bogus":
        assert decision.reason_codes == ("purpose_unknown",)
