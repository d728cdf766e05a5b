-- Tables with row_sha256 and audit_seq are sealed: written only through store/ledger.py (see store/sealing.py).
-- Training runs, refusals, and per-run exposure aggregates (the attribution statement's source of truth
-- is the exposure log beside the run; these tables are its ledger copy for queries and audits).
CREATE TABLE IF NOT EXISTS training_runs (
    run_id VARCHAR PRIMARY KEY,
    release_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,          -- running | completed | failed
    actor VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    script VARCHAR,
    script_sha256 VARCHAR,
    config JSON NOT NULL,
    manifest_uri VARCHAR,
    manifest_sha256 VARCHAR,
    policy_hash VARCHAR,
    code_commit VARCHAR NOT NULL,
    code_dirty BOOLEAN,
    torch_version VARCHAR NOT NULL,
    device VARCHAR,
    world_size INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    metrics JSON,
    samples_consumed BIGINT NOT NULL DEFAULT 0,
    checkpoint_uri VARCHAR,
    checkpoint_sha256 VARCHAR,
    attempts INTEGER NOT NULL DEFAULT 1,
    acknowledged_by VARCHAR,
    acknowledged_reason VARCHAR,
    acknowledged_tracks VARCHAR[],
    error VARCHAR,
    record JSON NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- A refused start is recorded once, as the audit entry `train.start.refused` (store.ledger.record_refusal);
-- this view reads it back. Role refusals have no release_id and carry their one code.
CREATE VIEW IF NOT EXISTS training_refusals AS
SELECT 'refusal-' || seq AS refusal_id,
       subject AS run_id,
       json_extract_string(payload, '$.release_id') AS release_id,
       actor,
       coalesce(CAST(json_extract(payload, '$.reason_codes') AS VARCHAR[]),
                [json_extract_string(payload, '$.code')]) AS reason_codes,
       json_extract_string(payload, '$.message') AS message,
       payload AS details,
       recorded_at,
       seq AS audit_seq
FROM audit_log WHERE action = 'train.start.refused';
CREATE TABLE IF NOT EXISTS training_exposure (
    run_id VARCHAR NOT NULL,
    track_id VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    samples BIGINT NOT NULL,
    fraction DOUBLE NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (run_id, track_id)
);
CREATE TABLE IF NOT EXISTS training_attribution (
    run_id VARCHAR NOT NULL,
    party_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    tracks INTEGER NOT NULL,
    samples_milli BIGINT NOT NULL,    -- thousandths of a sample; sums exactly to 1000 x samples consumed
    fraction DOUBLE NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (run_id, party_id)
);
