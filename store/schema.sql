-- Tables with row_sha256 and audit_seq are sealed: written only through store/ledger.py (see store/sealing.py).
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    recorded_at TIMESTAMPTZ NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    payload JSON,
    payload_sha256 VARCHAR NOT NULL,
    prev_hash VARCHAR NOT NULL,
    entry_hash VARCHAR NOT NULL
);
-- Batches written by workers in other processes or machines, applied once by the ledger writer.
CREATE TABLE IF NOT EXISTS outbox_batches (
    batch_id VARCHAR PRIMARY KEY,
    worker VARCHAR NOT NULL,
    created_at TIMESTAMPTZ,
    applied_at TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL,          -- 'applied' | 'rejected'
    reason_code VARCHAR,
    message VARCHAR,
    rows_by_table JSON,
    audit_entries INTEGER NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- One row per ledger: its id (bound into every signed head) and the canonical row form in use.
CREATE TABLE IF NOT EXISTS ledger_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
-- The signed head each command of the write path leaves (store/signing.py).
CREATE TABLE IF NOT EXISTS audit_heads (
    seq BIGINT PRIMARY KEY,
    entry_hash VARCHAR NOT NULL,
    key_id VARCHAR NOT NULL,
    public_key VARCHAR NOT NULL,
    signature VARCHAR NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL
);
