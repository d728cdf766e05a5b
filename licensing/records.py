"""Writing rights records (parties, recordings, deals, consents) into the ledger, idempotently."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

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
    """A deal record is the whole truth about that deal: its recordings and controllers are replaced."""
    con.execute(
        "INSERT OR REPLACE INTO deals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [deal.deal_id, deal.licensor, deal.license, list(deal.use_types), list(deal.territories.include),
         list(deal.territories.exclude), deal.valid_from, deal.valid_to, list(deal.conditions), source,
         datetime.now(UTC)],
    )
    con.execute("DELETE FROM deal_recordings WHERE deal_id = ?", [deal.deal_id])
    con.execute("DELETE FROM rights_controllers WHERE deal_id = ?", [deal.deal_id])
    con.executemany("INSERT INTO deal_recordings VALUES (?, ?)", [[deal.deal_id, isrc] for isrc in sorted(set(deal.isrcs))])
    shares: dict[tuple[str, str], float] = {}
    for rc in deal.rights_controllers:
        shares[(rc.isrc, rc.party_id)] = shares.get((rc.isrc, rc.party_id), 0.0) + rc.share
    if shares:
        con.executemany("INSERT INTO rights_controllers VALUES (?, ?, ?, ?)",
                        [[deal.deal_id, isrc, party, share] for (isrc, party), share in sorted(shares.items())])


def upsert_consent(con: duckdb.DuckDBPyConnection, consent: Consent, *, source: str) -> None:
    con.execute(
        "INSERT OR REPLACE INTO consents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
