-- Tables with row_sha256 and audit_seq are sealed: written only through store/ledger.py (see store/sealing.py).
-- Contract read by shards, training and lineage; licensing may add tables and columns.
CREATE TABLE IF NOT EXISTS policies (
    policy_hash VARCHAR PRIMARY KEY,
    policy_id VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    content JSON NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- decision_id is unique: licensing.evaluate appends only ids not yet stored under the same
-- evaluation key (an id hashes policy and inputs). No PRIMARY KEY index: on a 1M-track catalog
-- maintaining it cost more than deciding (ledgers created earlier keep theirs; both work).
CREATE TABLE IF NOT EXISTS decisions (
    decision_id VARCHAR NOT NULL,
    track_id VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    purpose VARCHAR NOT NULL,
    territory VARCHAR NOT NULL,
    on_date DATE NOT NULL,
    allowed BOOLEAN NOT NULL,
    reason_codes VARCHAR[] NOT NULL,
    explanation VARCHAR NOT NULL,
    policy_hash VARCHAR NOT NULL,
    inputs_hash VARCHAR NOT NULL,
    deal_id VARCHAR,
    consent_ids VARCHAR[],
    evidence JSON,
    decided_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS releases (
    release_id VARCHAR PRIMARY KEY,
    purpose VARCHAR NOT NULL,
    territory VARCHAR NOT NULL,
    on_date DATE NOT NULL,
    policy_hash VARCHAR NOT NULL,
    status VARCHAR NOT NULL,          -- proposed | approved | rejected | revoked
    proposed_by VARCHAR NOT NULL,
    proposed_at TIMESTAMPTZ NOT NULL,
    track_count INTEGER NOT NULL,
    content_sha256 VARCHAR NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS release_tracks (
    release_id VARCHAR NOT NULL,
    track_id VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    decision_id VARCHAR NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (release_id, track_id)
);
CREATE TABLE IF NOT EXISTS approvals (
    release_id VARCHAR NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,          -- approve | reject
    comment VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS parties (
    party_id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    isni VARCHAR,
    ipi VARCHAR,
    dpid VARCHAR,                     -- DDEX Party Identifier (PADPIDA...)
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- A party recorded twice (two sources, no shared identifier) merged into one: the merged id is
-- kept here so later records naming it land on the surviving party.
CREATE TABLE IF NOT EXISTS party_merges (
    merged_party_id VARCHAR PRIMARY KEY,
    into_party_id VARCHAR NOT NULL,
    evidence_ref VARCHAR NOT NULL,
    reason VARCHAR,
    merged_by VARCHAR NOT NULL,
    merged_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS deals (
    deal_id VARCHAR PRIMARY KEY,
    licensor_party_id VARCHAR NOT NULL,
    license VARCHAR,                  -- e.g. CC-BY-SA-3.0, or a contract reference
    use_types VARCHAR[] NOT NULL,
    territories_included VARCHAR[] NOT NULL,
    territories_excluded VARCHAR[] NOT NULL,
    valid_from DATE,
    valid_to DATE,
    conditions VARCHAR[] NOT NULL,
    source VARCHAR NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS deal_recordings (
    deal_id VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (deal_id, isrc)
);
CREATE TABLE IF NOT EXISTS rights_controllers (
    deal_id VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    party_id VARCHAR NOT NULL,
    share DOUBLE NOT NULL,            -- percent, 0..100
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (deal_id, isrc, party_id)
);
CREATE TABLE IF NOT EXISTS consents (
    consent_id VARCHAR PRIMARY KEY,
    party_id VARCHAR NOT NULL,
    scope VARCHAR NOT NULL,           -- recording | work | all
    scope_ref VARCHAR,                -- ISRC or ISWC when scope is not 'all'
    ai_training VARCHAR NOT NULL,     -- allowed | notAllowed | constrained
    ai_generative_training VARCHAR NOT NULL,
    data_mining VARCHAR NOT NULL,
    ai_inference VARCHAR NOT NULL,
    evidence_ref VARCHAR,
    evidence_sha256 VARCHAR,
    granted_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    source VARCHAR NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- Added by licensing: recordings and contributors as rights data (DDEX) describes them.
CREATE TABLE IF NOT EXISTS recordings (
    isrc VARCHAR PRIMARY KEY,
    iswc VARCHAR,
    title VARCHAR,
    ai_generated BOOLEAN NOT NULL DEFAULT FALSE,
    ai_evidence VARCHAR,
    source VARCHAR NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS recording_contributors (
    isrc VARCHAR NOT NULL,
    party_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (isrc, party_id, role)
);
-- The decision in force per track and evaluation key (decisions keeps every decision ever made).
-- One row per (track_id, purpose, territory, on_date, policy_hash): the evaluator replaces a key's
-- rows in one transaction (no PRIMARY KEY index, for the same reason as decisions).
CREATE TABLE IF NOT EXISTS current_decisions (
    track_id VARCHAR NOT NULL,
    purpose VARCHAR NOT NULL,
    territory VARCHAR NOT NULL,
    on_date DATE NOT NULL,
    policy_hash VARCHAR NOT NULL,
    decision_id VARCHAR NOT NULL,
    allowed BOOLEAN NOT NULL
);
-- Derived, not sealed: current decisions counted per evaluation key, range of track ids (from `bucket` to
-- the key's next one) and reason (a reason code; '*' denied for any; '' allowed); kept by the command that
-- writes current_decisions and recounted by `audit verify` (licensing/decision_counts.py).
CREATE TABLE IF NOT EXISTS decision_counts (
    purpose VARCHAR NOT NULL,
    territory VARCHAR NOT NULL,
    on_date DATE NOT NULL,
    policy_hash VARCHAR NOT NULL,
    bucket VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    tracks BIGINT NOT NULL
);
-- Tracks of a proposed/approved release found denied after a deal or consent change.
CREATE TABLE IF NOT EXISTS release_alerts (
    release_id VARCHAR NOT NULL,
    track_id VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    reason_codes VARCHAR[] NOT NULL,
    checked_on DATE NOT NULL,
    detected_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (release_id, track_id)
);
CREATE TABLE IF NOT EXISTS rights_imports (
    file_sha256 VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,            -- json | csv | ddex
    path VARCHAR NOT NULL,
    imported_by VARCHAR NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL,
    summary JSON NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (file_sha256, kind)
);
-- A party withdrew consent: which consents got revoked_at (and any recording-scoped refusal written).
CREATE TABLE IF NOT EXISTS consent_revocations (
    revocation_id VARCHAR PRIMARY KEY,
    party_id VARCHAR NOT NULL,
    consent_ids VARCHAR[] NOT NULL,
    refusal_consent_id VARCHAR,
    isrc VARCHAR,
    revoked_at TIMESTAMPTZ NOT NULL,
    evidence_ref VARCHAR NOT NULL,
    evidence_sha256 VARCHAR,
    actor VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- A deal ended early: its valid_to before and after.
CREATE TABLE IF NOT EXISTS deal_expiries (
    deal_id VARCHAR NOT NULL,
    previous_valid_to DATE,
    valid_to DATE NOT NULL,
    evidence_ref VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    actor VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- Every change to rights data as an event (licensing/records.py): nothing is overwritten silently.
-- tightened/loosened name the aspects the change restricted or lifted (valid_to, territories.exclude,
-- ai_generative_training, revoked, contributors, ...); a record that would lift what a later event
-- restricted is refused (rights_conflict) unless it supersedes that event, with evidence.
CREATE TABLE IF NOT EXISTS rights_events (
    event_id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,            -- deal.recorded | deal.amended | deal.expired | consent.revoked | ...
    subject_kind VARCHAR NOT NULL,    -- deal | consent | recording | party
    subject_id VARCHAR NOT NULL,
    isrcs VARCHAR[] NOT NULL,
    party_ids VARCHAR[] NOT NULL,
    tightened VARCHAR[] NOT NULL,
    loosened VARCHAR[] NOT NULL,
    supersedes VARCHAR[] NOT NULL,
    evidence_ref VARCHAR,
    source VARCHAR NOT NULL,
    details JSON NOT NULL,
    actor VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- Derived text, left out of the row hash: `audit verify` re-derives it from the sealed columns.
COMMENT ON COLUMN decisions.explanation IS 'unsealed: derived from allowed, reason_codes, deal_id and consent_ids (schemas.decisions.explanation_for); audit verify checks it';
-- Lyrics licences from the publishing side, with the lyrics they license (long-form shards' text).
CREATE TABLE IF NOT EXISTS lyrics_licences (
    licence_id VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    iswc VARCHAR,
    publisher_party_id VARCHAR NOT NULL,
    publisher_name VARCHAR NOT NULL,
    license VARCHAR NOT NULL,
    purposes VARCHAR[] NOT NULL,
    territories VARCHAR[] NOT NULL,
    valid_from DATE,
    valid_to DATE,
    lyrics VARCHAR NOT NULL,
    lyrics_sha256 VARCHAR NOT NULL,
    language VARCHAR,
    evidence_ref VARCHAR NOT NULL,
    recorded_by VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
-- Every DDEX message applied, for ordering (MessageCreatedDateTime, then MessageId) and for
-- recognising a re-delivery of the same message (a no-op).
CREATE TABLE IF NOT EXISTS ddex_messages (
    sender VARCHAR NOT NULL,
    message_id VARCHAR NOT NULL,
    created_at TIMESTAMPTZ,
    kind VARCHAR NOT NULL,            -- new | update | purge
    ern_version VARCHAR NOT NULL,
    release_keys VARCHAR[] NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    conflicts INTEGER NOT NULL,       -- a message that met conflicts may be applied again (with --supersede)
    applied_at TIMESTAMPTZ NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (sender, message_id)
);
-- The recordings each DDEX release holds, as its latest message says (a purge or takedown withdraws them).
CREATE TABLE IF NOT EXISTS ddex_release_recordings (
    release_key VARCHAR NOT NULL,
    isrc VARCHAR NOT NULL,
    message_id VARCHAR NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (release_key, isrc)
);
-- Musical works and their writers and publishers (with publishing shares): their consent is required
-- like a recording contributor's for every recording of the work (recordings.iswc).
CREATE TABLE IF NOT EXISTS works (
    iswc VARCHAR PRIMARY KEY,
    title VARCHAR,
    source VARCHAR NOT NULL,
    row_sha256 VARCHAR,
    audit_seq BIGINT
);
CREATE TABLE IF NOT EXISTS work_contributors (
    iswc VARCHAR NOT NULL,
    party_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    share DOUBLE,
    row_sha256 VARCHAR,
    audit_seq BIGINT,
    PRIMARY KEY (iswc, party_id, role)
);
-- Indexes for a party's and a deal's recordings (licensing.records.party_isrcs: the impact preview of a
-- revocation, the re-decision it triggers; the party and deal pages): without them each lookup is a scan
-- of every contributor, rights controller and deal recording row.
CREATE INDEX IF NOT EXISTS licensing_contributors_party ON contributors (party_id);
CREATE INDEX IF NOT EXISTS licensing_rights_controllers_party ON rights_controllers (party_id);
CREATE INDEX IF NOT EXISTS licensing_deal_recordings_deal ON deal_recordings (deal_id);
CREATE INDEX IF NOT EXISTS licensing_deals_licensor ON deals (licensor_party_id);
