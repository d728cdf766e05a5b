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
    audit_entries INTEGER NOT NULL
);
