-- Tables with row_sha256 and audit_seq are sealed: written only through store/ledger.py (see store/sealing.py).
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id VARCHAR PRIMARY KEY,
    source VARCHAR NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    manifest_sha256 VARCHAR,
    track_count INTEGER,
    quarantined_count INTEGER,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS tracks (
    track_id VARCHAR PRIMARY KEY,
    delivery_id VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    isrc_assigned BOOLEAN NOT NULL DEFAULT FALSE,
    title VARCHAR,
    artists VARCHAR[],
    album VARCHAR,
    license_tag VARCHAR,
    ai_generated BOOLEAN NOT NULL DEFAULT FALSE,
    source_path VARCHAR NOT NULL,
    audio_sha256 VARCHAR NOT NULL,
    bytes BIGINT,
    duration_s DOUBLE,
    codec VARCHAR,
    sample_rate INTEGER,
    channels INTEGER,
    tags JSON,
    ingested_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS contributors (
    track_id VARCHAR NOT NULL,
    party_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (track_id, party_id, role)
);
CREATE TABLE IF NOT EXISTS quarantine (
    delivery_id VARCHAR,
    stage VARCHAR NOT NULL,
    source_ref VARCHAR NOT NULL,
    reason_code VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- A track its delivery no longer holds (removed, replaced by a file that failed, or given another
-- ISRC on re-delivery). The row in `tracks` stays for lineage; the policy denies it while the
-- withdrawal is open, and a later delivery of the same recording restores it.
CREATE TABLE IF NOT EXISTS track_withdrawals (
    track_id VARCHAR NOT NULL,
    delivery_id VARCHAR NOT NULL,
    withdrawn_at TIMESTAMPTZ NOT NULL,
    reason VARCHAR NOT NULL,
    restored_at TIMESTAMPTZ,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
