//! Issuing challenges and enforcing their deadlines (byteleap-protocol.md §3.1, §3.9, §8.3.16).
//!
//! Every `challenge_interval` the leader picks, for each miner heard within 5 minutes and not
//! challenged within the interval, up to 100 of its most recently heard workers that have the
//! right capability, no challenge in progress and (for GPU challenges) an allowed GPU, and
//! issues one challenge to each: a fresh 16-byte seed and the matrix size it draws. Every few
//! seconds it also ends what is overdue: polled but not committed, committed but not proven,
//! proofs never verified (a validator-side fault), proofs held by a member that left (also a
//! validator-side fault), and challenges never polled.

use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use openraft::Instant as _;

use ledger::command::Applied;
use ledger::command::ChallengeKind;
use ledger::command::ChallengeStatus;
use ledger::command::ChallengeStep;
use ledger::command::ChallengeTransition;
use ledger::command::Command;
use ledger::command::IssuedChallenge;

use crate::challenge::ChallengeSeed;
use crate::challenge::cpu::cpu_dynamic_matrix_size;
use crate::challenge::gpu::gpu_dynamic_matrix_size;
use crate::cluster::LedgerNode;
use crate::config::ValidationSection;

/// A miner is online for challenges if heard within this (Appendix A: 5 min).
const ONLINE_MINER_MS: i64 = 5 * 60 * 1000;
/// A worker is online if heard within this (Appendix A: heartbeat deadline 2 min).
const ONLINE_WORKER_MS: i64 = 2 * 60 * 1000;
/// Workers challenged per miner per pass (Appendix A: 100).
const MAX_WORKERS_PER_MINER: usize = 100;
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// A member unheard for this long is taken as down for the proofs it holds.
const HOLDER_DOWN: Duration = Duration::from_secs(5);
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most challenges of one status one sweep ends; the rest wait for the next sweep (2 s later),
/// so a backlog never turns into one enormous burst of writes.
pub const SWEEP_LIMIT: i64 = 5000;
/// Endings per ledger entry.
const SWEEP_CHUNK: usize = 250;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Runs the issuing pass and the sweeps while this member leads.
pub async fn run(node: Arc<LedgerNode>, settings: ValidationSection) {
    let mut last_issue: Option<std::time::Instant> = None;
    let interval = Duration::from_secs(settings.challenge_interval);
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        if node.metrics().running_state.is_err() {
            return;
        }
        if !node.is_leader() {
            last_issue = None;
            continue;
        }
        if let Err(e) = sweep(&node, &settings).await {
            tracing::warn!(error = %e, "challenge sweep");
        }
        if last_issue.is_none_or(|t| t.elapsed() >= interval) {
            last_issue = Some(std::time::Instant::now());
            match issue(&node, &settings).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(issued = n, "challenges issued"),
                Err(e) => tracing::warn!(error = %e, "challenge issuing"),
            }
        }
    }
}

/// One issuing pass; returns how many challenges were issued.
pub async fn issue(node: &LedgerNode, settings: &ValidationSection) -> anyhow::Result<usize> {
    let now = now_ms();
    let kind = ChallengeKind::parse(&settings.challenge_type).unwrap_or(ChallengeKind::GpuMatrix);
    let interval_ms = settings.challenge_interval as i64 * 1000;
    let mut issued = 0;
    for (hotkey, last_issued) in node.state.active_miners(now - ONLINE_MINER_MS).await? {
        if last_issued.is_some_and(|t| now - t < interval_ms) {
            continue;
        }
        let busy = node.state.busy_workers(&hotkey).await?;
        let workers = node.state.workers_of(&hotkey).await?;
        let mut commands = Vec::new();
        for worker in
            workers.iter().filter(|w| now - w.last_heartbeat_ms <= ONLINE_WORKER_MS).take(MAX_WORKERS_PER_MINER)
        {
            if busy.contains(&worker.worker_id) || !worker.capabilities.iter().any(|c| c == kind.as_str()) {
                continue;
            }
            if kind == ChallengeKind::GpuMatrix && !has_allowed_gpu(node, &hotkey, &worker.worker_id, settings).await? {
                continue;
            }
            let seed: [u8; 16] = rand::random();
            let size = draw_size(kind, &ChallengeSeed::from_bytes(seed), settings)?;
            let iterations = match kind {
                ChallengeKind::CpuMatrix => settings.cpu.iterations,
                ChallengeKind::GpuMatrix => settings.gpu.iterations,
            };
            let command = Command::IssueChallenge(IssuedChallenge {
                id: super::uuid_v4(),
                hotkey: hotkey.clone(),
                worker_id: worker.worker_id.clone(),
                kind,
                seed,
                matrix_size: u32::try_from(size)?,
                iterations,
                issued_at_ms: now as u64,
            });
            commands.push(command);
        }
        // One ledger entry per miner and pass (§3.1: up to 100 workers).
        for result in node.propose_all(&commands, PROPOSE_TIMEOUT).await {
            match result {
                Ok(Applied::Done) => issued += 1,
                Ok(other) => tracing::debug!(%hotkey, outcome = ?other, "challenge not issued"),
                Err(e) => tracing::warn!(%hotkey, error = %e, "challenge not issued"),
            }
        }
    }
    metrics::counter!("challenges_issued_total").increment(issued as u64);
    Ok(issued)
}

fn draw_size(kind: ChallengeKind, seed: &ChallengeSeed, settings: &ValidationSection) -> anyhow::Result<u64> {
    Ok(match kind {
        ChallengeKind::CpuMatrix => {
            cpu_dynamic_matrix_size(seed, settings.cpu.matrix_size, settings.cpu.size_variance)?
        }
        ChallengeKind::GpuMatrix => {
            gpu_dynamic_matrix_size(seed, settings.gpu.matrix_size, settings.gpu.size_variance)?
        }
    })
}

/// §3.1 step 4: at least one of the worker's GPUs matches the allowlist (empty allows all).
async fn has_allowed_gpu(
    node: &LedgerNode,
    hotkey: &str,
    worker: &str,
    settings: &ValidationSection,
) -> anyhow::Result<bool> {
    let gpus = node.state.gpus_of(hotkey, worker).await?;
    let allow = &settings.gpu.model_allowlist;
    Ok(gpus
        .iter()
        .filter(|g| g.uuid != "-1")
        .any(|g| allow.is_empty() || allow.iter().any(|a| g.model.to_lowercase().contains(&a.to_lowercase()))))
}

/// Ends overdue challenges (§3.9, with deadlines enforced: §8.3.16).
pub async fn sweep(node: &LedgerNode, settings: &ValidationSection) -> anyhow::Result<usize> {
    let now = now_ms();
    let metrics = node.metrics();
    let members: std::collections::HashSet<u64> =
        metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect();
    // Members the leader has not heard from for a while hold their proofs in a memory that is
    // probably gone (a crash loses them anyway): their verifications end as validator faults.
    let down: std::collections::HashSet<u64> = metrics
        .heartbeat
        .as_ref()
        .map(|beats| {
            beats
                .iter()
                .filter(|(id, at)| **id != node.id && at.as_ref().is_none_or(|t| (**t).elapsed() > HOLDER_DOWN))
                .map(|(id, _)| *id)
                .collect()
        })
        .unwrap_or_default();
    let mut endings = Vec::new();
    for c in node.state.overdue_challenges_limited(ChallengeStatus::Sent, now, SWEEP_LIMIT).await? {
        endings.push((c.id, ChallengeStatus::Sent, "Challenge timeout after being sent to miner".to_string(), false));
    }
    for c in node.state.overdue_challenges_limited(ChallengeStatus::Committed, now, SWEEP_LIMIT).await? {
        endings.push((c.id, ChallengeStatus::Committed, "No proof before the deadline".to_string(), false));
    }
    // Verifying challenges are few (proofs in flight) and also end when their holder is gone,
    // whatever their deadline.
    for c in node.state.challenges_in(ChallengeStatus::Verifying).await? {
        let holder_gone = c.received_by.is_some_and(|m| !members.contains(&(m as u64)) || down.contains(&(m as u64)));
        if holder_gone {
            let notes = format!("Proof lost with member {} (validator side)", c.received_by.unwrap_or_default());
            endings.push((c.id, ChallengeStatus::Verifying, notes, true));
        } else if c.deadline_ms.is_some_and(|d| d < now) {
            endings.push((
                c.id,
                ChallengeStatus::Verifying,
                "Verification did not complete (validator side)".into(),
                true,
            ));
        }
    }
    for c in node.state.stale_created_limited(now - settings.created_timeout as i64 * 1000, SWEEP_LIMIT).await? {
        endings.push((c.id, ChallengeStatus::Created, "Never polled before expiry".to_string(), false));
    }
    let count = endings.len();
    let commands: Vec<Command> = endings
        .into_iter()
        .map(|(id, from, notes, validator_fault)| {
            Command::AdvanceChallenge(ChallengeTransition {
                id,
                from,
                step: ChallengeStep::Failed { at_ms: now as u64, notes, validator_fault },
            })
        })
        .collect();
    // Chunks small enough that a heartbeat never waits long behind one expiry entry.
    for chunk in commands.chunks(SWEEP_CHUNK) {
        for result in node.propose_all(chunk, PROPOSE_TIMEOUT).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "sweep transition not recorded");
            }
        }
    }
    if count > 0 {
        metrics::counter!("challenges_expired_total").increment(count as u64);
    }
    Ok(count)
}
