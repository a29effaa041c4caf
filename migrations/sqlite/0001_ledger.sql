-- The ledger of one validator node (SQLite). See raft/src/store/mod.rs for why the log, the
-- vote and the state machine share this one database, and raft/src/tables.rs for the
-- canonical form of the state tables (snapshots and state hashes are built from it).

-- Raft's own durable state: node_id, vote, committed, last purged log id.
CREATE TABLE raft_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- The replicated log; entry = postcard(openraft Entry).
CREATE TABLE raft_log (
    idx   INTEGER PRIMARY KEY,
    entry BLOB NOT NULL
);

-- The state machine's marker: last applied log id and membership, updated in the same
-- transaction as the rows each apply batch changes.
CREATE TABLE sm_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE neurons (
    uid              BIGINT PRIMARY KEY,
    hotkey           TEXT NOT NULL,
    coldkey          TEXT NOT NULL,
    stake_rao        BIGINT NOT NULL,
    validator_permit BOOLEAN NOT NULL,
    axon             TEXT,
    synced_block     BIGINT NOT NULL
);
CREATE INDEX neurons_hotkey ON neurons (hotkey);

CREATE TABLE workers (
    hotkey            TEXT NOT NULL,
    worker_id         TEXT NOT NULL,
    last_heartbeat_ms BIGINT NOT NULL,
    received_by       BIGINT NOT NULL,
    info_json         TEXT NOT NULL,
    PRIMARY KEY (hotkey, worker_id)
);

CREATE TABLE challenges (
    id               TEXT PRIMARY KEY,
    hotkey           TEXT NOT NULL,
    worker_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    seed             BLOB NOT NULL,
    matrix_size      BIGINT NOT NULL,
    iterations       BIGINT NOT NULL,
    status           TEXT NOT NULL,
    issued_at_ms     BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL,
    -- Deadline of the current status (byteleap-protocol.md §8.3.16: enforced at request time).
    deadline_ms      BIGINT,
    sent_at_ms       BIGINT,
    committed_at_ms  BIGINT,
    commitments_json TEXT,
    targets_json     TEXT,
    verifying_at_ms  BIGINT,
    -- The member holding the proof while it is verified.
    received_by      BIGINT,
    finished_at_ms   BIGINT,
    success          BOOLEAN,
    success_count    BIGINT,
    verification_ms  BIGINT,
    verified_by      BIGINT,
    -- The challenge ended for a reason on our side (lost proof, restart): never scored.
    validator_fault  BOOLEAN NOT NULL DEFAULT FALSE,
    notes            TEXT
);
CREATE INDEX challenges_worker ON challenges (hotkey, worker_id);
CREATE INDEX challenges_status ON challenges (status);

CREATE TABLE score_passes (
    seq           BIGINT PRIMARY KEY,
    at_ms         BIGINT NOT NULL,
    inputs_digest BLOB NOT NULL,
    weights       BLOB NOT NULL
);

CREATE TABLE weight_intents (
    window_id       BIGINT PRIMARY KEY,
    weights_hash    BLOB NOT NULL,
    account_nonce   BIGINT NOT NULL,
    era_birth_block BIGINT NOT NULL,
    era_period      BIGINT NOT NULL,
    leader          BIGINT NOT NULL,
    leader_term     BIGINT NOT NULL,
    at_ms           BIGINT NOT NULL,
    outcome         TEXT,
    outcome_detail  TEXT,
    outcome_at_ms   BIGINT
);
