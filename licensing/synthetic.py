"""Generated catalogs with deals, shares, contributors, consents, opt-outs, duplicates and withdrawals.

Used to cross-check the two evaluators and to benchmark the set-based one. Values cluster
around ``on_date`` (deals starting or ending on that very day, consents granted or revoked
near UTC midnight, opt-out scores equal to their threshold) so boundary cases are common.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pyarrow as pa

from store.ledger import Writer, command
from store.roles import Principal, RoleBook

SYNTHETIC_ACTOR = "linernotes-synthetic"
USE_COMBOS = [
    ["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining"],
    ["UseForTrainingNonGenerativeAI", "UseForDataMining"],
    ["UseForTrainingGenerativeAI"],
    ["Stream", "PermanentDownload"],
    ["UseForDataMining", "Stream"],
]
TERRITORY_COMBOS = [  # (include, exclude)
    (["Worldwide"], []), (["Worldwide"], ["US"]), (["DE", "FR"], []), (["US"], []), (["Worldwide"], ["DE", "FR"]),
]
CONSENT_VALUES = ["allowed", "notAllowed", "constrained"]
ROLES = ["MainArtist", "FeaturedArtist", "Composer", "Lyricist", "Publisher"]


@dataclass(frozen=True)
class CatalogSize:
    tracks: int
    deals: int
    parties: int
    consents: int
    contributors: int


def _isrc(i: np.ndarray) -> np.ndarray:
    if i.size == 0:
        return np.array([], dtype="U12")
    # CC (QZ, the ISO range kept for private use) + registrant SYN + year + designation: 12 characters
    return np.char.add(np.char.add("QZSYN", np.char.zfill((i // 100000 % 100).astype(str), 2)),
                       np.char.zfill((i % 100000).astype(str), 5))


def _ids(prefix: str, i: np.ndarray, width: int) -> np.ndarray:
    if i.size == 0:
        return np.array([], dtype="U32")
    return np.char.add(prefix, np.char.zfill(i.astype(str), width))


def _iswc(i: np.ndarray) -> np.ndarray:
    if i.size == 0:
        return np.array([], dtype="U11")
    return np.char.add("T", np.char.zfill(i.astype(str), 10))


def _day_offsets(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """Offsets in days, a third of them pinned to -1, 0 or +1 to exercise the boundaries."""
    out = rng.integers(low, high, n)
    pin = rng.random(n) < 0.33
    out[pin] = rng.integers(-1, 2, int(pin.sum()))
    return out


def generate_catalog(con: duckdb.DuckDBPyConnection, *, tracks: int, seed: int, on_date: date,
                     delivery_id: str = "synthetic", actor: Principal | str = SYNTHETIC_ACTOR,
                     roles: RoleBook | None = None) -> CatalogSize:
    """Insert a random but reproducible catalog of ``tracks`` tracks and its rights data (one command).

    The rows are sealed like any other (``catalog.ingest``); ``roles`` defaults to a book in which
    the synthetic loader is an admin, since the data it writes stands for a whole label's delivery.
    """
    book = roles or RoleBook(users={SYNTHETIC_ACTOR: ("admin",)}, source="licensing.synthetic")
    with command(con, actor, "catalog.ingest", f"delivery:{delivery_id}", roles=book) as w:
        size = _generate(w, tracks=tracks, seed=seed, on_date=on_date, delivery_id=delivery_id)
        w.payload.update(asdict(size))
    return size


def _generate(w: Writer, *, tracks: int, seed: int, on_date: date, delivery_id: str) -> CatalogSize:
    con = w.con
    rng = np.random.default_rng(seed)
    n = tracks
    n_parties = max(4, n // 4)
    n_deals = max(2, n // 2)
    n_works = max(2, n // 3)
    base = np.datetime64(on_date.isoformat())
    now = datetime.now(UTC)

    idx = np.arange(n)
    isrc = _isrc(idx)
    dup_mask = rng.random(n) < 0.02
    ai = rng.random(n) < 0.03
    tracks_tbl = pa.table({"track_id": _ids("trk_", idx, 16), "isrc": isrc, "ai_generated": ai})
    con.register("_g_tracks", tracks_tbl)
    w.insert_query("tracks", "SELECT track_id, ? AS delivery_id, isrc, ai_generated, 'synthetic://' || track_id AS "
                             "source_path, repeat('0', 64) AS audio_sha256, ? AS ingested_at FROM _g_tracks",
                   [delivery_id, now])

    rec = rng.random(n) < 0.4
    recordings = pa.table({"isrc": isrc[rec], "iswc": _iswc(rng.integers(0, n_works, int(rec.sum()))),
                           "ai": rng.random(int(rec.sum())) < 0.02})
    con.register("_g_rec", recordings)
    w.insert_query("recordings", "SELECT isrc, iswc, ai AS ai_generated, CASE WHEN ai THEN 'DDEX contributor "
                                 "GenerativeAI' END AS ai_evidence, 'synthetic' AS source, ? AS imported_at FROM _g_rec",
                   [now])

    # deals: attributes by index into the combo tables
    deal_idx = np.arange(n_deals)
    vf_null = rng.random(n_deals) < 0.1
    vf = base + _day_offsets(rng, n_deals, -800, 30).astype("timedelta64[D]")
    vt_null = rng.random(n_deals) < 0.5
    vt = vf + rng.integers(0, 900, n_deals).astype("timedelta64[D]")
    near = rng.random(n_deals) < 0.3
    vt[near] = base + rng.integers(-1, 2, int(near.sum())).astype("timedelta64[D]")
    vt = np.maximum(vt, vf)
    deals = pa.table({
        "deal_id": _ids("D", deal_idx, 8), "licensor": _ids("P", rng.integers(0, n_parties, n_deals), 7),
        "uc": rng.integers(0, len(USE_COMBOS), n_deals), "tc": rng.integers(0, len(TERRITORY_COMBOS), n_deals),
        "vf": pa.array(vf, mask=vf_null), "vt": pa.array(vt, mask=vt_null),
    })
    combos = pa.table({"uc": list(range(len(USE_COMBOS))), "uses": USE_COMBOS})
    terr = pa.table({"tc": list(range(len(TERRITORY_COMBOS))), "inc": [t[0] for t in TERRITORY_COMBOS],
                     "exc": [t[1] for t in TERRITORY_COMBOS]})
    con.register("_g_deals", deals)
    con.register("_g_uc", combos)
    con.register("_g_tc", terr)
    w.insert_query("deals", "SELECT deal_id, licensor AS licensor_party_id, 'synthetic' AS license, uses AS use_types, "
                            "inc AS territories_included, exc AS territories_excluded, vf::DATE AS valid_from, "
                            "vt::DATE AS valid_to, ['attribution_required'] AS conditions, 'synthetic' AS source, "
                            "? AS imported_at FROM _g_deals JOIN _g_uc USING (uc) JOIN _g_tc USING (tc)", [now])

    # deal_recordings: 0, 1 or 2 deals per track
    k = rng.choice([0, 1, 2], size=n, p=[0.1, 0.7, 0.2])
    dr_track = np.repeat(idx, k)
    dr_deal = rng.integers(0, n_deals, len(dr_track))
    links = pa.table({"deal_id": _ids("D", dr_deal, 8), "isrc": isrc[dr_track]})
    con.register("_g_dr", links)
    w.insert_query("deal_recordings", "SELECT DISTINCT deal_id, isrc FROM _g_dr")

    # rights controllers per link: full single owner, 50/50, 60/30 (incomplete) or none
    m = len(dr_track)
    kind = rng.choice([0, 1, 2, 3], size=m, p=[0.8, 0.08, 0.07, 0.05])
    rc_rows = []
    p1 = _ids("P", rng.integers(0, n_parties, m), 7)
    p2 = _ids("P", rng.integers(0, n_parties, m), 7)
    deal_ids, link_isrc = _ids("D", dr_deal, 8), isrc[dr_track]
    for code, shares in ((0, (100.0,)), (1, (50.0, 50.0)), (2, (60.0, 30.0))):
        sel = kind == code
        for j, share in enumerate(shares):
            rc_rows.append(pa.table({"deal_id": deal_ids[sel], "isrc": link_isrc[sel],
                                     "party_id": (p1 if j == 0 else p2)[sel],
                                     "share": np.full(int(sel.sum()), share)}))
    con.register("_g_rc", pa.concat_tables(rc_rows))
    w.insert_query("rights_controllers", "SELECT deal_id, isrc, party_id, sum(share) AS share FROM "
                                         "(SELECT DISTINCT deal_id, isrc, party_id, share FROM _g_rc) GROUP BY ALL")

    # contributors: a main artist for 92% of tracks, some featured artists and songwriters
    parts = []
    for role, p, source in (("MainArtist", 0.92, "track"), ("FeaturedArtist", 0.2, "track"),
                            ("Composer", 0.3, "track"), ("Publisher", 0.1, "recording"),
                            ("MainArtist", 0.05, "recording")):
        sel = rng.random(n) < p
        parts.append(pa.table({"track_id": _ids("trk_", idx[sel], 16), "isrc": isrc[sel],
                               "party_id": _ids("P", rng.integers(0, n_parties, int(sel.sum())), 7),
                               "role": np.full(int(sel.sum()), role), "source": np.full(int(sel.sum()), source)}))
    con.register("_g_c", pa.concat_tables(parts))
    w.insert_query("contributors", "SELECT DISTINCT track_id, party_id, party_id AS name, role FROM _g_c "
                                   "WHERE source = 'track'")
    w.insert_query("recording_contributors", "SELECT DISTINCT isrc, party_id, party_id AS name, role FROM _g_c "
                                             "WHERE source = 'recording'")
    contributors = sum(t.num_rows for t in parts)

    con.register("_g_p", pa.table({"party_id": _ids("P", np.arange(n_parties), 7)}))
    w.insert_query("parties", "SELECT party_id, party_id AS name FROM _g_p")

    # consents: 0-2 per party; scopes all / recording / work; some revoked
    kc = rng.choice([0, 1, 2], size=n_parties, p=[0.15, 0.65, 0.2])
    cp = np.repeat(np.arange(n_parties), kc)
    c = len(cp)
    scope = rng.choice(["all", "recording", "work"], size=c, p=[0.7, 0.15, 0.15])
    ref = np.where(scope == "recording", _isrc(rng.integers(0, n, c)),
                   np.where(scope == "work", _iswc(rng.integers(0, n_works, c)), ""))
    values = {f: np.array(CONSENT_VALUES)[rng.choice(3, size=c, p=[0.75, 0.13, 0.12])]
              for f in ("ai_training", "ai_generative_training", "data_mining", "ai_inference")}
    seconds = rng.integers(-3 * 3600, 3 * 3600, c).astype("timedelta64[s]")
    granted = (base + _day_offsets(rng, c, -400, 5).astype("timedelta64[D]")).astype("datetime64[s]") + seconds
    revoked_mask = rng.random(c) >= 0.2
    revoked = granted + rng.integers(0, 500, c).astype("timedelta64[D]")
    near = rng.random(c) < 0.5
    revoked[near] = (base + rng.integers(-1, 2, int(near.sum())).astype("timedelta64[D]")).astype("datetime64[s]") \
        + seconds[near]
    revoked = np.maximum(revoked, granted)
    consents = pa.table({
        "consent_id": _ids("C", np.arange(c), 8), "party_id": _ids("P", cp, 7), "scope": scope,
        "scope_ref": pa.array(ref, mask=scope == "all"), **values,
        "granted_at": pa.array(granted, type=pa.timestamp("s", tz="UTC")),
        "revoked_at": pa.array(revoked, type=pa.timestamp("s", tz="UTC"), mask=revoked_mask),
    })
    con.register("_g_k", consents)
    w.insert_query("consents", "SELECT consent_id, party_id, scope, scope_ref, ai_training, ai_generative_training, "
                               "data_mining, ai_inference, 'synthetic://' || consent_id AS evidence_ref, "
                               "repeat('0', 64) AS evidence_sha256, granted_at, revoked_at, 'synthetic' AS source "
                               "FROM _g_k")

    # opt-out matches (some exactly at threshold) and duplicate clusters
    oo = rng.random(n) < 0.03
    scores = np.round(rng.choice([0.3, 0.59, 0.6, 0.75, 0.95], size=int(oo.sum())), 2)
    con.register("_g_oo", pa.table({"track_id": _ids("trk_", idx[oo], 16), "score": scores,
                                    "ref": _ids("OPT", idx[oo], 8)}))
    w.insert_query("audio_matches", "SELECT track_id, 'optout' AS kind, ref AS matched_ref, score, 0.6 AS threshold, "
                                    "0 AS offset_s, 10 AS span_s, 0.1 AS bit_error_rate, ? AS matched_at FROM _g_oo",
                   [now])
    members = idx[dup_mask]
    cluster = np.arange(len(members)) // 2
    other_isrc = rng.random(len(members)) < 0.7
    con.register("_g_dc", pa.table({
        "cluster_id": _ids("CL", cluster, 8), "track_id": _ids("trk_", members, 16),
        "isrc": np.where(other_isrc | (np.arange(len(members)) % 2 == 0), isrc[members], isrc[members - (members > 0)]),
        "resolved": rng.random(len(members)) < 0.3}))
    w.insert_query("duplicate_clusters", "SELECT cluster_id, track_id, isrc, resolved FROM _g_dc")

    # fingerprints: all but ~1% of tracks (files that failed to decode have none); one stand-in item each
    fp = idx[rng.random(n) >= 0.01]
    con.register("_g_fp", pa.table({"track_id": _ids("trk_", fp, 16),
                                    "item": rng.integers(0, 2**32, len(fp), dtype=np.uint64).astype(np.uint32)}))
    w.insert_query("fingerprints", "SELECT track_id, 1 AS algorithm, 0 AS duration_s, 0 AS seconds_used, [item] AS "
                                   "items, 'synthetic' AS fingerprint, ? AS computed_at, ? AS delivery_id FROM _g_fp",
                   [now, delivery_id])

    # withdrawals: tracks a re-delivery no longer held, a third of them restored since
    wd = idx[rng.random(n) < 0.01]
    con.register("_g_wd", pa.table({"track_id": _ids("trk_", wd, 16), "restored": rng.random(len(wd)) < 0.3}))
    w.insert_query("track_withdrawals", "SELECT track_id, ? AS delivery_id, ? AS withdrawn_at, 'not in the "
                                        "re-delivery' AS reason, CASE WHEN restored THEN ? END AS restored_at FROM _g_wd",
                   [delivery_id, now, now])
    for name in ("_g_tracks", "_g_rec", "_g_deals", "_g_uc", "_g_tc", "_g_dr", "_g_rc", "_g_c", "_g_p", "_g_k",
                 "_g_oo", "_g_dc", "_g_fp", "_g_wd"):
        con.unregister(name)
    return CatalogSize(tracks=n, deals=n_deals, parties=n_parties, consents=c, contributors=contributors)

