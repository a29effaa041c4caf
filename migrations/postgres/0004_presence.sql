-- The availability inputs of the scoring pass (byteleap-protocol.md §4.3), kept as bucket
-- bitmaps (§8.4.25) instead of one row per worker per heartbeat: one row per worker (or per
-- hotkey and GPU UUID) per block of 60 five-minute buckets (5 h); bit i is set when a heartbeat
-- fell in bucket block * 60 + i. 169 h is at most 35 rows per worker. Rows older than the
-- window are dropped by the heartbeats themselves.
CREATE TABLE worker_presence (
    hotkey     TEXT NOT NULL,
    worker_id  TEXT NOT NULL,
    block      BIGINT NOT NULL,
    bits       BIGINT NOT NULL,
    PRIMARY KEY (hotkey, worker_id, block)
);

-- GPU presence per hotkey (§4.3 step 3: the union over the hotkey's records of the UUIDs in
-- each worker's system_info.gpu_info).
CREATE TABLE gpu_presence (
    hotkey     TEXT NOT NULL,
    gpu_uuid   TEXT NOT NULL,
    block      BIGINT NOT NULL,
    bits       BIGINT NOT NULL,
    PRIMARY KEY (hotkey, gpu_uuid, block)
);

-- The IP walk of §4.3 step 7: a worker's last non-empty public IP and when it was reported,
-- and each change of it with the time of the heartbeat before the change (a change counts for
-- a pass only when that heartbeat is inside the pass's window: the walk starts there).
ALTER TABLE workers ADD COLUMN last_ip TEXT;
ALTER TABLE workers ADD COLUMN last_ip_at_ms BIGINT;
CREATE TABLE worker_ip_changes (
    hotkey     TEXT NOT NULL,
    worker_id  TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,
    public_ip  TEXT NOT NULL,
    prev_at_ms BIGINT NOT NULL,
    PRIMARY KEY (hotkey, worker_id, at_ms)
);
