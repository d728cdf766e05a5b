-- Tables with row_sha256 and audit_seq are sealed: written only through store/ledger.py (see store/sealing.py).
CREATE TABLE IF NOT EXISTS fingerprints (
    track_id VARCHAR PRIMARY KEY,
    algorithm INTEGER NOT NULL,
    duration_s DOUBLE NOT NULL,
    seconds_used DOUBLE NOT NULL,
    items UINTEGER[] NOT NULL,
    fingerprint VARCHAR NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    delivery_id VARCHAR,
    source_path VARCHAR,
    items_sha256 VARCHAR,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS optout_registry (
    optout_id VARCHAR PRIMARY KEY,
    claimant VARCHAR NOT NULL,
    isrc VARCHAR,
    title VARCHAR,
    note VARCHAR,
    audio_sha256 VARCHAR NOT NULL,
    items UINTEGER[] NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL,
    registered_by VARCHAR,
    duration_s DOUBLE,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- Evidence behind every audio-identity decision: score and threshold are kept with the match.
CREATE TABLE IF NOT EXISTS audio_matches (
    track_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,            -- 'optout' | 'duplicate'
    matched_ref VARCHAR NOT NULL,     -- optout_id or track_id
    score DOUBLE NOT NULL,
    threshold DOUBLE NOT NULL,
    offset_s DOUBLE,
    span_s DOUBLE,
    bit_error_rate DOUBLE,
    matched_at TIMESTAMPTZ NOT NULL,
    query_start_s DOUBLE,
    ref_start_s DOUBLE,
    votes INTEGER,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    method VARCHAR,                   -- 'chromaprint' (score = 1 - 2*BER) | 'landmark' (score = agreeing hashes)
    speed DOUBLE,                     -- playback speed at which a landmark match was found
    PRIMARY KEY (track_id, kind, matched_ref)
);
CREATE TABLE IF NOT EXISTS duplicate_clusters (
    cluster_id VARCHAR NOT NULL,
    track_id VARCHAR PRIMARY KEY,
    isrc VARCHAR NOT NULL,
    resolved BOOLEAN NOT NULL DEFAULT FALSE,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- Landmark fingerprints (fingerprinting/landmarks.py) of catalog tracks ('track:<id>') and opt-outs ('optout:<id>'),
-- written by the same commands as the Chromaprint items (fingerprint.store, optout.register).
CREATE TABLE IF NOT EXISTS landmark_fingerprints (
    ref VARCHAR PRIMARY KEY,
    landmark_count INTEGER NOT NULL,
    landmarks UINTEGER[] NOT NULL,
    landmarks_sha256 VARCHAR NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- The denser spectral peaks each of those recordings looks others up with (landmarks.query_landmarks),
-- packed frame << 8 | (bin - 14); never indexed. Its own table, so rows sealed before it existed stay intact.
CREATE TABLE IF NOT EXISTS landmark_query_peaks (
    ref VARCHAR PRIMARY KEY,
    peak_count INTEGER NOT NULL,
    query_peaks UINTEGER[] NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
