-- What heartbeats tell (byteleap-protocol.md §2.10.1): miners, their workers, and the GPUs the
-- workers report. GPU ownership is tracked, not last-writer-wins (§8.2.8).

CREATE TABLE miners (
    hotkey            TEXT PRIMARY KEY,
    public_ip         TEXT,
    miner_version     TEXT,
    last_heartbeat_ms BIGINT NOT NULL,
    received_by       BIGINT NOT NULL,
    -- Changes of public_ip seen so far, and when the last one happened (§4.3 IP penalty).
    ip_changes        BIGINT NOT NULL,
    ip_changed_at_ms  BIGINT
);

ALTER TABLE workers ADD COLUMN worker_name TEXT;
ALTER TABLE workers ADD COLUMN worker_version TEXT;
ALTER TABLE workers ADD COLUMN capabilities TEXT NOT NULL DEFAULT '[]';
ALTER TABLE workers ADD COLUMN status TEXT NOT NULL DEFAULT 'online';

CREATE TABLE gpu_inventory (
    gpu_uuid        TEXT PRIMARY KEY,
    hotkey          TEXT NOT NULL,
    worker_id       TEXT NOT NULL,
    gpu_model       TEXT NOT NULL,
    memory_mb       BIGINT NOT NULL,
    first_seen_ms   BIGINT NOT NULL,
    last_seen_ms    BIGINT NOT NULL,
    -- Another hotkey or worker that reported this UUID while its owner was active.
    contested_by    TEXT,
    conflicts       BIGINT NOT NULL
);
CREATE INDEX gpu_inventory_worker ON gpu_inventory (hotkey, worker_id);
