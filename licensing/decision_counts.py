"""Counts of the current decisions per evaluation key, kept as they are written.

``decision_counts`` holds, per evaluation key (purpose, territory, date, policy hash) and range of
track ids, how many tracks ``current_decisions`` has denied for each reason (``reason`` a reason
code), denied at all (``*``) and allowed (``''``). The command that writes ``current_decisions``
updates it in the same transaction (:func:`record`): a whole-catalog evaluation replaces the key's
counts, a re-decision of some tracks subtracts the counts of the decisions it replaces and adds
those of the new ones. So counts per reason are a sum over a few hundred rows, and the n-th denied
track lies in a known range of track ids: pages deep in a list of a million tracks read one range,
not the whole list.

A range starts at its ``bucket`` (a track id; '' for the first) and ends where the key's next one
starts. A whole evaluation cuts ranges of about :data:`BUCKET` tracks; a later re-decision keeps them.
The table is derived, not sealed: :func:`mismatches` (run by ``audit verify``) compares it with a
recount of ``current_decisions``; :func:`recount` (``linernotes rights recount``) or a whole evaluation
of a key rebuilds the counts, and a key left without counts by an older version is counted on its
next re-decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import duckdb

from store.ledger import Writer, command
from store.roles import Principal, RoleBook

BUCKET = 1024
Mode = Literal["whole", "delta", "recount"]
_KEY = "purpose = $purpose AND territory = $territory AND on_date = $on_date AND policy_hash = $policy_hash"


def _key(purpose: str, territory: str, on_date: date, policy_hash: str) -> dict[str, Any]:
    return {"purpose": purpose, "territory": territory, "on_date": on_date, "policy_hash": policy_hash}


def _buckets_of(w: Writer, rows: str, params: dict[str, Any] | None = None) -> None:
    """Cut ``rows`` (a query of track ids) into ranges of :data:`BUCKET` tracks on average: a range starts
    at each track id whose hash is 0 modulo :data:`BUCKET` (no sort of the whole list), and at ''."""
    w.execute(f"CREATE OR REPLACE TEMP TABLE _dc_buckets AS SELECT track_id AS bucket FROM ({rows}) "
              f"WHERE hash(track_id) % {BUCKET} = 0 UNION SELECT ''", params)


def counted(w: Writer, *, purpose: str, territory: str, on_date: date, policy_hash: str) -> bool:
    """Whether the key has counts (a ledger written before they were kept has none until it is re-decided)."""
    return bool(w.con.execute(f"SELECT count(*) FROM decision_counts WHERE {_KEY}",
                              _key(purpose, territory, on_date, policy_hash)).fetchall()[0][0])


def capture_replaced(w: Writer, *, purpose: str, territory: str, on_date: date, policy_hash: str) -> None:
    """Keep, in ``_dc_replaced``, the reason codes of the current decisions the evaluated subset replaces
    (call before they are deleted)."""
    w.execute(f"""
        CREATE OR REPLACE TEMP TABLE _dc_replaced AS
        SELECT c.track_id, d.reason_codes FROM current_decisions c
        JOIN (SELECT decision_id, track_id, reason_codes FROM decisions
              WHERE track_id IN (SELECT track_id FROM _eval_rows)) d
          ON d.decision_id = c.decision_id AND d.track_id = c.track_id
        WHERE c.{_KEY.replace(' AND ', ' AND c.')} AND c.track_id IN (SELECT track_id FROM _eval_rows)""",
              _key(purpose, territory, on_date, policy_hash))


def record(w: Writer, *, purpose: str, territory: str, on_date: date, policy_hash: str,
           mode: Mode) -> None:
    """Count the evaluation just written to ``current_decisions`` into ``decision_counts``.

    ``mode``: ``whole`` (``_eval`` is the key's every track: its counts replace the key's),
    ``delta`` (``_eval`` re-decided some tracks whose earlier decisions :func:`capture_replaced` kept:
    theirs are subtracted, the new ones added) or ``recount`` (the key is counted from
    ``current_decisions`` and ``decisions``, as for a key written before counts were kept).
    """
    key = _key(purpose, territory, on_date, policy_hash)
    if mode == "delta":
        w.execute(f"CREATE OR REPLACE TEMP TABLE _dc_buckets AS SELECT DISTINCT bucket FROM decision_counts "
                  f"WHERE {_KEY} UNION SELECT ''", key)
        rows = (f"SELECT bucket, reason, tracks FROM decision_counts WHERE {_KEY} UNION ALL "
                f"SELECT b.bucket, x.reason, x.n FROM ({_reasons('SELECT track_id, reason_codes, -1 AS n FROM _dc_replaced')} "
                f"UNION ALL {_reasons('SELECT track_id, reason_codes, 1 AS n FROM _eval')}) x "
                "ASOF JOIN _dc_buckets b ON x.track_id >= b.bucket")
    elif mode == "whole":
        _buckets_of(w, "SELECT track_id FROM _eval_rows")
        # counted per range and reason mask first, then each mask's few codes: 3x faster than per track and code
        w.execute("CREATE OR REPLACE TEMP TABLE _dc_masks AS SELECT b.bucket, e.mask, count(*) AS n "
                  "FROM _eval_rows e ASOF JOIN _dc_buckets b ON e.track_id >= b.bucket GROUP BY ALL")
        rows = ("SELECT m.bucket, unnest(CASE WHEN len(k.reason_codes) = 0 THEN [''] ELSE list_prepend('*', "
                "k.reason_codes) END) AS reason, m.n AS tracks FROM _dc_masks m JOIN _eval_masks k USING (mask)")
    else:
        current = f"SELECT track_id, decision_id FROM current_decisions WHERE {_KEY}"
        _buckets_of(w, current, key)
        decided = (f"SELECT c.track_id, d.reason_codes, 1 AS n FROM ({current}) c JOIN decisions d "
                   "ON d.decision_id = c.decision_id AND d.track_id = c.track_id")
        rows = f"SELECT b.bucket, x.reason, x.n AS tracks FROM ({_reasons(decided)}) x ASOF JOIN _dc_buckets b ON x.track_id >= b.bucket"
    # Ranges whose count falls to 0 keep their row, so the key's ranges stay those of its last whole count.
    w.execute(f"CREATE OR REPLACE TEMP TABLE _dc_merged AS SELECT bucket, reason, sum(tracks)::BIGINT AS tracks "
              f"FROM ({rows}) GROUP BY ALL", key if mode != "whole" else None)
    w.execute(f"DELETE FROM decision_counts WHERE {_KEY}", key)
    w.execute("INSERT INTO decision_counts SELECT $purpose, $territory, $on_date, $policy_hash, bucket, reason, "
              "tracks FROM _dc_merged", key)


def _reasons(rows: str) -> str:
    """Each row of ``rows`` (track_id, reason_codes, n) once per reason it counts under: '' if allowed,
    else '*' and each of its codes."""
    return ("SELECT track_id, unnest(CASE WHEN len(reason_codes) = 0 THEN [''] "
            f"ELSE list_prepend('*', reason_codes) END) AS reason, n FROM ({rows})")


_RECOUNT = """
    WITH b AS (SELECT DISTINCT purpose, territory, on_date, policy_hash, bucket FROM decision_counts
               UNION SELECT DISTINCT purpose, territory, on_date, policy_hash, '' FROM current_decisions)
    SELECT c.purpose, c.territory, c.on_date, c.policy_hash, b.bucket, c.reason, count(*) AS tracks
    FROM (SELECT c.*, unnest(CASE WHEN len(d.reason_codes) = 0 THEN [''] ELSE list_prepend('*', d.reason_codes) END)
                     AS reason
          FROM current_decisions c JOIN decisions d ON d.decision_id = c.decision_id AND d.track_id = c.track_id) c
    ASOF JOIN b ON b.purpose = c.purpose AND b.territory = c.territory AND b.on_date = c.on_date
        AND b.policy_hash = c.policy_hash AND c.track_id >= b.bucket
    GROUP BY ALL"""


def mismatches(con: duckdb.DuckDBPyConnection, *, limit: int = 20) -> list[tuple[Any, ...]]:
    """Where ``decision_counts`` differs from a recount of ``current_decisions`` (ranges as recorded):
    (purpose, territory, on_date, policy_hash, bucket, reason, recorded, recounted)."""
    return [tuple(r) for r in con.execute(f"""
        WITH fresh AS ({_RECOUNT}),
        kept AS (SELECT * FROM decision_counts WHERE tracks <> 0)
        SELECT coalesce(k.purpose, f.purpose), coalesce(k.territory, f.territory), coalesce(k.on_date, f.on_date),
               coalesce(k.policy_hash, f.policy_hash), coalesce(k.bucket, f.bucket),
               coalesce(k.reason, f.reason), coalesce(k.tracks, 0), coalesce(f.tracks, 0)
        FROM kept k FULL JOIN fresh f ON f.purpose = k.purpose AND f.territory = k.territory
            AND f.on_date = k.on_date AND f.policy_hash = k.policy_hash AND f.bucket = k.bucket
            AND f.reason = k.reason
        WHERE k.tracks IS DISTINCT FROM f.tracks
        ORDER BY ALL LIMIT ?""", [limit]).fetchall()]


def recount(con: duckdb.DuckDBPyConnection, *, actor: Principal | str, roles: RoleBook | None = None) -> int:
    """Count every evaluation key anew from ``current_decisions`` (a ledger written before counts were kept,
    or counts ``audit verify`` found changed): one command, permission ``rights.evaluate``, audited as
    ``rights.recount``. Returns how many keys were counted."""
    keys = con.execute("SELECT DISTINCT purpose, territory, on_date, policy_hash FROM current_decisions "
                       "ORDER BY ALL").fetchall()
    with command(con, actor, "rights.evaluate", "decision_counts", roles=roles, record_as="rights.recount") as w:
        w.execute("DELETE FROM decision_counts")
        for purpose, territory, on_date, policy_hash in keys:
            record(w, purpose=purpose, territory=territory, on_date=on_date, policy_hash=policy_hash, mode="recount")
        w.payload["keys"] = [[p, t, d.isoformat(), h] for p, t, d, h in keys]
    return len(keys)


# --- reads ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """Where a page of denied tracks lies: from ``start`` (inclusive; after it when ``exclusive``) up to
    ``stop`` (exclusive; None: to the end), skipping ``skip`` tracks first."""

    start: str
    stop: str | None
    skip: int
    exclusive: bool = False


def latest_date(con: duckdb.DuckDBPyConnection, purpose: str, territory: str) -> date | None:
    row = con.execute("SELECT max(on_date) FROM decision_counts WHERE purpose = ? AND territory = ?",
                      [purpose, territory]).fetchone()
    return row[0] if row else None


def decided_keys(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Every (purpose, territory) with current decisions."""
    return [(p, t) for p, t in con.execute("SELECT DISTINCT purpose, territory FROM decision_counts WHERE tracks > 0 "
                                           "ORDER BY 1, 2").fetchall()]


def policy_hashes(con: duckdb.DuckDBPyConnection, purpose: str, territory: str, on_date: date) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT policy_hash FROM decision_counts WHERE purpose = ? AND "
                                      "territory = ? AND on_date = ? AND tracks > 0 ORDER BY 1",
                                      [purpose, territory, on_date]).fetchall()]


def _where(policy_hash: str | None) -> str:
    return ("purpose = $purpose AND territory = $territory AND on_date = $on_date"
            + (" AND policy_hash = $policy_hash" if policy_hash is not None else ""))


def denied_by_reason(con: duckdb.DuckDBPyConnection, purpose: str, territory: str, on_date: date,
                     policy_hash: str | None = None) -> tuple[int, dict[str, int]]:
    """(tracks denied, tracks denied per reason, most frequent first) for the key (every policy hash when None)."""
    params = {"purpose": purpose, "territory": territory, "on_date": on_date}
    if policy_hash is not None:
        params["policy_hash"] = policy_hash
    where = _where(policy_hash)
    counts = dict(con.execute(f"SELECT reason, sum(tracks)::BIGINT AS n FROM decision_counts WHERE {where} "
                              "AND reason <> '' GROUP BY reason HAVING n > 0 ORDER BY n DESC, reason", params).fetchall())
    return int(counts.pop("*", 0)), counts


def _ranges(con: duckdb.DuckDBPyConnection, key: dict[str, Any], reason: str | None) -> list[tuple[str, int]]:
    """(range start, denied tracks in it, only those denied for ``reason`` when given), in track-id order."""
    return [(b, int(n)) for b, n in con.execute(
        f"SELECT bucket, sum(tracks) FILTER (WHERE reason = $reason) FROM decision_counts WHERE {_KEY} "
        "GROUP BY bucket ORDER BY bucket", {**key, "reason": reason or "*"}).fetchall()]


def window(con: duckdb.DuckDBPyConnection, purpose: str, territory: str, on_date: date, policy_hash: str, *,
           size: int, skip: int = 0, after: str | None = None, reason: str | None = None) -> Window | None:
    """The track-id range holding ``size`` denied tracks of the key from the ``skip``-th on (or those after
    the track id ``after``), only those denied for ``reason`` when given; None past the last one."""
    ranges = _ranges(con, _key(purpose, territory, on_date, policy_hash), reason)
    if not ranges:  # nothing counted for this key: the whole list
        return Window(after or "", None, 0 if after is not None else skip, exclusive=after is not None)
    starts = [b for b, _ in ranges]
    if after is not None:
        # tracks after ``after`` in its own range are not counted: the ranges after it must hold the page
        start, skip_in, exclusive, need = after, 0, True, size
        i = max(i for i, b in enumerate(starts) if b <= after) + 1
    else:
        seen, i = 0, 0
        while i < len(ranges) and seen + ranges[i][1] <= skip:
            seen += ranges[i][1]
            i += 1
        if i == len(ranges):
            return None
        start, skip_in, exclusive = starts[i], skip - seen, False
        need = skip_in + size - ranges[i][1]
        i += 1
    while i < len(ranges) and need > 0:
        need -= ranges[i][1]
        i += 1
    return Window(start, starts[i] if i < len(ranges) else None, skip_in, exclusive)


def window_sql(win: Window, column: str = "track_id") -> tuple[str, dict[str, Any]]:
    """The SQL condition (and its parameters) selecting a :class:`Window`'s track ids."""
    cond = f"{column} {'>' if win.exclusive else '>='} $w_start"
    params: dict[str, Any] = {"w_start": win.start}
    if win.stop is not None:
        cond += f" AND {column} < $w_stop"
        params["w_stop"] = win.stop
    return cond, params
