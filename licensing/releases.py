"""Training releases: a frozen set of allowed tracks, proposed by an ML engineer, approved by the rights team.

The proposer cannot approve. Every proposal, approval, rejection and refusal is audit-logged.
A release stays usable only while its tracks stay allowed: :mod:`licensing.gate` re-decides them
against today's deals and consents whenever it is built, served or trained on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb

from licensing import decision_counts
from licensing.evaluate import decide, require_purpose
from licensing.gate import denied_tracks
from schemas.canonical import canonical_json, sha256_text
from schemas.identifiers import normalize_territory
from schemas.policy import Policy
from schemas.releases import Approval, Release, ReleaseTrack
from store.ledger import authorize, command, record_refusal
from store.roles import Principal, RoleBook, RoleRefused

ACTIVE = ("proposed", "approved")


class ReleaseError(Exception):
    """A release action that cannot be carried out (unknown release, wrong state, empty release)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ApprovalRefused(ReleaseError):
    """The actor may not perform this action; the refusal itself is audit-logged."""


def _today() -> date:
    return datetime.now(UTC).date()


def _refuse(con: duckdb.DuckDBPyConnection, *, actor: Principal | str, action: str, subject: str, code: str,
            message: str) -> None:
    record_refusal(con, actor, f"release.{action}", subject, code=code, message=message)
    raise ApprovalRefused(code, message)


def _require_role(con: duckdb.DuckDBPyConnection, roles: RoleBook | None, actor: Principal | str, action: str,
                  subject: str) -> None:
    try:
        authorize(con, actor, f"release.{action}", subject, roles=roles)
    except RoleRefused as exc:
        raise ApprovalRefused(exc.code, exc.message) from exc


def propose_release(con: duckdb.DuckDBPyConnection, *, purpose: str, territory: str, on_date: date,
                    actor: Principal | str, policy: Policy, release_id: str | None = None,
                    roles: RoleBook | None = None) -> Release:
    """Decide the catalog and freeze the currently allowed tracks, with their decision ids, as a release.

    One ``release.propose`` command: the decisions it rests on are recorded with it. Raises
    :class:`ReleaseError` for an unknown purpose, an invalid territory or an empty release.
    """
    subject = release_id or f"{purpose}/{territory}/{on_date}"
    _require_role(con, roles, actor, "propose", subject)
    try:
        require_purpose(policy, purpose)
        territory = normalize_territory(territory)
    except ValueError as exc:
        code = "purpose_unknown" if purpose not in policy.purposes else "invalid_territory"
        _refuse(con, actor=actor, action="propose", subject=subject, code=code, message=str(exc))
    if release_id is not None and con.execute("SELECT 1 FROM releases WHERE release_id = ?", [release_id]).fetchone():
        _refuse(con, actor=actor, action="propose", subject=subject, code="release_exists",
                message=f"release {release_id} already exists")
    try:
        return _propose(con, purpose=purpose, territory=territory, on_date=on_date, actor=actor, policy=policy,
                        release_id=release_id, roles=roles, subject=subject)
    except ReleaseError as exc:
        if not isinstance(exc, ApprovalRefused):
            record_refusal(con, actor, "release.propose", subject, code=exc.code, message=exc.message)
        raise


def _propose(con: duckdb.DuckDBPyConnection, *, purpose: str, territory: str, on_date: date, actor: Principal | str,
             policy: Policy, release_id: str | None, roles: RoleBook | None, subject: str) -> Release:
    with command(con, actor, "release.propose", subject, roles=roles) as w:
        summary = decide(w, policy, purpose=purpose, territory=territory, on_date=on_date)
        rows = con.execute(
            "SELECT c.track_id, t.isrc, c.decision_id FROM current_decisions c JOIN tracks t USING (track_id) "
            "WHERE c.purpose = ? AND c.territory = ? AND c.on_date = ? AND c.policy_hash = ? AND c.allowed "
            "ORDER BY c.track_id", [purpose, territory, on_date, policy.content_hash]).fetchall()
        if not rows:
            raise ReleaseError("release_empty", f"no track is allowed for {purpose} in {territory} on {on_date}; "
                                                f"denials by reason: {summary.by_reason}")
        content = {"purpose": purpose, "territory": territory, "on_date": on_date.isoformat(),
                   "policy_hash": policy.content_hash, "tracks": [list(r) for r in rows]}
        content_sha = sha256_text(canonical_json(content))
        proposed_at = datetime.now(UTC)
        release_id = release_id or f"rel-{on_date:%Y%m%d}-{sha256_text(content_sha + proposed_at.isoformat())[:10]}"
        w.subject = release_id
        w.insert("releases", [{"release_id": release_id, "purpose": purpose, "territory": territory,
                               "on_date": on_date, "policy_hash": policy.content_hash, "status": "proposed",
                               "proposed_by": w.actor, "proposed_at": proposed_at, "track_count": len(rows),
                               "content_sha256": content_sha}])
        w.insert_query("release_tracks", "SELECT ? AS release_id, track_id, t.isrc, decision_id FROM current_decisions c "
                                         "JOIN tracks t USING (track_id) WHERE c.purpose = ? AND c.territory = ? "
                                         "AND c.on_date = ? AND c.policy_hash = ? AND c.allowed",
                       [release_id, purpose, territory, on_date, policy.content_hash])
        w.payload.update({"release_id": release_id, "purpose": purpose, "territory": territory,
                          "on_date": on_date.isoformat(), "policy_hash": policy.content_hash,
                          "track_count": len(rows), "content_sha256": content_sha,
                          "denied_by_reason": summary.by_reason})
    return _must_get(con, release_id)


def get_release(con: duckdb.DuckDBPyConnection, release_id: str, *, with_tracks: bool = True) -> Release | None:
    """The release with its tracks and approval trail, or None."""
    row = con.execute("SELECT release_id, purpose, territory, on_date, policy_hash, status, proposed_by, proposed_at, "
                      "track_count, content_sha256 FROM releases WHERE release_id = ?", [release_id]).fetchone()
    if row is None:
        return None
    keys = ["release_id", "purpose", "territory", "on_date", "policy_hash", "status", "proposed_by", "proposed_at",
            "track_count", "content_sha256"]
    data = dict(zip(keys, row, strict=True))
    tracks = con.execute("SELECT track_id, isrc, decision_id FROM release_tracks WHERE release_id = ? ORDER BY track_id",
                         [release_id]).fetchall() if with_tracks else []
    approvals = con.execute("SELECT release_id, actor, action, comment, recorded_at FROM approvals "
                            "WHERE release_id = ? ORDER BY recorded_at", [release_id]).fetchall()
    return Release(**data,
                   tracks=tuple(ReleaseTrack(track_id=t, isrc=i, decision_id=d) for t, i, d in tracks),
                   approvals=tuple(Approval(release_id=a[0], actor=a[1], action=a[2], comment=a[3], recorded_at=a[4])
                                   for a in approvals))


def _must_get(con: duckdb.DuckDBPyConnection, release_id: str) -> Release:
    release = get_release(con, release_id)
    if release is None:
        raise ReleaseError("release_unknown", f"no release {release_id}")
    return release


def list_releases(con: duckdb.DuckDBPyConnection, *, status: str | None = None) -> list[Release]:
    ids = con.execute("SELECT release_id FROM releases WHERE ? IS NULL OR status = ? ORDER BY proposed_at",
                      [status, status]).fetchall()
    return [r for (rid,) in ids if (r := get_release(con, rid, with_tracks=False)) is not None]


def _decide(con: duckdb.DuckDBPyConnection, release_id: str, *, actor: Principal | str, comment: str, action: str,
            new_status: str, roles: RoleBook | None, allowed_from: tuple[str, ...],
            on_date: date | None = None) -> Release:
    release = get_release(con, release_id, with_tracks=False)
    if release is None:
        raise ReleaseError("release_unknown", f"no release {release_id}")
    _require_role(con, roles, actor, action, release_id)
    name = actor.name if isinstance(actor, Principal) else actor
    if name == release.proposed_by:
        _refuse(con, actor=actor, action=action, subject=release_id, code="same_person",
                message=f"{name} proposed {release_id} and cannot also {action} it")
    if not comment or not comment.strip():
        _refuse(con, actor=actor, action=action, subject=release_id, code="comment_required",
                message=f"{action} needs a comment saying why")
    if release.status not in allowed_from:
        _refuse(con, actor=actor, action=action, subject=release_id, code="wrong_status",
                message=f"{release_id} is {release.status}; only {'/'.join(allowed_from)} releases can be {new_status}")
    if action == "approve":
        denied = denied_tracks(con, release_id, on_date=on_date) or ()
        if denied:
            _refuse(con, actor=actor, action=action, subject=release_id, code="tracks_now_denied",
                    message=f"{len(denied)} track(s) of {release_id} are denied now (e.g. {denied[0].isrc}: "
                            f"{', '.join(denied[0].reason_codes)}); propose a new release")
    with command(con, actor, f"release.{action}", release_id, roles=roles) as w:
        w.update("releases", "release_id = ?", [release_id], {"status": new_status})
        w.insert("approvals", [{"release_id": release_id, "actor": w.actor, "action": action,
                                "comment": comment.strip(), "recorded_at": datetime.now(UTC)}])
        w.payload.update({"comment": comment, "from_status": release.status, "to_status": new_status,
                          "content_sha256": release.content_sha256, "policy_hash": release.policy_hash})
    return _must_get(con, release_id)


def approve_release(con: duckdb.DuckDBPyConnection, release_id: str, *, actor: str, comment: str,
                    roles: RoleBook | None = None, on_date: date | None = None) -> Release:
    """Rights-team approval; refused for the proposer, without a comment, or if a track is denied now.

    "Now" is ``on_date`` if given, else the later of today and the release date.
    """
    return _decide(con, release_id, actor=actor, comment=comment, action="approve", new_status="approved",
                   roles=roles, allowed_from=("proposed",), on_date=on_date)


def reject_release(con: duckdb.DuckDBPyConnection, release_id: str, *, actor: str, comment: str,
                   roles: RoleBook | None = None) -> Release:
    """Rights-team rejection of a proposed release, with the reason."""
    return _decide(con, release_id, actor=actor, comment=comment, action="reject", new_status="rejected",
                   roles=roles, allowed_from=("proposed",))


def revoke_release(con: duckdb.DuckDBPyConnection, release_id: str, *, actor: str, comment: str,
                   roles: RoleBook | None = None) -> Release:
    """Rights-team withdrawal of an approved release (no further shards or training from it)."""
    return _decide(con, release_id, actor=actor, comment=comment, action="revoke", new_status="revoked",
                   roles=roles, allowed_from=("approved",))


def tracks_without_allow(con: duckdb.DuckDBPyConnection, release_id: str) -> list[str]:
    """ISRCs in the release whose frozen decision is missing, a deny, or for another purpose."""
    rows = con.execute(
        """
        SELECT rt.isrc FROM release_tracks rt
        JOIN releases r USING (release_id)
        LEFT JOIN decisions d ON d.decision_id = rt.decision_id AND d.purpose = r.purpose
        WHERE rt.release_id = ? AND NOT coalesce(d.allowed, false)
        ORDER BY rt.isrc
        """,
        [release_id],
    ).fetchall()
    return [isrc for (isrc,) in rows]




def baseline_release(con: duckdb.DuckDBPyConnection, release_id: str) -> str | None:
    """The last release approved before this one for the same purpose and territory (the review's baseline)."""
    row = con.execute(
        "SELECT b.release_id FROM releases r JOIN releases b ON b.purpose = r.purpose AND b.territory = r.territory "
        "AND b.release_id <> r.release_id AND b.status = 'approved' AND b.proposed_at <= r.proposed_at "
        "WHERE r.release_id = ? ORDER BY b.proposed_at DESC LIMIT 1", [release_id]).fetchone()
    return row[0] if row else None


def _by_track(con: duckdb.DuckDBPyConnection, select: str, track_ids: list[str]) -> list[tuple[object, ...]]:
    """``select`` for the rows of ``track_ids``, looked up by the track-id index in lists of 50 (DuckDB
    scans the whole table instead for a longer list)."""
    found: list[tuple[object, ...]] = []
    for at in range(0, len(track_ids), 50):
        found += con.execute(f"{select} WHERE track_id = ANY(?::VARCHAR[])", [track_ids[at:at + 50]]).fetchall()
    return found


def _current_denials(con: duckdb.DuckDBPyConnection, track_ids: list[str],
                     key: dict[str, object]) -> list[tuple[object, ...]]:
    """(track_id, decision_id) of the current denial of each of ``track_ids`` (all denied now) for the
    evaluation key: found in ``decisions`` by its track-id index where the key has one denial for the track,
    in ``current_decisions`` only for tracks re-decided to another denial."""
    if not track_ids:
        return []
    params = {**{k: key[k] for k in "ptdh"}, "ids": track_ids}
    wanted = (key["p"], key["t"], key["d"], key["h"], False)
    found: dict[str, list[str]] = {}
    # the key is compared here: with it in the WHERE clause the track-id index would not be used
    for track_id, decision_id, *decided in _by_track(
            con, "SELECT track_id, decision_id, purpose, territory, on_date, policy_hash, allowed FROM decisions",
            track_ids):
        if tuple(decided) == wanted:
            found.setdefault(track_id, []).append(decision_id)
    several = [t for t in track_ids if len(found.get(t, ())) != 1]
    if several:
        found.update({t: [d] for t, d in con.execute(
            "SELECT track_id, decision_id FROM current_decisions WHERE purpose = $p AND territory = $t AND on_date = $d "
            "AND policy_hash = $h AND track_id = ANY($ids::VARCHAR[])", {**params, "ids": several}).fetchall()})
    return [(t, found[t][0]) for t in track_ids if t in found]


def release_review(con: duckdb.DuckDBPyConnection, release_id: str, *, limit: int = 50,
                   offset: int = 0) -> dict[str, object]:
    """What a reviewer reads before approving: the diff against the baseline and the excluded tracks.

    ``added``/``removed`` compare the release's tracks with its baseline's (:func:`baseline_release`);
    ``newly_denied`` are the removed ones the release's own evaluation denies, with its reasons;
    ``excluded`` are every track that evaluation denied (``limit``/``offset`` page through them), and
    ``excluded_by_reason`` counts them per reason (from ``decision_counts``, which also says which range
    of track ids holds the page). All set-based: one query per part.
    """
    release = get_release(con, release_id, with_tracks=False)
    if release is None:
        raise ReleaseError("release_unknown", f"no release {release_id}")
    base = baseline_release(con, release_id)
    key = {"p": release.purpose, "t": release.territory, "d": release.on_date, "h": release.policy_hash,
           "r": release_id, "b": base}
    # Keys first (from release_tracks, current_decisions and decision_counts alone), then only the shown
    # rows' titles and reasons.
    denied_keys = ("SELECT track_id, decision_id FROM current_decisions WHERE purpose = $p AND territory = $t "
                   "AND on_date = $d AND policy_hash = $h AND NOT allowed")
    diff = con.execute(
        "WITH n AS (SELECT track_id, isrc FROM release_tracks WHERE release_id = $r), "
        "o AS (SELECT track_id, isrc FROM release_tracks WHERE release_id = $b) "
        "SELECT n.track_id IS NULL AS removed, coalesce(n.track_id, o.track_id) AS track_id, "
        "coalesce(n.isrc, o.isrc) AS isrc, count(*) OVER (PARTITION BY n.track_id IS NULL) AS total "
        "FROM n FULL JOIN o USING (track_id) WHERE n.track_id IS NULL OR o.track_id IS NULL "
        "QUALIFY row_number() OVER (PARTITION BY n.track_id IS NULL ORDER BY coalesce(n.isrc, o.isrc), "
        "coalesce(n.track_id, o.track_id)) <= $limit ORDER BY 1, 3, 2", {"r": release_id, "b": base, "limit": limit}).fetchall()
    added_keys = [(t, i) for removed, t, i, _ in diff if not removed]
    removed_keys = [(t, i) for removed, t, i, _ in diff if removed]
    totals = {removed: int(n) for removed, _, _, n in diff}
    # track ids alone first (reading decision ids for ~all denied tracks would cost more than the join)
    newly_ids = con.execute(
        "SELECT track_id, count(*) OVER () FROM current_decisions WHERE purpose = $p AND territory = $t AND on_date = $d "
        "AND policy_hash = $h AND NOT allowed AND track_id IN (SELECT track_id FROM release_tracks WHERE release_id = $b) "
        f"ORDER BY track_id LIMIT {int(limit)}", {k: key[k] for k in "ptdhb"}).fetchall() if base else []
    newly_keys = _current_denials(con, [r[0] for r in newly_ids], key)
    excluded_count, by_reason = decision_counts.denied_by_reason(con, release.purpose, release.territory,
                                                                 release.on_date, release.policy_hash)
    win = decision_counts.window(con, release.purpose, release.territory, release.on_date, release.policy_hash,
                                 size=limit, skip=offset)
    excluded_keys: list[tuple[object, ...]] = []
    if win is not None:
        cond, more = decision_counts.window_sql(win)
        sql = f"{denied_keys} AND {cond} ORDER BY track_id LIMIT {int(limit)} OFFSET {int(win.skip)}"
        excluded_keys = con.execute(sql, {**{k: key[k] for k in "ptdh"}, **more}).fetchall()
    # the shown rows' titles and reasons, looked up by the track-id indexes
    titles = {r[0]: r[1:] for r in _by_track(con, "SELECT track_id, isrc, title FROM tracks", [
        str(k[0]) for k in (*added_keys, *removed_keys, *newly_keys, *excluded_keys)])}
    wanted = {k[1] for k in (*newly_keys, *excluded_keys)}
    codes = {r[0]: r[1] for r in _by_track(con, "SELECT decision_id, reason_codes FROM decisions", [
        str(k[0]) for k in (*newly_keys, *excluded_keys)]) if r[0] in wanted}

    def detailed(keys: list[tuple[object, ...]], reasons: bool) -> list[dict[str, object]]:
        out = []
        for k in keys:
            isrc, title = titles.get(str(k[0]), (None, None))
            out.append({"track_id": k[0], "isrc": isrc, "title": title,
                        **({"reason_codes": codes.get(str(k[1]), [])} if reasons else {})})
        return out

    return {"release": release, "baseline": base, "added_count": totals.get(False, 0),
            "removed_count": totals.get(True, 0), "added": detailed(added_keys, False),
            "removed": detailed(removed_keys, False),
            "newly_denied": sorted(detailed(newly_keys, True), key=lambda r: (str(r["isrc"]), str(r["track_id"]))),
            "newly_denied_count": int(newly_ids[0][1]) if newly_ids else 0,
            "excluded": detailed(excluded_keys, True), "excluded_count": excluded_count,
            "excluded_by_reason": by_reason}
