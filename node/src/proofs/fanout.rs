//! Verification spread across the members (architecture.md, data flow 3).
//!
//! Proofs stay off the log: the member whose axon received a proof builds a [`VerifyJob`] and
//! hands it to the least-loaded member — itself or a peer over QUIC (`Request("verify")`). The
//! verifier runs it on a blocking thread and proposes the verdict itself (`verifying →
//! verified/failed`). If a peer fails or dies mid-job the job goes to another member; if every
//! peer fails it runs here. A job lost together with its receiving member is failed later by
//! the leader's sweep as a validator-side fault, never against the worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use futures::future::BoxFuture;
use ledger::command::ChallengeStatus;
use ledger::command::ChallengeStep;
use ledger::command::ChallengeTransition;
use ledger::command::Command;
use ledger::types::NodeId;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use transport::frame::Fault;
use transport::frame::Header;
use transport::frame::Kind;

use super::job::Verdict;
use super::job::VerifyJob;
use crate::cluster::LedgerNode;

/// The cluster service name of verification requests.
pub const SERVICE: &str = "verify";
/// How long one member may take for one job before it is given to another.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// Runs jobs on this member, `workers` at once (`validation.verification_workers`; 0 = one per
/// core).
pub struct Verifier {
    node: Arc<LedgerNode>,
    slots: Arc<Semaphore>,
}

impl Verifier {
    pub fn new(node: Arc<LedgerNode>, workers: usize) -> Arc<Verifier> {
        let workers =
            if workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { workers };
        Arc::new(Verifier { node, slots: Arc::new(Semaphore::new(workers)) })
    }

    /// Verifies here and records the verdict in the ledger.
    pub async fn verify_and_record(&self, job: VerifyJob) -> Result<Verdict, String> {
        let permit = self.slots.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let id = job.challenge_id.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job.run()
        })
        .await
        .map_err(|e| format!("verification task failed: {e}"))?;
        metrics::histogram!("verification_seconds").record(verdict.verification_ms as f64 / 1000.0);
        metrics::counter!("verifications_total", "success" => verdict.success.to_string()).increment(1);
        let command = Command::AdvanceChallenge(ChallengeTransition {
            id: id.clone(),
            from: ChallengeStatus::Verifying,
            step: ChallengeStep::Verified {
                at_ms: now_ms(),
                success: verdict.success,
                success_count: verdict.success_count,
                verification_ms: verdict.verification_ms,
                verified_by: self.node.id,
                notes: verdict.notes.clone(),
            },
        });
        match self.node.propose(&command, PROPOSE_TIMEOUT).await {
            Ok(_) => Ok(verdict),
            Err(e) => Err(format!("verdict for {id} not recorded: {e}")),
        }
    }

    /// The cluster service answering peers' jobs.
    pub fn service(self: &Arc<Self>) -> crate::cluster::ServiceFn {
        let verifier = self.clone();
        Arc::new(move |body: Vec<u8>, _peer| -> BoxFuture<'static, Result<Vec<u8>, Fault>> {
            let verifier = verifier.clone();
            Box::pin(async move {
                let job: VerifyJob = postcard::from_bytes(&body).map_err(|e| Fault::Malformed(e.to_string()))?;
                let verdict = verifier.verify_and_record(job).await.map_err(Fault::Failed)?;
                postcard::to_allocvec(&verdict).map_err(|e| Fault::Failed(e.to_string()))
            })
        })
    }
}

/// Chooses who verifies each job.
pub struct Dispatcher {
    node: Arc<LedgerNode>,
    verifier: Arc<Verifier>,
    /// Jobs this member has handed to each member and not yet seen finish.
    assigned: Mutex<HashMap<NodeId, usize>>,
    /// Verdicts each member returned for jobs dispatched here, since start.
    completed: Mutex<HashMap<NodeId, u64>>,
}

impl Dispatcher {
    pub fn new(node: Arc<LedgerNode>, verifier: Arc<Verifier>) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            node,
            verifier,
            assigned: Mutex::new(HashMap::new()),
            completed: Mutex::new(HashMap::new()),
        })
    }

    /// The member this dispatcher runs on.
    pub fn node(&self) -> &Arc<LedgerNode> {
        &self.node
    }

    /// Verdicts returned by each member for jobs dispatched here, since start.
    pub fn completed(&self) -> HashMap<NodeId, u64> {
        self.completed.lock().clone()
    }

    /// Members in the order to try: least loaded first, this member winning ties.
    fn candidates(&self) -> Vec<NodeId> {
        let metrics = self.node.metrics();
        let membership = metrics.membership_config.membership();
        let assigned = self.assigned.lock();
        let mut members: Vec<(usize, bool, NodeId)> = membership
            .nodes()
            .map(|(id, _)| (assigned.get(id).copied().unwrap_or(0), *id != self.node.id, *id))
            .collect();
        if !members.iter().any(|m| m.2 == self.node.id) {
            members.push((assigned.get(&self.node.id).copied().unwrap_or(0), false, self.node.id));
        }
        members.sort();
        members.into_iter().map(|m| m.2).collect()
    }

    fn adjust(&self, member: NodeId, delta: isize) {
        let mut assigned = self.assigned.lock();
        let count = assigned.entry(member).or_default();
        *count = count.saturating_add_signed(delta);
    }

    /// Verifies `job` somewhere in the cluster and returns the verdict.
    pub async fn dispatch(&self, job: VerifyJob) -> Result<Verdict, String> {
        let mut last_error = String::from("no member could verify");
        for member in self.candidates() {
            self.adjust(member, 1);
            let result = if member == self.node.id {
                self.verifier.verify_and_record(job.clone()).await
            } else {
                self.remote(member, &job).await
            };
            self.adjust(member, -1);
            match result {
                Ok(verdict) => {
                    *self.completed.lock().entry(member).or_default() += 1;
                    metrics::counter!("verification_jobs_total", "where" => if member == self.node.id { "local" } else { "peer" })
                        .increment(1);
                    return Ok(verdict);
                }
                Err(e) => {
                    metrics::counter!("verification_jobs_reassigned_total").increment(1);
                    tracing::warn!(challenge = %job.challenge_id, member, error = %e, "verification job reassigned");
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }

    async fn remote(&self, member: NodeId, job: &VerifyJob) -> Result<Verdict, String> {
        let target = self.node.member(member).ok_or_else(|| format!("member {member} left"))?;
        let body = postcard::to_allocvec(job).map_err(|e| e.to_string())?;
        let reply: Vec<u8> = self
            .node
            .endpoint
            .unary(
                &target.raft_addr,
                &target.name,
                Header::new(Kind::Request(SERVICE.into()), member),
                &body,
                CALL_TIMEOUT,
            )
            .await
            .map_err(|e| e.to_string())?;
        postcard::from_bytes(&reply).map_err(|e| format!("bad verdict from {member}: {e}"))
    }
}
