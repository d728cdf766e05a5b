"""Writing rights records (parties, recordings, deals, consents) into the ledger, idempotently."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from schemas.rights import Consent, Deal, Party, Recording


def known_party_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("SELECT party_id FROM parties").fetchall()}


def upsert_party(con: duckdb.DuckDBPyConnection, party: Party) -> None:
    con.execute(
        "INSERT INTO parties VALUES (?, ?, ?, ?) ON CONFLICT (party_id) DO UPDATE SET "
        "name = excluded.name, isni = coalesce(excluded.isni, parties.isni), ipi = coalesce(excluded.ipi, parties.ipi)",
        [party.party_id, party.name, party.isni, party.ipi],
    )


def upsert_deal(con: duckdb.DuckDBPyConnection, deal: Deal, *, source: str) -> None:
    upsert_deals(con, [deal], source=source)


def upsert_deals(con: duckdb.DuckDBPyConnection, deals: list[Deal], *, source: str) -> None:
    """A deal record is the whole truth about that deal: its recordings and controllers are replaced."""
    deals = list({d.deal_id: d for d in deals}.values())
    if not deals:
        return
    now = datetime.now(UTC)
    head = pa.table({
        "deal_id": [d.deal_id for d in deals], "licensor": [d.licensor for d in deals],
        "license": pa.array([d.license for d in deals], pa.string()),
        "use_types": [list(d.use_types) for d in deals],
        "inc": [list(d.territories.include) for d in deals],
        "exc": pa.array([list(d.territories.exclude) for d in deals], pa.list_(pa.string())),
        "vf": pa.array([d.valid_from for d in deals], pa.date32()),
        "vt": pa.array([d.valid_to for d in deals], pa.date32()),
        "cond": pa.array([list(d.conditions) for d in deals], pa.list_(pa.string())),
    })
    links = [(d.deal_id, isrc) for d in deals for isrc in sorted(set(d.isrcs))]
    shares: dict[tuple[str, str, str], float] = {}
    for d in deals:
        for rc in d.rights_controllers:
            key = (d.deal_id, rc.isrc, rc.party_id)
            shares[key] = shares.get(key, 0.0) + rc.share
    link_tbl = pa.table({"deal_id": [a for a, _ in links], "isrc": [b for _, b in links]})
    share_tbl = pa.table({"deal_id": pa.array([k[0] for k in shares], pa.string()),
                          "isrc": pa.array([k[1] for k in shares], pa.string()),
                          "party_id": pa.array([k[2] for k in shares], pa.string()),
                          "share": pa.array(list(shares.values()), pa.float64())})
    con.register("_up_deals", head)
    con.register("_up_links", link_tbl)
    con.register("_up_shares", share_tbl)
    try:
        con.execute("INSERT OR REPLACE INTO deals SELECT deal_id, licensor, license, use_types, inc, exc, vf, vt, cond, "
                    "?, ? FROM _up_deals", [source, now])
        con.execute("DELETE FROM deal_recordings WHERE deal_id IN (SELECT deal_id FROM _up_deals)")
        con.execute("DELETE FROM rights_controllers WHERE deal_id IN (SELECT deal_id FROM _up_deals)")
        con.execute("INSERT INTO deal_recordings SELECT deal_id, isrc FROM _up_links")
        con.execute("INSERT INTO rights_controllers SELECT deal_id, isrc, party_id, share FROM _up_shares")
    finally:
        for name in ("_up_deals", "_up_links", "_up_shares"):
            con.unregister(name)


def upsert_consent(con: duckdb.DuckDBPyConnection, consent: Consent, *, source: str) -> None:
    """Insert or update a consent; a revocation already recorded is kept (re-importing never un-revokes)."""
    con.execute(
        "INSERT INTO consents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (consent_id) DO UPDATE SET "
        "party_id = excluded.party_id, scope = excluded.scope, scope_ref = excluded.scope_ref, "
        "ai_training = excluded.ai_training, ai_generative_training = excluded.ai_generative_training, "
        "data_mining = excluded.data_mining, ai_inference = excluded.ai_inference, "
        "evidence_ref = excluded.evidence_ref, evidence_sha256 = excluded.evidence_sha256, "
        "granted_at = excluded.granted_at, revoked_at = least(excluded.revoked_at, consents.revoked_at), "
        "source = excluded.source",
        [consent.consent_id, consent.party_id, consent.scope, consent.scope_ref, consent.ai_training,
         consent.ai_generative_training, consent.data_mining, consent.ai_inference, consent.evidence_ref,
         consent.evidence_sha256, consent.granted_at, consent.revoked_at, source],
    )


def upsert_recording(con: duckdb.DuckDBPyConnection, recording: Recording, *, source: str) -> None:
    con.execute(
        "INSERT OR REPLACE INTO recordings VALUES (?, ?, ?, ?, ?, ?, ?)",
        [recording.isrc, recording.iswc, recording.title, recording.ai_generated, recording.ai_evidence,
         source, datetime.now(UTC)],
    )
    con.execute("DELETE FROM recording_contributors WHERE isrc = ?", [recording.isrc])
    rows = {(recording.isrc, c.party_id, c.role): c.name for c in recording.contributors}
    if rows:
        con.executemany("INSERT INTO recording_contributors VALUES (?, ?, ?, ?)",
                        [[isrc, party, name, role] for (isrc, party, role), name in sorted(rows.items())])


def quarantine(con: duckdb.DuckDBPyConnection, *, source_ref: str, reason_code: str, message: str,
               stage: str = "rights_import") -> None:
    con.execute("INSERT INTO quarantine VALUES (NULL, ?, ?, ?, ?, ?)",
                [stage, source_ref, reason_code, message, datetime.now(UTC)])
