-- Tables with row_sha256 and audit_seq are sealed: written only through store/ledger.py (see store/sealing.py).
-- One row per shard build: the manifest it produced and what it was built from.
CREATE TABLE IF NOT EXISTS shard_builds (
    build_id VARCHAR PRIMARY KEY,
    release_id VARCHAR NOT NULL,
    output_uri VARCHAR NOT NULL,
    manifest_uri VARCHAR NOT NULL,
    manifest_sha256 VARCHAR NOT NULL,
    policy_hash VARCHAR NOT NULL,
    code_version VARCHAR NOT NULL,
    config JSON NOT NULL,
    shard_count INTEGER NOT NULL,
    row_count BIGINT NOT NULL,
    track_count INTEGER NOT NULL,
    excluded_count INTEGER NOT NULL,
    merkle_root VARCHAR NOT NULL,
    acknowledged BOOLEAN NOT NULL,
    built_by VARCHAR NOT NULL,
    built_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS shard_files (
    build_id VARCHAR NOT NULL,
    shard_index INTEGER NOT NULL,
    release_id VARCHAR NOT NULL,
    uri VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    bytes BIGINT NOT NULL,
    row_count BIGINT NOT NULL,
    merkle_root VARCHAR NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (build_id, shard_index)
);
CREATE TABLE IF NOT EXISTS shard_file_tracks (
    build_id VARCHAR NOT NULL,
    shard_index INTEGER NOT NULL,
    track_id VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    row_count INTEGER NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (build_id, shard_index, track_id)
);
-- Tracks of the release that produced no samples, with the reason (never silently dropped).
CREATE TABLE IF NOT EXISTS shard_exclusions (
    build_id VARCHAR NOT NULL,
    release_id VARCHAR NOT NULL,
    track_id VARCHAR NOT NULL,
    isrc VARCHAR,
    reason_code VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- Someone knowingly went past a revoked release or a recording denied since approval.
CREATE TABLE IF NOT EXISTS shard_acknowledgements (
    release_id VARCHAR NOT NULL,
    context VARCHAR NOT NULL,         -- build | load
    subject VARCHAR NOT NULL,         -- output or manifest URI
    actor VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    overridden VARCHAR[] NOT NULL,
    skipped_track_ids VARCHAR[] NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- A purge on revocation: the build it replaced, the build that replaced it, what was removed and erased.
CREATE TABLE IF NOT EXISTS shard_purges (
    release_id VARCHAR NOT NULL,
    old_build_id VARCHAR NOT NULL,
    new_build_id VARCHAR NOT NULL,
    old_manifest_sha256 VARCHAR NOT NULL,
    new_manifest_sha256 VARCHAR NOT NULL,
    old_merkle_root VARCHAR NOT NULL,
    new_merkle_root VARCHAR NOT NULL,
    track_ids VARCHAR[] NOT NULL,
    isrcs VARCHAR[] NOT NULL,
    samples_removed BIGINT NOT NULL,
    deleted_uris VARCHAR[] NOT NULL,
    proof_uri VARCHAR NOT NULL,
    proof_sha256 VARCHAR NOT NULL,
    purged_by VARCHAR NOT NULL,
    purged_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
