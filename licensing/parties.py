"""One party per person or company: matching parties across sources, and merging the ones that slipped through.

A party arriving from a rights file or a DDEX message is matched to a party already recorded by
its identifiers, in this order: ISNI, IPI name number, DDEX Party Identifier (DPID). Only when the
importer asks for it (``match_names``) does an exact normalised name (Unicode NFKC, case-folded,
white space collapsed) match, and only when exactly one recorded party carries that name. Two
records of one person with nothing in common are joined by :func:`merge_parties`, audited, with
evidence; the merged id is remembered so later records naming it land on the surviving party.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from licensing import records
from licensing.evaluate import redecide
from schemas.rights import Party
from store.ledger import Writer, command
from store.roles import Principal, RoleBook

_SPACE = re.compile(r"\s+")


class PartyMergeError(ValueError):
    """A merge that cannot be done (unknown party, the same party, conflicting identifiers)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalise_name(name: str) -> str:
    """The form names are compared in: NFKC, case-folded, white space collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", name).casefold()).strip()


def canonical_party(con: duckdb.DuckDBPyConnection, party_id: str) -> str:
    """The surviving party of ``party_id`` (itself unless it was merged into another)."""
    seen = {party_id}
    while True:
        row = con.execute("SELECT into_party_id FROM party_merges WHERE merged_party_id = ?", [party_id]).fetchone()
        if row is None or row[0] in seen:
            return party_id
        party_id = row[0]
        seen.add(party_id)


@dataclass
class Resolution:
    """Incoming party ids mapped to recorded ones, the parties to write, and how each was matched."""

    ids: dict[str, str] = field(default_factory=dict)
    parties: dict[str, Party] = field(default_factory=dict)
    matched: dict[str, str] = field(default_factory=dict)  # incoming id -> "isni" | "ipi" | "dpid" | "name" | "merge"

    def map(self, party_id: str) -> str:
        return self.ids.get(party_id, party_id)


def _find(con: duckdb.DuckDBPyConnection, party: Party, match_names: bool) -> tuple[str, str] | None:
    for column in ("isni", "ipi", "dpid"):
        value = getattr(party, column)
        if value:
            row = con.execute(f"SELECT party_id FROM parties WHERE {column} = ? ORDER BY party_id LIMIT 1",
                              [value]).fetchone()
            if row is not None:
                return row[0], column
    if match_names:
        rows = con.execute("SELECT party_id, name FROM parties").fetchall()
        wanted = normalise_name(party.name)
        hits = sorted(pid for pid, name in rows if normalise_name(name) == wanted)
        if len(hits) == 1:
            return hits[0], "name"
    return None


def _combine(kept: Party, other: Party) -> Party:
    return kept.model_copy(update={"isni": kept.isni or other.isni, "ipi": kept.ipi or other.ipi,
                                   "dpid": kept.dpid or other.dpid})


def resolve_parties(con: duckdb.DuckDBPyConnection, incoming: Iterable[Party], *, match_names: bool = False) -> Resolution:
    """Match incoming parties to recorded ones (and to each other) by identifier, and by name if asked."""
    out = Resolution()
    for party in incoming:
        target, how = canonical_party(con, party.party_id), "merge"
        exists = con.execute("SELECT name, isni, ipi, dpid FROM parties WHERE party_id = ?", [target]).fetchone()
        if exists is None:
            found = _find(con, party, match_names)
            if found is None:
                # a party seen earlier in the same batch under another id, by a shared identifier
                for other in out.parties.values():
                    if any(getattr(party, c) and getattr(party, c) == getattr(other, c) for c in ("isni", "ipi", "dpid")):
                        found = (other.party_id, "same batch")
                        break
            if found is not None:
                target, how = found
                exists = con.execute("SELECT name, isni, ipi, dpid FROM parties WHERE party_id = ?",
                                     [target]).fetchone()
            else:
                target, how = party.party_id, ""
        if target != party.party_id:
            out.matched[party.party_id] = how
        out.ids[party.party_id] = target
        if target in out.parties:
            out.parties[target] = _combine(out.parties[target], party)
        elif exists is not None and target != party.party_id:
            name, isni, ipi, dpid = exists
            recorded = Party(party_id=target, name=name, isni=isni, ipi=ipi, dpid=dpid)
            out.parties[target] = _combine(recorded, party)
        else:
            out.parties[target] = party.model_copy(update={"party_id": target})
    return out


# --- merging ---------------------------------------------------------------------------------

# Tables naming a party, with the key columns besides the party column (a merge that would make two
# rows share a key keeps one: for rights-controller shares, their sum).
_REFERENCES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("consents", "party_id", ()),
    ("deals", "licensor_party_id", ()),
    ("recording_contributors", "party_id", ("isrc", "role")),
    ("rights_controllers", "party_id", ("deal_id", "isrc")),
    ("contributors", "party_id", ("track_id", "role")),
    ("work_contributors", "party_id", ("iswc", "role")),
)


def _party(con: duckdb.DuckDBPyConnection, party_id: str) -> Party | None:
    row = con.execute("SELECT name, isni, ipi, dpid FROM parties WHERE party_id = ?", [party_id]).fetchone()
    return None if row is None else Party(party_id=party_id, name=row[0], isni=row[1], ipi=row[2], dpid=row[3])


def _repoint(w: Writer, table: str, column: str, key: tuple[str, ...], old: str, new: str) -> int:
    """Point the rows of ``table`` naming ``old`` at ``new`` (old versions to history); return how many."""
    if not key:
        return w.update(table, f'"{column}" = ?', [old], {column: new})
    match = " AND ".join(f'o."{k}" = n."{k}"' for k in key)
    clash = (f'"{column}" = ? AND EXISTS (SELECT 1 FROM "{table}" n WHERE n."{column}" = ? AND '
             + " AND ".join(f'n."{k}" = "{table}"."{k}"' for k in key) + ")")
    if table == "rights_controllers":
        summed = w.con.execute(
            f'SELECT o.deal_id, o.isrc, o.share + n.share FROM "{table}" o JOIN "{table}" n ON {match} '
            f'WHERE o."{column}" = ? AND n."{column}" = ?', [old, new]).fetchall()
        for deal_id, isrc, share in summed:
            w.update(table, f'"{column}" = ? AND deal_id = ? AND isrc = ?', [new, deal_id, isrc], {"share": share})
    moved = w.supersede(table, clash, [old, new])
    return moved + w.update(table, f'"{column}" = ?', [old], {column: new})


def merge_parties(con: duckdb.DuckDBPyConnection, keep: str, merge: str, *, actor: Principal | str,
                  evidence_ref: str, reason: str = "", roles: RoleBook | None = None) -> dict[str, Any]:
    """Merge party ``merge`` into ``keep``: every deal, consent, contribution and share of ``merge`` now names
    ``keep``, which gains its identifiers; one ``rights.parties.merge`` command with a rights event.

    Raises :class:`PartyMergeError` for an unknown or identical party, or identifiers that disagree
    (two different ISNIs are two people).
    """
    keep, merge = keep.strip(), merge.strip()
    if not evidence_ref.strip():
        raise PartyMergeError("evidence_missing", "a merge needs --evidence-ref: where the proof of identity is kept")
    with command(con, actor, "rights.parties.merge", f"party {merge} -> {keep}", roles=roles) as w:
        kept, gone = _party(w.con, canonical_party(w.con, keep)), _party(w.con, canonical_party(w.con, merge))
        if kept is None or gone is None:
            missing = keep if kept is None else merge
            raise PartyMergeError("party_unknown", f"no recorded party {missing!r}")
        if kept.party_id == gone.party_id:
            raise PartyMergeError("party_same", f"{merge} and {keep} are already one party ({kept.party_id})")
        clashes = [f"{c} {getattr(kept, c)} vs {getattr(gone, c)}" for c in ("isni", "ipi", "dpid")
                   if getattr(kept, c) and getattr(gone, c) and getattr(kept, c) != getattr(gone, c)]
        if clashes:
            raise PartyMergeError("party_identifiers_conflict", f"{kept.party_id} and {gone.party_id} carry different "
                                                                f"identifiers ({'; '.join(clashes)}): not one party")
        isrcs = records.party_isrcs(w.con, gone.party_id) | records.party_isrcs(w.con, kept.party_id)
        isrcs |= {r[0] for r in w.con.execute(
            "SELECT DISTINCT isrc FROM rights_controllers WHERE party_id = ? UNION SELECT DISTINCT dr.isrc FROM "
            "deal_recordings dr JOIN deals d USING (deal_id) WHERE d.licensor_party_id = ?",
            [gone.party_id, gone.party_id]).fetchall()}
        merged = _combine(kept, gone)
        if merged != kept:
            w.update("parties", "party_id = ?", [kept.party_id],
                     {"isni": merged.isni, "ipi": merged.ipi, "dpid": merged.dpid})
        moved = {table: _repoint(w, table, column, key, gone.party_id, kept.party_id)
                 for table, column, key in _REFERENCES}
        w.supersede("parties", "party_id = ?", [gone.party_id])
        # earlier merges into the merged party now point at the survivor
        w.update("party_merges", "into_party_id = ?", [gone.party_id], {"into_party_id": kept.party_id})
        now = datetime.now(UTC)
        w.insert("party_merges", [{"merged_party_id": gone.party_id, "into_party_id": kept.party_id,
                                   "evidence_ref": evidence_ref, "reason": reason, "merged_by": w.actor,
                                   "merged_at": now}])
        event = records.record_event(
            w, kind="party.merged", subject_kind="party", subject_id=kept.party_id, isrcs=isrcs,
            party_ids=[kept.party_id, gone.party_id], evidence_ref=evidence_ref, source="rights parties merge",
            details={"merged": gone.model_dump(), "into": kept.model_dump(), "moved": moved, "reason": reason})
        summary: dict[str, Any] = {"kept": kept.party_id, "merged": gone.party_id, "moved": moved, "event": event,
                                   "evidence_ref": evidence_ref}
        summary["redecided"] = redecide(w, isrcs)
        w.payload.update(summary)
    return summary


def describe_party(con: duckdb.DuckDBPyConnection, party_id: str) -> str:
    """``Name (ISNI ...)``: how a denial names a party (its id when nothing better is known)."""
    party = _party(con, canonical_party(con, party_id))
    if party is None:
        return party_id
    ids = [f"{label} {value}" for label, value in (("ISNI", party.isni), ("IPI", party.ipi), ("DPID", party.dpid))
           if value]
    return f"{party.name} ({', '.join(ids) if ids else party.party_id})"
