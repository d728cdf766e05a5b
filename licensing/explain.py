"""Why a recording is or is not allowed for a use: the decision with its evidence."""

from __future__ import annotations

from datetime import date

import duckdb

from licensing.evaluate import evaluate_track, load_facts, recording_facts
from licensing.parties import describe_party
from schemas.decisions import Decision
from schemas.identifiers import normalize_isrc
from schemas.policy import Policy


def explain(con: duckdb.DuckDBPyConnection, isrc: str, *, purpose: str, territory: str, on_date: date,
            policy: Policy) -> Decision:
    """Decide one ISRC with the reference evaluator (first catalog track with it, else the rights data alone)."""
    return explain_all(con, isrc, purpose=purpose, territory=territory, on_date=on_date, policy=policy)[0]


def explain_all(con: duckdb.DuckDBPyConnection, isrc: str, *, purpose: str, territory: str, on_date: date,
                policy: Policy) -> list[Decision]:
    """One decision per catalog track carrying this ISRC (or one for the bare recording if none)."""
    isrc = normalize_isrc(isrc)
    facts = list(load_facts(con, isrc=isrc)) or [recording_facts(con, isrc)]
    return [evaluate_track(f, policy, purpose=purpose, territory=territory, on_date=on_date) for f in facts]


_FINDING_TEXT = {
    "consent_missing": "{who} has no {field} consent",
    "consent_not_allowed": "{who} does not allow {field}",
    "consent_constrained": "{who} allows {field} only with constraints",
    "consent_revoked": "{who} revoked {field} consent",
    "rights_controller_refused": "{who}, a rights controller of the recording, refuses {field}",
}


def consent_denials(con: duckdb.DuckDBPyConnection, decision: Decision) -> list[str]:
    """Each consent finding of a decision naming its party, e.g.
    ``consent_missing: Mattias (ISNI 0000000121478395) has no ai_generative_training consent``."""
    out = []
    for finding in decision.evidence.get("consent_findings") or []:
        text = _FINDING_TEXT.get(finding["code"], "{who}: {field}")
        who = describe_party(con, finding["party_id"])
        out.append(f"{finding['code']}: " + text.format(who=who, field=finding["consent_field"]))
    return out
