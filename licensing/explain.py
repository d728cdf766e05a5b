"""Why a recording is or is not allowed for a use: the decision with its evidence."""

from __future__ import annotations

from datetime import date

import duckdb

from licensing.evaluate import evaluate_track, load_facts, recording_facts
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
