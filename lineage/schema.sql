-- Indexes for traces: an auditor's "which models learned from this song?" filters these tables by
-- one track or ISRC, which without an index is a scan of every exposure, shard and decision row.
CREATE INDEX IF NOT EXISTS lineage_tracks_isrc ON tracks (isrc);
CREATE INDEX IF NOT EXISTS lineage_decisions_track ON decisions (track_id);
CREATE INDEX IF NOT EXISTS lineage_release_tracks_track ON release_tracks (track_id);
CREATE INDEX IF NOT EXISTS lineage_shard_file_tracks_track ON shard_file_tracks (track_id);
CREATE INDEX IF NOT EXISTS lineage_exposure_track ON training_exposure (track_id);
