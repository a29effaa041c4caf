//! Write load for `validator bench raft`: N writer tasks on a node, each proposing one
//! `PutSetting` after the other, timing propose → committed and applied.
//!
//! The writers run inside the node (usually the leader) so the numbers measure the ledger —
//! batching, replication, fsync, apply — and not a load generator competing for the same two
//! cores. Each writer overwrites its own key, so the state stays bounded however long it runs.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use hdrhistogram::Histogram;
use ledger::command::Command;

use super::pb::RunLoadReply;
use crate::cluster::LedgerNode;

pub async fn run(node: Arc<LedgerNode>, writers: usize, duration: Duration, value_bytes: usize) -> RunLoadReply {
    let started = Instant::now();
    let until = started + duration;
    let value: String = "x".repeat(value_bytes);
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let node = node.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).ok();
            let (mut writes, mut errors, mut first_error) = (0u64, 0u64, String::new());
            let key = format!("bench/writer-{w}");
            while Instant::now() < until {
                let command = Command::PutSetting { key: key.clone(), value: value.clone() };
                let t = Instant::now();
                match node.propose(&command, Duration::from_secs(5)).await {
                    Ok(_) => {
                        writes += 1;
                        if let Some(h) = histogram.as_mut() {
                            let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if first_error.is_empty() {
                            first_error = e.to_string();
                        }
                    }
                }
            }
            (histogram, writes, errors, first_error)
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).ok();
    let (mut writes, mut errors, mut first_error) = (0u64, 0u64, String::new());
    for task in tasks {
        if let Ok((h, w, e, f)) = task.await {
            if let (Some(total), Some(h)) = (total.as_mut(), h.as_ref()) {
                let _ = total.add(h);
            }
            writes += w;
            errors += e;
            if first_error.is_empty() {
                first_error = f;
            }
        }
    }
    let q = |p: f64| total.as_ref().map(|h| h.value_at_quantile(p)).unwrap_or(0);
    RunLoadReply {
        writes,
        errors,
        elapsed_us: started.elapsed().as_micros() as u64,
        p50_us: q(0.5),
        p90_us: q(0.9),
        p99_us: q(0.99),
        max_us: total.as_ref().map(|h| h.max()).unwrap_or(0),
        first_error,
    }
}
