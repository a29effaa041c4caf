//! Heartbeats applied on both backends: miners, IP changes, workers, and GPU ownership that is
//! tracked instead of last-writer-wins (byteleap-protocol.md §8.2.8).

mod common;

use ledger::Storage;
use ledger::command::Command;
use ledger::command::GpuReport;
use ledger::command::Heartbeat;
use ledger::command::WorkerStatus;

fn worker(id: &str, gpus: &[&str]) -> WorkerStatus {
    WorkerStatus {
        worker_id: id.into(),
        worker_name: Some(format!("name-{id}")),
        worker_version: Some("0.0.5".into()),
        capabilities: vec!["cpu_matrix".into(), "gpu_matrix".into()],
        status: "online".into(),
        gpus: gpus
            .iter()
            .map(|u| GpuReport { uuid: u.to_string(), model: "RTX 4090".into(), memory_mb: 24564 })
            .collect(),
        info_json: "{}".into(),
    }
}

fn heartbeat(hotkey: &str, at_ms: u64, ip: &str, workers: Vec<WorkerStatus>) -> Command {
    Command::RecordHeartbeat(Heartbeat {
        hotkey: hotkey.into(),
        at_ms,
        received_by: 7,
        public_ip: Some(ip.into()),
        miner_version: Some("0.0.5".into()),
        workers,
    })
}

async fn scenario(url: &str) {
    let (_guard, dir) = common::temp_dir();
    let (_db, storage) = Storage::open(url, &dir).await.unwrap();
    let reader = storage.reader.clone();
    let mut a = common::Applier::new(storage.state_machine);
    let minute = 60_000;

    a.apply(heartbeat("alice", 1_000, "1.1.1.1", vec![worker("w1", &["GPU-A"])])).await;
    a.apply(heartbeat("alice", 1_000 + minute, "1.1.1.1", vec![worker("w1", &["GPU-A"])])).await;
    a.apply(heartbeat("alice", 1_000 + 2 * minute, "2.2.2.2", vec![worker("w1", &["GPU-A"])])).await;
    // An out-of-order (older) heartbeat does not move last_heartbeat back.
    a.apply(heartbeat("alice", 1_000 + minute / 2, "2.2.2.2", vec![worker("w1", &["GPU-A"])])).await;
    let m = reader.miner("alice").await.unwrap().unwrap();
    assert_eq!(m.ip_changes, 1);
    assert_eq!(m.ip_changed_at_ms, Some(1_000 + 2 * minute as i64));
    assert_eq!(m.last_heartbeat_ms, 1_000 + 2 * minute as i64);

    // Mallory claims Alice's GPU while Alice is active: recorded as a conflict, not moved.
    a.apply(heartbeat("mallory", 1_000 + 3 * minute, "6.6.6.6", vec![worker("m1", &["GPU-A"])])).await;
    let gpu = reader.gpu("GPU-A").await.unwrap().unwrap();
    assert_eq!((gpu.hotkey.as_str(), gpu.worker_id.as_str()), ("alice", "w1"));
    assert_eq!(gpu.conflicts, 1);
    assert_eq!(gpu.contested_by.as_deref(), Some("mallory:m1"));
    assert_eq!(reader.gpus_of("alice", "w1").await.unwrap().len(), 1);
    assert!(reader.gpus_of("mallory", "m1").await.unwrap().is_empty());

    // After Alice has been silent about it for over 30 min, the GPU may move (hardware moved).
    a.apply(heartbeat("bob", 1_000 + 40 * minute, "3.3.3.3", vec![worker("b1", &["GPU-A"])])).await;
    let gpu = reader.gpu("GPU-A").await.unwrap().unwrap();
    assert_eq!((gpu.hotkey.as_str(), gpu.worker_id.as_str()), ("bob", "b1"));
    assert_eq!(gpu.first_seen_ms, 1_000 + 40 * minute as i64);

    // Two workers of one heartbeat reporting one uuid: the first keeps it, nothing fails.
    a.apply(heartbeat("carol", 1_000, "4.4.4.4", vec![worker("c1", &["GPU-C"]), worker("c2", &["GPU-C"])])).await;
    assert_eq!(reader.gpu("GPU-C").await.unwrap().unwrap().worker_id, "c1");
}

/// Availability inputs (§4.3, §8.4.25): presence bits per worker and per (hotkey, GPU) in rows
/// of 60 five-minute buckets, IP changes per worker, and the hourly pruning.
async fn presence_scenario(url: &str) {
    let (_guard, dir) = common::temp_dir();
    let (_db, storage) = Storage::open(url, &dir).await.unwrap();
    let reader = storage.reader.clone();
    let mut a = common::Applier::new(storage.state_machine);
    const BUCKET: u64 = 300_000;
    const HOUR: u64 = 12 * BUCKET;
    // Bucket 1,000,001 is bit 41 of block 16,666 (1,000,001 = 16,666 * 60 + 41); not an hour start.
    let t0 = 1_000_001 * BUCKET + 10_000;
    let with_gpus = |id: &str, info: &str| WorkerStatus { info_json: info.into(), ..worker(id, &[]) };
    let info = r#"{"gpu_info": [{"uuid": "GPU-1"}, {"gpu_uuid": "GPU-2"}, {"id": "GPU-3"}, {"uuid": "-1"}, {"id": 7}, {"uuid": null, "id": "GPU-4"}]}"#;
    a.apply(heartbeat("dave", t0, "1.1.1.1", vec![with_gpus("d1", info), worker("d2", &[])])).await;
    // Same bucket again: no new bit; the next bucket: the next bit of the same row.
    a.apply(heartbeat("dave", t0 + 60_000, "1.1.1.1", vec![worker("d1", &[])])).await;
    a.apply(heartbeat("dave", t0 + BUCKET, "2.2.2.2", vec![worker("d1", &[])])).await;
    // An empty IP is ignored by the walk, then a change back.
    a.apply(heartbeat("dave", t0 + 2 * BUCKET, "", vec![worker("d1", &[])])).await;
    a.apply(heartbeat("dave", t0 + 3 * BUCKET, "1.1.1.1", vec![worker("d1", &[])])).await;

    let presence = reader.worker_presence(0).await.unwrap();
    let d1: Vec<(i64, i64)> = presence.iter().filter(|r| r.1 == "d1").map(|r| (r.2, r.3)).collect();
    assert_eq!(d1, [(16_666, (1 << 41) | (1 << 42) | (1 << 43) | (1 << 44))]);
    let d2: Vec<(i64, i64)> = presence.iter().filter(|r| r.1 == "d2").map(|r| (r.2, r.3)).collect();
    assert_eq!(d2, [(16_666, 1 << 41)]);
    let gpus: Vec<String> = reader.gpu_presence(0).await.unwrap().into_iter().map(|r| r.1).collect();
    assert_eq!(gpus, ["GPU-1", "GPU-2", "GPU-3", "GPU-4"], "uuid, else gpu_uuid, else id; never -1 or a number");
    let changes: Vec<(String, i64, String, i64)> =
        reader.ip_changes(0).await.unwrap().into_iter().map(|c| (c.1, c.2, c.3, c.4)).collect();
    assert_eq!(
        changes,
        [
            ("d1".to_string(), (t0 + BUCKET) as i64, "2.2.2.2".to_string(), (t0 + 60_000) as i64),
            ("d1".to_string(), (t0 + 3 * BUCKET) as i64, "1.1.1.1".to_string(), (t0 + BUCKET) as i64)
        ],
        "d2 never saw another IP; the empty one is skipped; each change names the IP heartbeat before it"
    );
    // A window starting after the first change's previous heartbeat counts only the second.
    assert_eq!(reader.ip_changes((t0 + 60_001) as i64).await.unwrap().len(), 1);

    // Across a block boundary: bucket 1,000,020 is bit 0 of block 16,667.
    a.apply(heartbeat("dave", 1_000_020 * BUCKET, "1.1.1.1", vec![worker("d1", &[])])).await;
    let blocks: Vec<i64> = reader.worker_presence(16_667).await.unwrap().iter().map(|r| r.2).collect();
    assert_eq!(blocks, [16_667]);
    assert_eq!(reader.worker_presence(16_667).await.unwrap()[0].3, 1);

    // Nine days later (beyond the 197 h retention), at an hour start: the old rows go.
    let later = (1_000_020 * BUCKET + 9 * 24 * HOUR) / HOUR * HOUR;
    a.apply(heartbeat("dave", later, "9.9.9.9", vec![worker("d1", &[])])).await;
    let left: Vec<i64> = reader.worker_presence(0).await.unwrap().iter().map(|r| r.2).collect();
    assert_eq!(left, [(later / BUCKET / 60) as i64]);
    assert!(reader.gpu_presence(0).await.unwrap().is_empty());
    let changes = reader.ip_changes(0).await.unwrap();
    assert_eq!(changes.len(), 1, "only the change of the new heartbeat is left: {changes:?}");
}

#[tokio::test]
async fn presence_on_sqlite() {
    presence_scenario("sqlite://ledger.db").await;
}

#[tokio::test]
async fn presence_on_postgres() {
    let Some(pg) = common::fresh_pg().await else { return };
    presence_scenario(&pg.url).await;
}

#[tokio::test]
async fn heartbeats_on_sqlite() {
    scenario("sqlite://ledger.db").await;
}

#[tokio::test]
async fn heartbeats_on_postgres() {
    let Some(pg) = common::fresh_pg().await else { return };
    scenario(&pg.url).await;
}
