//! What validatorctl prints: tables for people, JSON for scripts; and `validator tools`.

pub mod tools;

use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;

use crate::admin::pb;

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// One row per node: `(label, status or None when unreachable)`.
pub fn status_table(rows: &[(usize, Option<pb::StatusReply>)]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "node",
        "id",
        "role",
        "term",
        "leader",
        "last",
        "committed",
        "applied",
        "lag",
        "verified",
        "failed",
        "backend",
    ]);
    // The leader's view of replication lag, if some node leads.
    let leader_view = rows.iter().filter_map(|(_, s)| s.as_ref()).find(|s| s.state == "leader");
    for (index, status) in rows {
        match status {
            Some(s) => {
                let lag = leader_view
                    .and_then(|l| l.members.iter().find(|m| m.member.as_ref().is_some_and(|mm| mm.id == s.id)))
                    .and_then(|m| m.lag);
                table.add_row(vec![
                    format!("{} ({})", index, s.name),
                    s.id.to_string(),
                    s.state.clone(),
                    s.term.to_string(),
                    opt(s.leader),
                    opt(s.last_log_index),
                    opt(s.committed),
                    opt(s.applied),
                    opt(lag),
                    s.challenges_verified.to_string(),
                    s.challenges_failed.to_string(),
                    s.backend.clone(),
                ]);
            }
            None => {
                table.add_row(vec![index.to_string(), "-".into(), "down".into()]);
            }
        }
    }
    table.to_string()
}

/// The members table of one node's status.
pub fn members_table(status: &pb::StatusReply) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["id", "name", "role", "raft", "admin", "matched", "lag", "heartbeat ms"]);
    for m in &status.members {
        let Some(spec) = &m.member else { continue };
        let role = if status.leader == Some(spec.id) {
            "leader"
        } else if m.voter {
            "voter"
        } else {
            "learner"
        };
        table.add_row(vec![
            spec.id.to_string(),
            spec.name.clone(),
            role.to_string(),
            spec.raft_addr.clone(),
            spec.admin_addr.clone(),
            opt(m.matched_index),
            opt(m.lag),
            opt(m.heartbeat_age_ms),
        ]);
    }
    table.to_string()
}

/// A status as JSON (stable keys for scripts).
pub fn status_json(status: &pb::StatusReply) -> serde_json::Value {
    serde_json::json!({
        "id": status.id,
        "name": status.name,
        "state": status.state,
        "term": status.term,
        "leader": status.leader,
        "last_log_index": status.last_log_index,
        "committed": status.committed,
        "applied": status.applied,
        "snapshot": status.snapshot,
        "purged": status.purged,
        "millis_since_quorum_ack": status.millis_since_quorum_ack,
        "initialized": status.initialized,
        "backend": status.backend,
        "version": status.version,
        "leader_changes": status.leader_changes,
        "running": status.running,
        "members": status.members.iter().filter_map(|m| m.member.as_ref().map(|s| serde_json::json!({
            "id": s.id,
            "name": s.name,
            "raft_addr": s.raft_addr,
            "admin_addr": s.admin_addr,
            "voter": m.voter,
            "matched_index": m.matched_index,
            "lag": m.lag,
            "heartbeat_age_ms": m.heartbeat_age_ms,
        }))).collect::<Vec<_>>(),
    })
}
