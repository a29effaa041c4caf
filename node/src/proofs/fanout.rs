//! Verification spread across the members (architecture.md, data flow 3).
//!
//! Proofs stay off the log: the member whose axon received a proof builds a [`VerifyJob`] and
//! hands it to a member with a free verification slot — itself or a peer over QUIC
//! (`Request("verify")`). Dispatch is pull-shaped: each member is given at most its slots plus
//! one job queued behind them (so the QUIC hop overlaps a running job), and the next job goes to
//! whichever member frees a slot first. A fast or idle member therefore takes more jobs and a
//! busy one fewer, and a batch ends when the last slot drains, not when the unluckiest member of
//! an up-front split finishes its share. Each member's slot count travels back with its
//! verdicts.
//!
//! The verifier runs a job on a blocking thread and records the verdict (`verifying →
//! verified/failed`); verdicts that finish while a write is in flight share the next ledger
//! entry ([`Command::Batch`]). If a peer fails or dies mid-job the job goes to another member;
//! if every peer fails it runs here. A job lost together with its receiving member is failed
//! later by the leader's sweep as a validator-side fault, never against the worker.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use futures::future::BoxFuture;
use ledger::command::Applied;
use ledger::command::ChallengeStatus;
use ledger::command::ChallengeStep;
use ledger::command::ChallengeTransition;
use ledger::command::Command;
use ledger::command::ProposeError;
use ledger::types::NodeId;
use parking_lot::Mutex;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
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
/// Jobs queued at a member beyond its slots, so a slot that frees finds the next job there.
const QUEUED_PER_MEMBER: usize = 1;
/// Verdicts waiting for the ledger at most (back-pressure on the verifiers beyond it).
const VERDICT_QUEUE: usize = 4096;
/// Verdicts per ledger entry at most.
const VERDICTS_PER_ENTRY: usize = 200;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// What a peer answers to a job: the verdict and how many jobs it runs at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReply {
    pub verdict: Verdict,
    pub slots: u32,
}

type VerdictWrite = (Command, oneshot::Sender<Result<Applied, ProposeError>>);

/// Runs jobs on this member, `workers` at once (`validation.verification_workers`; 0 = one per
/// core).
pub struct Verifier {
    node_id: NodeId,
    slots: Arc<Semaphore>,
    workers: usize,
    verdicts: mpsc::Sender<VerdictWrite>,
}

impl Verifier {
    /// Must be called inside the runtime: it starts the task that writes verdicts.
    pub fn new(node: Arc<LedgerNode>, workers: usize) -> Arc<Verifier> {
        let workers =
            if workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { workers };
        let (verdicts, queue) = mpsc::channel(VERDICT_QUEUE);
        let node_id = node.id;
        tokio::spawn(record_verdicts(node, queue));
        Arc::new(Verifier { node_id, slots: Arc::new(Semaphore::new(workers)), workers, verdicts })
    }

    /// How many jobs this member runs at once.
    pub fn workers(&self) -> usize {
        self.workers
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
                verified_by: self.node_id,
                notes: verdict.notes.clone(),
            },
        });
        let (done, written) = oneshot::channel();
        self.verdicts
            .send((command, done))
            .await
            .map_err(|_| format!("verdict for {id} not recorded: shutting down"))?;
        match written.await {
            Ok(Ok(_)) => Ok(verdict),
            Ok(Err(e)) => Err(format!("verdict for {id} not recorded: {e}")),
            Err(_) => Err(format!("verdict for {id} not recorded: shutting down")),
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
                let reply = VerifyReply { verdict, slots: u32::try_from(verifier.workers).unwrap_or(u32::MAX) };
                postcard::to_allocvec(&reply).map_err(|e| Fault::Failed(e.to_string()))
            })
        })
    }
}

/// Writes verdicts: whatever queued up while the previous write was in flight goes into the
/// next entry, so a busy verifier costs the ledger one entry per round trip, not one per proof.
async fn record_verdicts(node: Arc<LedgerNode>, mut queue: mpsc::Receiver<VerdictWrite>) {
    let mut pending: Vec<VerdictWrite> = Vec::new();
    while let Some(first) = queue.recv().await {
        pending.push(first);
        while pending.len() < VERDICTS_PER_ENTRY {
            match queue.try_recv() {
                Ok(next) => pending.push(next),
                Err(_) => break,
            }
        }
        let commands: Vec<Command> = pending.iter().map(|(command, _)| command.clone()).collect();
        let results = node.propose_all(&commands, PROPOSE_TIMEOUT).await;
        for ((_, done), result) in pending.drain(..).zip(results) {
            let _ = done.send(result);
        }
    }
}

/// Chooses who verifies each job.
pub struct Dispatcher {
    node: Arc<LedgerNode>,
    verifier: Arc<Verifier>,
    /// Jobs this member has handed to each member and not yet seen finish.
    assigned: Mutex<HashMap<NodeId, usize>>,
    /// Slots each member reported with its last verdict (this member's are known).
    slots: Mutex<HashMap<NodeId, usize>>,
    /// Verdicts each member returned for jobs dispatched here, since start.
    completed: Mutex<HashMap<NodeId, u64>>,
    /// Woken whenever a job finishes somewhere, so a waiting job looks again.
    freed: Notify,
}

impl Dispatcher {
    pub fn new(node: Arc<LedgerNode>, verifier: Arc<Verifier>) -> Arc<Dispatcher> {
        let mut slots = HashMap::new();
        slots.insert(node.id, verifier.workers());
        Arc::new(Dispatcher {
            node,
            verifier,
            assigned: Mutex::new(HashMap::new()),
            slots: Mutex::new(slots),
            completed: Mutex::new(HashMap::new()),
            freed: Notify::new(),
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

    /// The members of the current membership (this member always included).
    fn members(&self) -> Vec<NodeId> {
        let metrics = self.node.metrics();
        let mut members: Vec<NodeId> = metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect();
        if !members.contains(&self.node.id) {
            members.push(self.node.id);
        }
        members
    }

    /// Takes a place at the member with the most room, or `None` if every member not in
    /// `excluded` is full. Room is free places over slots; this member wins ties (no hop).
    fn take_place(&self, excluded: &HashSet<NodeId>) -> Option<NodeId> {
        let members = self.members();
        let own_slots = self.verifier.workers();
        let slots = self.slots.lock();
        let mut assigned = self.assigned.lock();
        let mut best: Option<(f64, bool, NodeId)> = None;
        for member in members.into_iter().filter(|m| !excluded.contains(m)) {
            let capacity = slots.get(&member).copied().unwrap_or(own_slots).max(1);
            let busy = assigned.get(&member).copied().unwrap_or(0);
            if busy >= capacity + QUEUED_PER_MEMBER {
                continue;
            }
            let load = busy as f64 / capacity as f64;
            let key = (load, member != self.node.id, member);
            if best.is_none_or(|b| key.partial_cmp(&b).is_some_and(|o| o.is_lt())) {
                best = Some(key);
            }
        }
        let member = best?.2;
        *assigned.entry(member).or_default() += 1;
        Some(member)
    }

    fn release(&self, member: NodeId) {
        {
            let mut assigned = self.assigned.lock();
            let count = assigned.entry(member).or_default();
            *count = count.saturating_sub(1);
        }
        self.freed.notify_waiters();
    }

    /// Verifies `job` somewhere in the cluster and returns the verdict.
    pub async fn dispatch(&self, job: VerifyJob) -> Result<Verdict, String> {
        let mut excluded: HashSet<NodeId> = HashSet::new();
        let mut last_error = String::from("no member could verify");
        loop {
            // Register for the wake-up before looking, so a release in between is not missed.
            let freed = self.freed.notified();
            let Some(member) = self.take_place(&excluded) else {
                if self.members().iter().all(|m| excluded.contains(m)) {
                    return Err(last_error);
                }
                // Also look again now and then: a member may join or leave meanwhile.
                let _ = tokio::time::timeout(Duration::from_millis(200), freed).await;
                continue;
            };
            let result = if member == self.node.id {
                self.verifier.verify_and_record(job.clone()).await
            } else {
                self.remote(member, &job).await
            };
            self.release(member);
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
                    excluded.insert(member);
                    last_error = e;
                }
            }
        }
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
        let reply: VerifyReply = postcard::from_bytes(&reply).map_err(|e| format!("bad verdict from {member}: {e}"))?;
        // A peer's slot count, bounded so a confused peer cannot draw every job.
        self.slots.lock().insert(member, (reply.slots as usize).clamp(1, 256));
        Ok(reply.verdict)
    }
}
