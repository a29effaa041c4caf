//! Prometheus view of the node: Raft's metrics mirrored into gauges.
//!
//! openraft publishes its metrics on a watch channel; this task copies every change into the
//! `metrics` registry (served by metrics-exporter-prometheus) and counts leader changes. Names
//! follow ha-anchors.md §5 (must-have metrics).

use std::sync::Arc;

use openraft::Instant as _;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use super::LedgerNode;

/// Describes the node's metrics once, so `/metrics` carries help text (promtool checks it).
pub fn describe() {
    use metrics::describe_counter;
    use metrics::describe_gauge;
    use metrics::describe_histogram;
    describe_gauge!("raft_is_leader", "1 if this node is the Raft leader");
    describe_gauge!("raft_term", "current Raft term");
    describe_gauge!("raft_last_log_index", "index of the last log entry");
    describe_gauge!("raft_committed_index", "index of the last committed entry");
    describe_gauge!("raft_applied_index", "index of the last applied entry");
    describe_gauge!("raft_apply_lag", "committed minus applied entries");
    describe_gauge!("raft_snapshot_index", "last log index covered by the current snapshot");
    describe_gauge!("raft_purged_index", "last purged log index");
    describe_gauge!("raft_millis_since_quorum_ack", "leader only: ms since a quorum acknowledged this leader");
    describe_gauge!("raft_replication_lag", "leader only: entries a follower is behind");
    describe_gauge!("raft_heartbeat_age_ms", "leader only: ms since a follower acknowledged a heartbeat");
    describe_gauge!("raft_voters", "number of voters in the membership");
    describe_counter!("raft_leader_changes_total", "times this node saw the leader change");
    describe_counter!("raft_dead_leader_detected_total", "probes that found the leader's port closed (fast failover)");
    describe_histogram!("ledger_log_commit_seconds", "log store transaction commit (fsync) latency");
    describe_histogram!("ledger_proposal_seconds", "proposal to applied latency");
    describe_histogram!("ledger_log_commit_ops", "write operations per log store transaction (group commit)");
    describe_histogram!("ledger_apply_batch_seconds", "time to apply one batch of entries");
    describe_histogram!("ledger_apply_batch_entries", "entries per apply batch");
    describe_histogram!("ledger_snapshot_build_seconds", "snapshot build time");
    describe_counter!("ledger_entries_applied_total", "log entries applied to the state machine");
    describe_counter!("ledger_log_write_errors_total", "log store write failures");
    describe_counter!("ledger_snapshots_installed_total", "snapshots installed from a leader");
    describe_counter!("ledger_proposals_failed_total", "proposals that did not commit, by reason");
    describe_counter!("transport_handshakes_refused_total", "cluster connections refused at the TLS handshake");
    describe_counter!("transport_streams_refused_total", "cluster streams refused (malformed, wrong member)");
    describe_counter!("transport_snapshots_refused_total", "snapshots refused (size or checksum)");
}

const EXPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Mirrors Raft metrics into the registry until Raft stops.
pub async fn mirror(node: Arc<LedgerNode>) {
    let mut rx = node.raft.metrics();
    let mut last_leader = None;
    let mut last_export = std::time::Instant::now() - EXPORT_EVERY;
    loop {
        let m = rx.borrow_and_update().clone();
        // Leader changes are counted on every update; gauges are refreshed at most every
        // EXPORT_EVERY (metrics change on every commit, scrapes come every few seconds).
        if m.current_leader == last_leader && last_export.elapsed() < EXPORT_EVERY {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(EXPORT_EVERY) => {}
            }
            continue;
        }
        last_export = std::time::Instant::now();
        if m.current_leader != last_leader {
            if last_leader.is_some() || m.current_leader.is_some() {
                node.count_leader_change();
                metrics::counter!("raft_leader_changes_total").increment(1);
            }
            last_leader = m.current_leader;
        }
        let idx = |l: Option<ledger::types::LogId>| l.map(|l| l.index as f64).unwrap_or(0.0);
        metrics::gauge!("raft_is_leader").set(if m.state == ServerState::Leader { 1.0 } else { 0.0 });
        metrics::gauge!("raft_term").set(m.current_term as f64);
        metrics::gauge!("raft_last_log_index").set(m.last_log_index.unwrap_or(0) as f64);
        metrics::gauge!("raft_committed_index").set(idx(m.local_committed));
        metrics::gauge!("raft_applied_index").set(idx(m.last_applied));
        metrics::gauge!("raft_apply_lag").set((idx(m.local_committed) - idx(m.last_applied)).max(0.0));
        metrics::gauge!("raft_snapshot_index").set(idx(m.snapshot));
        metrics::gauge!("raft_purged_index").set(idx(m.purged));
        metrics::gauge!("raft_voters").set(m.membership_config.membership().voter_ids().count() as f64);
        if let Some(acked) = &m.last_quorum_acked {
            metrics::gauge!("raft_millis_since_quorum_ack").set((**acked).elapsed().as_millis() as f64);
        }
        if let Some(replication) = &m.replication {
            let last = m.last_log_index.unwrap_or(0);
            for (id, matched) in replication {
                let matched = matched.map(|l| l.index).unwrap_or(0);
                metrics::gauge!("raft_replication_lag", "follower" => id.to_string())
                    .set(last.saturating_sub(matched) as f64);
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
