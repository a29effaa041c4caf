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

#[tokio::test]
async fn heartbeats_on_sqlite() {
    scenario("sqlite://ledger.db").await;
}

#[tokio::test]
async fn heartbeats_on_postgres() {
    let Some(pg) = common::fresh_pg().await else { return };
    scenario(&pg.url).await;
}
