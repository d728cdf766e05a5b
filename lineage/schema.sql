-- Tables with row_sha256 and audit_seq are sealed: written only through store/ledger.py (see store/sealing.py).
-- Indexes for traces: an auditor's "which models learned from this song?" filters these tables by
-- one track or ISRC, which without an index is a scan of every exposure, shard and decision row.
CREATE INDEX IF NOT EXISTS lineage_tracks_isrc ON tracks (isrc);
CREATE INDEX IF NOT EXISTS lineage_decisions_track ON decisions (track_id);
CREATE INDEX IF NOT EXISTS lineage_release_tracks_track ON release_tracks (track_id);
CREATE INDEX IF NOT EXISTS lineage_shard_file_tracks_track ON shard_file_tracks (track_id);
CREATE INDEX IF NOT EXISTS lineage_exposure_track ON training_exposure (track_id);
CREATE INDEX IF NOT EXISTS lineage_contributors_track ON contributors (track_id);
CREATE INDEX IF NOT EXISTS lineage_audio_matches_track ON audio_matches (track_id);
-- Frozen trace parts (lineage/snapshots.py): a completed run's bill of materials, a release's tracks.
-- The file holds the content; this row and the audit log (action trace.snapshot) hold its hash.
CREATE TABLE IF NOT EXISTS trace_snapshots (
    kind VARCHAR NOT NULL,            -- model | release
    subject VARCHAR NOT NULL,         -- run_id or release_id
    schema_version INTEGER NOT NULL,
    uri VARCHAR NOT NULL,             -- gzip JSON Lines: a header line, then one track per line
    sha256 VARCHAR NOT NULL,          -- of the stored (compressed) bytes
    bytes BIGINT NOT NULL,
    track_count BIGINT NOT NULL,
    built_by VARCHAR NOT NULL,
    built_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (kind, subject)
);
