"""Rights records (parties, recordings, deals, consents) written as events, never as silent overwrites.

Every change to a deal, consent, recording or party is a row in ``rights_events``: what changed
(before and after), which aspects it *tightened* or *loosened*, on whose authority and evidence.
The current state (``deals``, ``consents``, ...) gets a new version; the old one stays in history.

A record that would loosen an aspect whose latest change was a tightening (a deal ended early, a
consent revoked or refused, a territory excluded, a recording taken off a deal) is refused with
``rights_conflict`` naming that event, unless the import says it supersedes that event (with
evidence, audited). Tightening always applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from schemas.canonical import canonical_json
from schemas.rights import Consent, Deal, Party, Recording, Work
from store.ledger import Writer

CONSENT_FIELDS = ("ai_training", "ai_generative_training", "data_mining", "ai_inference")
_CONSENT_RANK = {"notAllowed": 0, "constrained": 1, "allowed": 2}


class RightsConflict(Exception):
    """A record would loosen what a later event restricted; carries the event it conflicts with."""

    def __init__(self, event_id: str, message: str) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.message = message


@dataclass(frozen=True)
class Supersession:
    """Permission, given by a person with evidence, to loosen what the named events restricted."""

    event_ids: frozenset[str]
    evidence_ref: str


@dataclass
class Outcome:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


def known_party_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT party_id FROM parties").fetchall()}


def _event(w: Writer, *, kind: str, subject_kind: str, subject_id: str, isrcs: Iterable[str] = (),
           party_ids: Iterable[str] = (), tightened: Iterable[str] = (), loosened: Iterable[str] = (),
           supersedes: Sequence[str] = (), evidence_ref: str | None = None, source: str,
           details: dict[str, Any] | None = None, when: datetime | None = None) -> str:
    """Append one rights event under the writer's command; return its id."""
    n = w.con.execute("SELECT count(*) FROM rights_events WHERE audit_seq = ?", [w.seq]).fetchall()[0][0]
    event_id = f"evt-{w.seq}-{n + 1}"
    w.insert("rights_events", [{
        "event_id": event_id, "kind": kind, "subject_kind": subject_kind, "subject_id": subject_id,
        "isrcs": sorted(set(isrcs)), "party_ids": sorted(set(party_ids)), "tightened": sorted(set(tightened)),
        "loosened": sorted(set(loosened)), "supersedes": list(supersedes), "evidence_ref": evidence_ref,
        "source": source, "details": canonical_json(details or {}), "actor": w.actor,
        "recorded_at": when or datetime.now(UTC)}])
    return event_id


def check_loosening(w: Writer, subject_kind: str, subject_id: str, loosened: Iterable[str],
                    supersede: Supersession | None) -> list[str]:
    """Raise :class:`RightsConflict` if loosening ``loosened`` of a subject meets a restriction not superseded;
    return the ids of the events superseded."""
    return _check_loosening(w, subject_kind, subject_id, loosened, supersede)


def record_event(w: Writer, **kwargs: Any) -> str:
    """A rights event written by another licensing command (expiry, revocation, withdrawal)."""
    return _event(w, **kwargs)


def _check_loosening(w: Writer, subject_kind: str, subject_id: str, loosened: Iterable[str],
                     supersede: Supersession | None) -> list[str]:
    """Raise RightsConflict if an aspect being loosened was last tightened by an event not superseded.

    Returns the ids of the events this record supersedes.
    """
    overridden: list[str] = []
    for aspect in sorted(set(loosened)):
        row = w.con.execute(
            "SELECT event_id, kind, actor, recorded_at, list_contains(tightened, ?) FROM rights_events "
            "WHERE subject_kind = ? AND subject_id = ? AND (list_contains(tightened, ?) OR list_contains(loosened, ?)) "
            "ORDER BY audit_seq DESC, recorded_at DESC LIMIT 1",
            [aspect, subject_kind, subject_id, aspect, aspect]).fetchall()
        if not row or not row[0][4]:
            continue
        event_id, kind, actor, at = row[0][:4]
        if supersede is not None and event_id in supersede.event_ids:
            overridden.append(event_id)
            continue
        raise RightsConflict(event_id, f"{subject_kind} {subject_id}: this record would loosen {aspect}, which "
                                       f"event {event_id} ({kind} by {actor} at {at:%Y-%m-%d %H:%M}) restricted; "
                                       f"re-import with --supersede {event_id} --evidence-ref REF to override it")
    return overridden


# --- parties ---------------------------------------------------------------------------------

def upsert_parties(w: Writer, parties: Sequence[Party], *, source: str) -> Outcome:
    """New parties, and new versions of parties whose name or identifiers changed (identifiers are kept
    when a record leaves them out)."""
    out = Outcome()
    for party in parties:
        row = w.con.execute("SELECT name, isni, ipi, dpid FROM parties WHERE party_id = ?",
                            [party.party_id]).fetchall()
        before = row[0] if row else None
        after = (party.name, party.isni or (before[1] if before else None), party.ipi or (before[2] if before else None),
                 party.dpid or (before[3] if before else None))
        if before is not None and tuple(before) == after:
            out.unchanged.append(party.party_id)
            continue
        w.upsert("parties", [{"party_id": party.party_id, "name": after[0], "isni": after[1], "ipi": after[2],
                              "dpid": after[3]}], key=["party_id"])
        out.written.append(party.party_id)
        out.events.append(_event(w, kind="party.recorded" if before is None else "party.amended", subject_kind="party",
                                 subject_id=party.party_id, party_ids=[party.party_id], source=source,
                                 details={"before": list(before) if before else None, "after": list(after)}))
    return out


# --- deals -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DealState:
    use_types: frozenset[str]
    include: frozenset[str]
    exclude: frozenset[str]
    valid_from: date | None
    valid_to: date | None
    isrcs: frozenset[str]
    controllers: frozenset[tuple[str, str, float]]
    licensor: str
    license: str | None
    conditions: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"use_types": sorted(self.use_types), "include": sorted(self.include), "exclude": sorted(self.exclude),
                "valid_from": self.valid_from, "valid_to": self.valid_to, "isrcs": sorted(self.isrcs),
                "controllers": sorted(self.controllers), "licensor": self.licensor, "license": self.license,
                "conditions": list(self.conditions)}


def deal_state(con: duckdb.DuckDBPyConnection, deal_id: str) -> DealState | None:
    row = con.execute("SELECT use_types, territories_included, territories_excluded, valid_from, valid_to, "
                      "licensor_party_id, license, conditions FROM deals WHERE deal_id = ?", [deal_id]).fetchall()
    if not row:
        return None
    uses, inc, exc, vf, vt, licensor, license_, cond = row[0]
    isrcs = {r[0] for r in con.execute("SELECT isrc FROM deal_recordings WHERE deal_id = ?", [deal_id]).fetchall()}
    controllers = {(r[0], r[1], float(r[2])) for r in con.execute(
        "SELECT isrc, party_id, share FROM rights_controllers WHERE deal_id = ?", [deal_id]).fetchall()}
    return DealState(frozenset(uses), frozenset(inc), frozenset(exc), vf, vt, frozenset(isrcs), frozenset(controllers),
                     licensor, license_, tuple(cond or ()))


def _state_of(deal: Deal) -> DealState:
    shares: dict[tuple[str, str], float] = {}
    for rc in deal.rights_controllers:
        shares[(rc.isrc, rc.party_id)] = shares.get((rc.isrc, rc.party_id), 0.0) + rc.share
    return DealState(frozenset(deal.use_types), frozenset(deal.territories.include),
                     frozenset(deal.territories.exclude), deal.valid_from, deal.valid_to, frozenset(deal.isrcs),
                     frozenset((i, p, s) for (i, p), s in shares.items()), deal.licensor, deal.license,
                     tuple(deal.conditions))


def _covers_more(new: frozenset[str], old: frozenset[str]) -> bool:
    """Whether an include list ``new`` covers a territory ``old`` does not."""
    if "Worldwide" in old:
        return False
    return "Worldwide" in new or bool(new - old)


def deal_changes(before: DealState, after: DealState) -> tuple[set[str], set[str]]:
    """(tightened, loosened) aspects of a deal going from ``before`` to ``after``."""
    tight: set[str] = set()
    loose: set[str] = set()

    def later(a: date | None, b: date | None) -> bool:  # is a later than b, None being open-ended
        return (a is None and b is not None) or (a is not None and b is not None and a > b)

    if later(after.valid_to, before.valid_to):
        loose.add("valid_to")
    elif later(before.valid_to, after.valid_to):
        tight.add("valid_to")
    if later(after.valid_from, before.valid_from) if after.valid_from is not None else False:
        tight.add("valid_from")
    elif before.valid_from is not None and (after.valid_from is None or after.valid_from < before.valid_from):
        loose.add("valid_from")
    if after.use_types - before.use_types:
        loose.add("use_types")
    if before.use_types - after.use_types:
        tight.add("use_types")
    if _covers_more(after.include, before.include):
        loose.add("territories.include")
    if _covers_more(before.include, after.include):
        tight.add("territories.include")
    if before.exclude - after.exclude:
        loose.add("territories.exclude")
    if after.exclude - before.exclude:
        tight.add("territories.exclude")
    if after.isrcs - before.isrcs:
        loose.add("recordings")
    if before.isrcs - after.isrcs:
        tight.add("recordings")
    return tight, loose


def apply_deal(w: Writer, deal: Deal, *, source: str, supersede: Supersession | None = None) -> str | None:
    """Write one deal as an event; None when it changes nothing. Raises :class:`RightsConflict`."""
    before = deal_state(w.con, deal.deal_id)
    after = _state_of(deal)
    if before == after:
        return None
    if before is None:
        tight, loose, overridden = ({"territories.exclude"} if after.exclude else set()), set(), []
    else:
        tight, loose = deal_changes(before, after)
        overridden = _check_loosening(w, "deal", deal.deal_id, loose, supersede)
    now = datetime.now(UTC)
    w.supersede("deal_recordings", "deal_id = ?", [deal.deal_id])
    w.supersede("rights_controllers", "deal_id = ?", [deal.deal_id])
    w.upsert("deals", [{"deal_id": deal.deal_id, "licensor_party_id": deal.licensor, "license": deal.license,
                        "use_types": list(deal.use_types), "territories_included": list(deal.territories.include),
                        "territories_excluded": list(deal.territories.exclude), "valid_from": deal.valid_from,
                        "valid_to": deal.valid_to, "conditions": list(deal.conditions), "source": source,
                        "imported_at": now}], key=["deal_id"])
    w.insert("deal_recordings", [{"deal_id": deal.deal_id, "isrc": i} for i in sorted(after.isrcs)])
    w.insert("rights_controllers", [{"deal_id": deal.deal_id, "isrc": i, "party_id": p, "share": s}
                                    for i, p, s in sorted(after.controllers)])
    return _event(w, kind="deal.recorded" if before is None else ("deal.superseded" if overridden else "deal.amended"),
                  subject_kind="deal", subject_id=deal.deal_id, isrcs=after.isrcs | (before.isrcs if before else set()),
                  party_ids={deal.licensor, *(p for _, p, _ in after.controllers)}, tightened=tight, loosened=loose,
                  supersedes=overridden, evidence_ref=supersede.evidence_ref if overridden and supersede else None,
                  source=source, details={"before": before.as_json() if before else None, "after": after.as_json()})


# --- consents --------------------------------------------------------------------------------

def _consent_row(con: duckdb.DuckDBPyConnection, consent_id: str) -> dict[str, Any] | None:
    cursor = con.execute("SELECT * EXCLUDE (row_sha256, audit_seq) FROM consents WHERE consent_id = ?", [consent_id])
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return dict(zip(names, rows[0], strict=True)) if rows else None


def consent_changes(before: dict[str, Any], after: Consent) -> tuple[set[str], set[str]]:
    tight: set[str] = set()
    loose: set[str] = set()
    for name in CONSENT_FIELDS:
        old, new = _CONSENT_RANK[before[name]], _CONSENT_RANK[getattr(after, name)]
        if new > old:
            loose.add(name)
        elif new < old:
            tight.add(name)
    old_rev, new_rev = before["revoked_at"], after.revoked_at
    if old_rev is not None and (new_rev is None or new_rev > old_rev):
        loose.add("revoked")
    elif new_rev is not None and (old_rev is None or new_rev < old_rev):
        tight.add("revoked")
    if (before["scope"], before["scope_ref"]) != (after.scope, after.scope_ref):
        (loose if after.scope == "all" else tight).add("scope")
    if before["granted_at"] is not None and after.granted_at < before["granted_at"]:
        loose.add("granted_at")
    return tight, loose


def apply_consent(w: Writer, consent: Consent, *, source: str, supersede: Supersession | None = None) -> str | None:
    """Write one consent as an event; None when it changes nothing. Raises :class:`RightsConflict`.

    A consent's refusals (``notAllowed``/``constrained``) and its revocation are restrictions: a later
    record that lifts them conflicts unless it supersedes the event that recorded them.
    """
    before = _consent_row(w.con, consent.consent_id)
    row = {"consent_id": consent.consent_id, "party_id": consent.party_id, "scope": consent.scope,
           "scope_ref": consent.scope_ref, "ai_training": consent.ai_training,
           "ai_generative_training": consent.ai_generative_training, "data_mining": consent.data_mining,
           "ai_inference": consent.ai_inference, "evidence_ref": consent.evidence_ref,
           "evidence_sha256": consent.evidence_sha256, "granted_at": consent.granted_at,
           "revoked_at": consent.revoked_at, "source": source}
    if before is not None and all(before[k] == v for k, v in row.items() if k != "source"):
        return None
    if before is None:
        tight = {f for f in CONSENT_FIELDS if getattr(consent, f) != "allowed"}
        if consent.revoked_at is not None:
            tight.add("revoked")
        loose: set[str] = set()
        overridden: list[str] = []
    else:
        tight, loose = consent_changes(before, consent)
        overridden = _check_loosening(w, "consent", consent.consent_id, loose, supersede)
    w.upsert("consents", [row], key=["consent_id"])
    isrc = consent.scope_ref if consent.scope == "recording" else None
    return _event(w, kind="consent.recorded" if before is None else ("consent.superseded" if overridden
                                                                      else "consent.amended"),
                  subject_kind="consent", subject_id=consent.consent_id, isrcs=[isrc] if isrc else [],
                  party_ids=[consent.party_id], tightened=tight, loosened=loose, supersedes=overridden,
                  evidence_ref=supersede.evidence_ref if overridden and supersede else consent.evidence_ref,
                  source=source, details={"before": before, "after": row})


# --- recordings ------------------------------------------------------------------------------

def apply_recording(w: Writer, recording: Recording, *, source: str,
                    supersede: Supersession | None = None) -> str | None:
    """Write one recording and its contributors as an event; None when it changes nothing.

    Taking a contributor off a recording loosens it (one consent fewer to require): it conflicts
    with an earlier event that added contributors, unless superseded.
    """
    old = w.con.execute("SELECT iswc, title, ai_generated, ai_evidence FROM recordings WHERE isrc = ?",
                        [recording.isrc]).fetchall()
    old_people = {(p, r): n for p, n, r in w.con.execute(
        "SELECT party_id, name, role FROM recording_contributors WHERE isrc = ?", [recording.isrc]).fetchall()}
    new_people = {(c.party_id, c.role): c.name for c in recording.contributors}
    head = (recording.iswc, recording.title, recording.ai_generated, recording.ai_evidence)
    if old and tuple(old[0]) == head and old_people == new_people:
        return None
    tight: set[str] = set()
    loose: set[str] = set()
    if old:
        if set(new_people) - set(old_people):
            tight.add("contributors")
        if set(old_people) - set(new_people):
            loose.add("contributors")
        if old[0][2] and not recording.ai_generated:
            loose.add("ai_generated")
        if recording.ai_generated and not old[0][2]:
            tight.add("ai_generated")
    overridden = _check_loosening(w, "recording", recording.isrc, loose, supersede) if old else []
    w.upsert("recordings", [{"isrc": recording.isrc, "iswc": recording.iswc, "title": recording.title,
                             "ai_generated": recording.ai_generated, "ai_evidence": recording.ai_evidence,
                             "source": source, "imported_at": datetime.now(UTC)}], key=["isrc"])
    for party_id, role in sorted(set(old_people) - set(new_people)):
        w.supersede("recording_contributors", "isrc = ? AND party_id = ? AND role = ?",
                    [recording.isrc, party_id, role])
    w.upsert("recording_contributors", [{"isrc": recording.isrc, "party_id": p, "name": n, "role": r}
                                        for (p, r), n in sorted(new_people.items())], key=["isrc", "party_id", "role"])
    return _event(w, kind="recording.recorded" if not old else ("recording.superseded" if overridden
                                                                 else "recording.amended"),
                  subject_kind="recording", subject_id=recording.isrc, isrcs=[recording.isrc],
                  party_ids={p for p, _ in new_people} | {p for p, _ in old_people}, tightened=tight, loosened=loose,
                  supersedes=overridden, evidence_ref=supersede.evidence_ref if overridden and supersede else None,
                  source=source, details={"before": {"head": list(old[0]) if old else None,
                                                     "contributors": sorted(map(list, old_people))},
                                          "after": {"head": list(head), "contributors": sorted(map(list, new_people))}})


def apply_recordings(w: Writer, recordings: Sequence[Recording], *, source: str,
                     supersede: Supersession | None = None) -> tuple[list[str], list[str], list[tuple[str, RightsConflict]]]:
    """Write many recordings: those new to the ledger in a few set-based statements, the others one by one
    through :func:`apply_recording`. Returns (event ids, ISRCs unchanged, (ISRC, conflict) refused)."""
    latest = {r.isrc: r for r in recordings}  # a message naming an ISRC twice: its last description wins
    isrcs = sorted(latest)
    known = {r[0] for r in w.con.execute("SELECT isrc FROM recordings WHERE isrc IN (SELECT unnest(?::VARCHAR[]))",
                                         [isrcs]).fetchall()}
    events: list[str] = []
    unchanged: list[str] = []
    refused: list[tuple[str, RightsConflict]] = []
    for isrc in isrcs:
        if isrc in known:
            try:
                event = apply_recording(w, latest[isrc], source=source, supersede=supersede)
            except RightsConflict as exc:
                refused.append((isrc, exc))
                continue
            if event:
                events.append(event)
            else:
                unchanged.append(isrc)
    fresh_all = [latest[i] for i in isrcs if i not in known]
    now = datetime.now(UTC)
    for at in range(0, len(fresh_all), _BATCH):  # batches keep the staged Arrow tables small
        events += _insert_new_recordings(w, fresh_all[at:at + _BATCH], source, now)
    return events, unchanged, refused


_BATCH = 2000


def _insert_new_recordings(w: Writer, fresh: Sequence[Recording], source: str, now: datetime) -> list[str]:
    w.insert("recordings", [{"isrc": r.isrc, "iswc": r.iswc, "title": r.title, "ai_generated": r.ai_generated,
                             "ai_evidence": r.ai_evidence, "source": source, "imported_at": now} for r in fresh])
    people = [{"isrc": r.isrc, "party_id": p, "name": n, "role": role} for r in fresh
              for (p, role), n in sorted({(c.party_id, c.role): c.name for c in r.contributors}.items())]
    w.insert("recording_contributors", people)
    n = w.con.execute("SELECT count(*) FROM rights_events WHERE audit_seq = ?", [w.seq]).fetchall()[0][0]
    rows = []
    for i, r in enumerate(fresh, start=n + 1):
        contributors = sorted({(c.party_id, c.role) for c in r.contributors})
        head = [r.iswc, r.title, r.ai_generated, r.ai_evidence]
        rows.append({"event_id": f"evt-{w.seq}-{i}", "kind": "recording.recorded", "subject_kind": "recording",
                     "subject_id": r.isrc, "isrcs": [r.isrc], "party_ids": sorted({p for p, _ in contributors}),
                     "tightened": [], "loosened": [], "supersedes": [], "evidence_ref": None, "source": source,
                     "details": canonical_json({"before": {"head": None, "contributors": []},
                                                "after": {"head": head, "contributors": [list(c) for c in contributors]}}),
                     "actor": w.actor, "recorded_at": now})
    w.insert("rights_events", rows)
    return [row["event_id"] for row in rows]


def apply_work(w: Writer, work: Work, *, source: str, supersede: Supersession | None = None) -> str | None:
    """Write one musical work with its writers and publishers as an event; None when it changes nothing.

    Like a recording's contributors: adding a writer or publisher tightens (one more consent to
    require), taking one off loosens and conflicts with an earlier addition unless superseded.
    """
    old = w.con.execute("SELECT title FROM works WHERE iswc = ?", [work.iswc]).fetchall()
    old_people = {(p, r): (n, s) for p, n, r, s in w.con.execute(
        "SELECT party_id, name, role, share FROM work_contributors WHERE iswc = ?", [work.iswc]).fetchall()}
    new_people = {(c.party_id, c.role): (c.name, c.share) for c in work.contributors}
    if old and old[0][0] == work.title and old_people == new_people:
        return None
    tight = {"contributors"} if set(new_people) - set(old_people) else set()
    loose = {"contributors"} if old and set(old_people) - set(new_people) else set()
    overridden = _check_loosening(w, "work", work.iswc, loose, supersede) if old else []
    w.upsert("works", [{"iswc": work.iswc, "title": work.title, "source": source}], key=["iswc"])
    for party_id, role in sorted(set(old_people) - set(new_people)):
        w.supersede("work_contributors", "iswc = ? AND party_id = ? AND role = ?", [work.iswc, party_id, role])
    w.upsert("work_contributors", [{"iswc": work.iswc, "party_id": p, "name": n, "role": r, "share": s}
                                   for (p, r), (n, s) in sorted(new_people.items())], key=["iswc", "party_id", "role"])
    isrcs = {r[0] for r in w.con.execute("SELECT isrc FROM recordings WHERE iswc = ?", [work.iswc]).fetchall()}
    return _event(w, kind="work.recorded" if not old else ("work.superseded" if overridden else "work.amended"),
                  subject_kind="work", subject_id=work.iswc, isrcs=isrcs,
                  party_ids={p for p, _ in new_people} | {p for p, _ in old_people}, tightened=tight, loosened=loose,
                  supersedes=overridden, evidence_ref=supersede.evidence_ref if overridden and supersede else None,
                  source=source, details={"before": sorted([*k, *v] for k, v in old_people.items()),
                                          "after": sorted([*k, *v] for k, v in new_people.items())})


def event_isrcs(con: duckdb.DuckDBPyConnection, event_id: str) -> set[str]:
    """The recordings an event concerns (a deal's recordings before and after, a consent's party's)."""
    row = con.execute("SELECT isrcs, party_ids, subject_kind FROM rights_events WHERE event_id = ?",
                      [event_id]).fetchall()
    if not row:
        return set()
    isrcs, parties, kind = row[0]
    out = set(isrcs)
    if kind == "consent":
        for party in parties:
            out |= party_isrcs(con, party)
    return out


def party_isrcs(con: duckdb.DuckDBPyConnection, party_id: str) -> set[str]:
    """ISRCs of the recordings a party contributes to, or controls as a deal's licensor or rights controller
    (a controller's refusal denies), in catalog tracks and rights data alike."""
    return {r[0] for r in con.execute(
        "SELECT t.isrc FROM contributors c JOIN tracks t USING (track_id) WHERE c.party_id = $1 "
        "UNION SELECT isrc FROM recording_contributors WHERE party_id = $1 "
        "UNION SELECT r.isrc FROM work_contributors wc JOIN recordings r ON r.iswc = wc.iswc WHERE wc.party_id = $1 "
        "UNION SELECT isrc FROM rights_controllers WHERE party_id = $1 "
        "UNION SELECT dr.isrc FROM deal_recordings dr JOIN deals d USING (deal_id) WHERE d.licensor_party_id = $1",
        [party_id]).fetchall()}


def history(con: duckdb.DuckDBPyConnection, ref: str) -> list[dict[str, Any]]:
    """Every rights event about a deal, consent, recording (ISRC) or party, oldest first."""
    cursor = con.execute(
        "SELECT event_id, kind, subject_kind, subject_id, isrcs, party_ids, tightened, loosened, supersedes, "
        "evidence_ref, source, details, actor, recorded_at, audit_seq FROM rights_events "
        "WHERE subject_id = ? OR list_contains(isrcs, ?) OR list_contains(party_ids, ?) ORDER BY audit_seq, event_id",
        [ref, ref, ref])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
