"""Lyrics licences: recorded by the rights team, decided per recording for a release's use.

Lyrics are a modality of their own: the publisher licenses them, separately from the recording.
:func:`decide_lyrics` answers, for each ISRC, whether its lyrics may ship with a release's purpose,
territory and date, deny by default, with its own reason code when not (no lyrics in the rights
data, no licence in force, purpose or territory not licensed, revoked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

import duckdb
from pydantic import BaseModel, ConfigDict

from schemas.text import LyricsLicence, LyricsStatus
from store.ledger import command
from store.roles import Principal, RoleBook

__all__ = ["LyricsDecision", "decide_lyrics", "record_lyrics_licences", "revoke_lyrics_licence"]


class LyricsDecision(BaseModel):
    """Whether a recording's lyrics may ship, and if so which licence and text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    isrc: str
    status: LyricsStatus
    licence_id: str | None = None
    lyrics: str | None = None
    publisher_name: str | None = None
    license: str | None = None
    explanation: str

    @property
    def allowed(self) -> bool:
        return self.status == "included"


def record_lyrics_licences(con: duckdb.DuckDBPyConnection, licences: Sequence[LyricsLicence], *,
                           actor: Principal | str, source: str, roles: RoleBook | None = None) -> int:
    """Record publishers' lyrics licences (``lyrics.license``); a licence id seen before is replaced."""
    now = datetime.now(UTC)
    rows = [{**lic.model_dump(exclude={"schema_version"}), "purposes": list(lic.purposes),
             "territories": list(lic.territories),
             "lyrics_sha256": hashlib.sha256(lic.lyrics.encode("utf-8")).hexdigest(),
             "recorded_by": "", "recorded_at": now, "revoked_at": None} for lic in licences]
    with command(con, actor, "lyrics.license", source, roles=roles) as w:
        for row in rows:
            row["recorded_by"] = w.actor
        written, same = w.upsert("lyrics_licences", rows, key=["licence_id"])
        w.payload.update({"source": source, "licences": sorted(r["licence_id"] for r in rows),
                          "written": written, "unchanged": same})
    return written


def revoke_lyrics_licence(con: duckdb.DuckDBPyConnection, licence_id: str, *, actor: Principal | str,
                          reason: str, roles: RoleBook | None = None) -> None:
    """Mark a lyrics licence revoked (``lyrics.revoke``); the old version stays in history."""
    with command(con, actor, "lyrics.revoke", licence_id, roles=roles) as w:
        changed = w.update("lyrics_licences", "licence_id = ? AND revoked_at IS NULL", [licence_id],
                           {"revoked_at": datetime.now(UTC)})
        if not changed:
            raise KeyError(f"no lyrics licence {licence_id!r} in force")
        w.payload["reason"] = reason


def decide_lyrics(con: duckdb.DuckDBPyConnection, isrcs: Iterable[str], *, purpose: str, territory: str,
                  on_date: date) -> dict[str, LyricsDecision]:
    """For each ISRC, the lyrics that may ship for this purpose, territory and date, or why none may."""
    wanted = sorted(set(isrcs))
    found: dict[str, list[tuple]] = {}
    for row in con.execute(
            "SELECT isrc, licence_id, publisher_name, license, purposes, territories, valid_from, valid_to, lyrics, "
            "revoked_at FROM lyrics_licences WHERE isrc IN (SELECT unnest(?::VARCHAR[])) ORDER BY licence_id",
            [wanted]).fetchall():
        found.setdefault(row[0], []).append(row)
    out: dict[str, LyricsDecision] = {}
    for isrc in wanted:
        rows = found.get(isrc, [])
        if not rows:
            out[isrc] = LyricsDecision(isrc=isrc, status="not_in_rights_data",
                                       explanation="the rights data carry no lyrics for this recording")
            continue
        verdicts = [_judge(row, purpose, territory, on_date) for row in rows]
        allowed = [v for v in verdicts if v.allowed]
        # Deny by default: one licence in force that covers the use is needed; else the first reason found.
        out[isrc] = allowed[0] if allowed else verdicts[0]
    return out


_ORDER: tuple[LyricsStatus, ...] = ("licence_revoked", "licence_not_in_force", "purpose_not_licensed",
                                    "territory_not_licensed")


def _judge(row: tuple, purpose: str, territory: str, on_date: date) -> LyricsDecision:
    isrc, licence_id, publisher, license_, purposes, territories, valid_from, valid_to, lyrics, revoked_at = row
    base = {"isrc": isrc, "licence_id": licence_id, "publisher_name": publisher, "license": license_}
    if revoked_at is not None:
        return LyricsDecision(status="licence_revoked", explanation=f"{licence_id} was revoked on {revoked_at:%Y-%m-%d}",
                              **base)
    if (valid_from and on_date < valid_from) or (valid_to and on_date > valid_to):
        return LyricsDecision(status="licence_not_in_force",
                              explanation=f"{licence_id} runs {valid_from or '...'} to {valid_to or '...'}, "
                                          f"not on {on_date}", **base)
    if purpose not in purposes:
        return LyricsDecision(status="purpose_not_licensed",
                              explanation=f"{licence_id} licenses {', '.join(purposes)}, not {purpose}", **base)
    if territory not in territories and "Worldwide" not in territories:
        return LyricsDecision(status="territory_not_licensed",
                              explanation=f"{licence_id} covers {', '.join(territories)}, not {territory}", **base)
    return LyricsDecision(status="included", lyrics=lyrics,
                          explanation=f"{publisher} licenses the lyrics under {license_} ({licence_id})", **base)
