//! A batch of CPU verifications through the real fan-out, for `validator bench verify`.
//!
//! Each job is a real challenge in the ledger (issued, committed, verifying: the same commands a
//! miner's requests produce, under the worker id `bench-*` of the hotkey `bench`), with an
//! honest proof ([`super::synthetic`]). All jobs are dispatched at once through this member's
//! [`Dispatcher`], which spreads them over the members by load; each verifier proposes its
//! verdict. The batch's time runs from the first dispatch to the last recorded verdict, so it
//! includes the QUIC hops and the verdict commits, not the setup.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;

use ledger::command::ChallengeKind;
use ledger::command::ChallengeStatus;
use ledger::command::ChallengeStep;
use ledger::command::ChallengeTransition;
use ledger::command::Command;
use ledger::command::IssuedChallenge;
use ledger::types::NodeId;

use super::fanout::Dispatcher;
use super::job::VerifyJob;
use super::synthetic;

const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Far enough that the leader's sweeps leave the bench challenges alone.
const DEADLINE: Duration = Duration::from_secs(3600);

/// Limits of one batch, so a mistyped request cannot occupy a member for hours.
pub const MAX_JOBS: u32 = 1000;
pub const MAX_ROWS: u32 = 1000;

#[derive(Debug, Clone, Copy)]
pub struct BatchSpec {
    pub jobs: u32,
    pub matrix_size: u64,
    pub iterations: u32,
    pub rows: u32,
}

#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub wall_ms: f64,
    pub setup_ms: f64,
    pub verified: u32,
    pub failed: u32,
    pub errors: u32,
    /// Mean time one verification took on its verifier.
    pub mean_verification_ms: f64,
    /// Verdicts per member.
    pub per_member: BTreeMap<NodeId, u64>,
    pub first_error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{0}")]
    Invalid(String),
    #[error("preparing the batch: {0}")]
    Setup(String),
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// Evenly spread, distinct rows.
fn spread_rows(n: u64, count: u32) -> Vec<u64> {
    let count = u64::from(count).min(n).max(1);
    (0..count).map(|i| i * n / count).collect()
}

/// Issues the batch's challenges, builds their proofs, then verifies them all at once.
pub async fn run(dispatcher: Arc<Dispatcher>, spec: BatchSpec) -> Result<BatchReport, BatchError> {
    if spec.jobs == 0 || spec.jobs > MAX_JOBS {
        return Err(BatchError::Invalid(format!("jobs must be between 1 and {MAX_JOBS}")));
    }
    if spec.rows == 0 || spec.rows > MAX_ROWS {
        return Err(BatchError::Invalid(format!("rows must be between 1 and {MAX_ROWS}")));
    }
    crate::challenge::cpu::check_cpu_matrix_size(spec.matrix_size).map_err(|e| BatchError::Invalid(e.to_string()))?;
    if spec.iterations == 0 || spec.iterations > 10 {
        return Err(BatchError::Invalid("iterations must be between 1 and 10".into()));
    }
    let node = dispatcher.node().clone();
    let setup = Instant::now();
    let rows = spread_rows(spec.matrix_size, spec.rows);
    let mut jobs: Vec<VerifyJob> = Vec::with_capacity(spec.jobs as usize);
    for i in 0..spec.jobs {
        let id = crate::duties::uuid_v4();
        let seed: [u8; 16] = rand::random();
        let at = now_ms();
        let deadline = at + DEADLINE.as_millis() as u64;
        let steps = [
            Command::IssueChallenge(IssuedChallenge {
                id: id.clone(),
                hotkey: "bench".into(),
                worker_id: format!("bench-{i}"),
                kind: ChallengeKind::CpuMatrix,
                seed,
                matrix_size: spec.matrix_size as u32,
                iterations: spec.iterations,
                issued_at_ms: at,
            }),
            Command::AdvanceChallenge(ChallengeTransition {
                id: id.clone(),
                from: ChallengeStatus::Created,
                step: ChallengeStep::Committed {
                    at_ms: at,
                    deadline_ms: deadline,
                    commitments_json: "[]".into(),
                    targets_json: "[]".into(),
                },
            }),
            Command::AdvanceChallenge(ChallengeTransition {
                id: id.clone(),
                from: ChallengeStatus::Committed,
                step: ChallengeStep::Verifying { at_ms: at, deadline_ms: deadline, received_by: node.id },
            }),
        ];
        for step in &steps {
            node.propose(step, PROPOSE_TIMEOUT).await.map_err(|e| BatchError::Setup(e.to_string()))?;
        }
        let (n, iterations, r) = (spec.matrix_size, spec.iterations, rows.clone());
        let job = tokio::task::spawn_blocking(move || synthetic::cpu_job(&id, seed, n, iterations, &r))
            .await
            .map_err(|e| BatchError::Setup(e.to_string()))?
            .map_err(|e| BatchError::Setup(e.to_string()))?;
        jobs.push(job);
    }
    let setup_ms = setup.elapsed().as_secs_f64() * 1000.0;

    let before = dispatcher.completed();
    let started = Instant::now();
    let results = futures::future::join_all(jobs.into_iter().map(|job| {
        let dispatcher = dispatcher.clone();
        async move { dispatcher.dispatch(job).await }
    }))
    .await;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;

    let mut report = BatchReport { wall_ms, setup_ms, ..Default::default() };
    let mut verification_ms = 0u64;
    for result in results {
        match result {
            Ok(verdict) if verdict.success => {
                report.verified += 1;
                verification_ms += verdict.verification_ms;
            }
            Ok(verdict) => {
                report.failed += 1;
                verification_ms += verdict.verification_ms;
                if report.first_error.is_empty() {
                    report.first_error = verdict.notes;
                }
            }
            Err(e) => {
                report.errors += 1;
                if report.first_error.is_empty() {
                    report.first_error = e;
                }
            }
        }
    }
    let done = report.verified + report.failed;
    if done > 0 {
        report.mean_verification_ms = verification_ms as f64 / f64::from(done);
    }
    for (member, count) in dispatcher.completed() {
        let delta = count - before.get(&member).copied().unwrap_or(0);
        if delta > 0 {
            report.per_member.insert(member, delta);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::spread_rows;

    #[test]
    fn rows_are_distinct_and_in_range() {
        let rows = spread_rows(2000, 50);
        assert_eq!(rows.len(), 50);
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        assert!(rows.iter().all(|&r| r < 2000));
        assert_eq!(spread_rows(10, 50).len(), 10);
    }
}
