//! The inputs of a scoring pass, read from the replicated ledger.
//!
//! Every member holds the same ledger, so any of them builds the same [`PassInputs`] for the same
//! `now` and state, and the digest in the recorded pass proves which inputs the leader used.
//! Presence comes from the bucket bitmaps heartbeats keep in the ledger (60 buckets per row,
//! `migrations/*/0004_presence.sql`), IP changes from their own table, challenges from the ended
//! ones of the ranking window. Lease scores come from MeshHub (§4.1), which is not connected
//! yet: every worker's lease score is 0 until it is.

use std::collections::BTreeMap;
use std::sync::Arc;

use ledger::LedgerError;
use ledger::state::StateReader;

use super::BUCKET_MS;
use super::ChallengeInput;
use super::GpuOwner;
use super::GpuPresence;
use super::IpTracker;
use super::MinerInput;
use super::PassInputs;
use super::ScoringParams;
use super::WorkerHistory;
use super::WorkerInput;

/// Buckets per ledger presence row (`ledger::state::apply::PRESENCE_BUCKETS_PER_BLOCK`).
const BUCKETS_PER_ROW: u64 = ledger::state::apply::PRESENCE_BUCKETS_PER_BLOCK as u64;

fn ms(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The buckets a presence row marks, oldest first.
fn buckets_of(block: i64, bits: i64) -> impl Iterator<Item = u64> {
    let base = ms(block) * BUCKETS_PER_ROW;
    (0..BUCKETS_PER_ROW).filter(move |i| (bits as u64) & (1 << i) != 0).map(move |i| base + i)
}

/// The GPU UUIDs of a commitment (`{uuid: merkle_root}` JSON, §3.7).
fn commitment_uuids(json: Option<&str>) -> Vec<String> {
    json.and_then(|j| serde_json::from_str::<BTreeMap<String, serde_json::Value>>(j).ok())
        .map(|map| map.into_keys().collect())
        .unwrap_or_default()
}

/// Reads what a pass at `now_ms` needs. Miners are in hotkey order (§4 notes on float order).
pub async fn inputs_from_ledger(
    state: &StateReader,
    now_ms: u64,
    params: &ScoringParams,
) -> Result<PassInputs, LedgerError> {
    let wh = params.availability_window_hours;
    let window_start = params.availability_window_start(now_ms);
    let first_row = (window_start / BUCKET_MS / BUCKETS_PER_ROW) as i64;

    let mut neurons = state.neurons().await?;
    neurons.sort_by_key(|n| n.uid);
    let metagraph = neurons.into_iter().map(|n| n.hotkey).collect();

    let mut presence: BTreeMap<(String, String), Vec<(i64, i64)>> = BTreeMap::new();
    for (hotkey, worker, block, bits) in state.worker_presence(first_row).await? {
        presence.entry((hotkey, worker)).or_default().push((block, bits));
    }
    let mut gpu_presence: BTreeMap<String, GpuPresence> = BTreeMap::new();
    for (hotkey, uuid, block, bits) in state.gpu_presence(first_row).await? {
        let entry = gpu_presence.entry(hotkey).or_insert_with(|| GpuPresence::new(wh));
        for bucket in buckets_of(block, bits) {
            entry.record(bucket * BUCKET_MS, [uuid.as_str()]);
        }
    }
    let mut changes: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for (hotkey, worker, _at, _ip, prev) in state.ip_changes(window_start as i64).await? {
        changes.entry((hotkey, worker)).or_default().push(ms(prev));
    }
    let r_start = params.ranking_window_start(now_ms) as i64;
    let mut challenges: BTreeMap<(String, String), Vec<ChallengeInput>> = BTreeMap::new();
    for c in state.scored_challenges(r_start).await? {
        let uuids: Arc<[String]> = commitment_uuids(c.commitments_json.as_deref()).into();
        let computation_time_ms = match (c.sent_at_ms, c.committed_at_ms) {
            (Some(sent), Some(committed)) => Some(committed.saturating_sub(sent) as f64),
            _ => None,
        };
        let success = c.success == Some(true);
        challenges.entry((c.hotkey, c.worker_id)).or_default().push(ChallengeInput {
            created_at_ms: ms(c.issued_at_ms),
            computation_time_ms,
            gpu_uuids: uuids,
            success_count: u32::try_from(c.success_count.unwrap_or(0)).unwrap_or(0),
            verified: c.status == "verified",
            verification_result: success,
            is_success: success,
        });
    }

    let mut workers: BTreeMap<String, Vec<WorkerInput>> = BTreeMap::new();
    for (hotkey, worker_id, last_heartbeat, last_ip, last_ip_at) in state.scoring_workers().await? {
        let key = (hotkey, worker_id);
        let mut history = WorkerHistory::new(wh);
        for (block, bits) in presence.remove(&key).unwrap_or_default() {
            for bucket in buckets_of(block, bits) {
                history.buckets.mark_bucket(bucket);
            }
        }
        history.last_heartbeat_ms = Some(ms(last_heartbeat));
        history.ip =
            IpTracker::from_ledger(last_ip, last_ip_at.map(ms).unwrap_or(0), &changes.remove(&key).unwrap_or_default());
        let (hotkey, worker_id) = key.clone();
        workers.entry(hotkey).or_default().push(WorkerInput {
            worker_id,
            lease_score: 0.0,
            history,
            challenges: challenges.remove(&key).unwrap_or_default(),
        });
    }

    let miners = state
        .all_miners()
        .await?
        .into_iter()
        .map(|(hotkey, last)| MinerInput {
            workers: workers.remove(&hotkey).unwrap_or_default(),
            gpu_presence: gpu_presence.remove(&hotkey).unwrap_or_else(|| GpuPresence::new(wh)),
            last_heartbeat_ms: Some(ms(last)),
            hotkey,
        })
        .collect();
    let gpu_inventory = state
        .gpu_owners()
        .await?
        .into_iter()
        .map(|(uuid, hotkey, last_seen)| GpuOwner { uuid, hotkey, last_seen_ms: ms(last_seen) })
        .collect();
    Ok(PassInputs { now_ms, metagraph, miners, gpu_inventory })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_rows_give_their_buckets_in_order() {
        let buckets: Vec<u64> = buckets_of(2, (1 << 0) | (1 << 5) | (1 << 59)).collect();
        assert_eq!(buckets, [120, 125, 179]);
        assert_eq!(buckets_of(0, 0).count(), 0);
        assert_eq!(buckets_of(1, -1).count(), 60, "all 60 bits, whatever the sign bit does");
    }

    #[test]
    fn commitments_give_their_uuids() {
        assert_eq!(commitment_uuids(Some(r#"{"GPU-2": "aa", "GPU-1": "bb"}"#)), ["GPU-1", "GPU-2"]);
        assert_eq!(commitment_uuids(Some(r#"{"-1": "aa"}"#)), ["-1"]);
        assert!(commitment_uuids(Some("[]")).is_empty());
        assert!(commitment_uuids(None).is_empty());
    }
}
