//! What the validator answers to each miner synapse (byteleap-protocol.md §2.4–§2.10, §3.5–§3.7).
//!
//! Every answer is built from the replicated state and every change is a ledger command, so any
//! member can serve any miner: a heartbeat becomes `RecordHeartbeat`, a task poll moves the
//! miner's `created` challenges to `sent`. Sessions are the exception: they live in this
//! member's memory only (§2.8), so a miner whose requests reach another member after a failover
//! gets 4012 once and opens a new session there (§10 item 10).

use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use std::collections::BTreeMap;
use std::collections::HashSet;

use ledger::command::Applied;
use ledger::command::ChallengeStatus;
use ledger::command::ChallengeStep;
use ledger::command::ChallengeTransition;
use ledger::command::Command;
use ledger::command::GpuReport;
use ledger::command::Heartbeat;
use ledger::command::WorkerStatus;
use ledger::state::ChallengeRow;
use serde_json::Value;
use serde_json::json;

use super::http::MinerService;
use super::http::Synapse;
use super::limits::RateLimiter;
use super::messages;
use super::messages::CommitmentData;
use super::messages::HeartbeatData;
use super::messages::ProofData;
use super::session::SessionHandle;
use super::session::SessionStore;
use super::session::errors;
use crate::challenge::targets::CpuTargetSettings;
use crate::challenge::targets::GpuTargetSettings;
use crate::challenge::targets::TargetSeed;
use crate::challenge::targets::VerificationTarget;
use crate::challenge::targets::select_cpu_targets;
use crate::challenge::targets::select_gpu_targets;
use crate::cluster::LedgerNode;
use crate::proofs::fanout::Dispatcher;
use crate::proofs::job::VerifyJob;

/// How long a proposal made for a miner request may take before the miner is answered with an
/// error (the miner's own timeouts are 10–40 s, §2.11).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(8);
/// `error_code` of a heartbeat that could not be recorded (§2.10.5 HEARTBEAT_PROCESSING_FAILED).
const HEARTBEAT_PROCESSING_FAILED: i64 = 1004;

/// Settings of the miner protocol (original keys under `validation.*`, §6).
#[derive(Debug, Clone, Default)]
pub struct ProtocolSettings {
    pub validation: crate::config::ValidationSection,
}

/// The validator's side of the miner protocol on one member.
pub struct MinerDesk {
    node: Arc<LedgerNode>,
    sessions: SessionStore,
    limiter: RateLimiter,
    settings: ProtocolSettings,
    dispatcher: Arc<Dispatcher>,
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

fn now_ms() -> u64 {
    (now_s() * 1000.0) as u64
}

impl MinerDesk {
    pub fn new(
        node: Arc<LedgerNode>,
        sessions: SessionStore,
        limiter: RateLimiter,
        settings: ProtocolSettings,
        dispatcher: Arc<Dispatcher>,
    ) -> Self {
        MinerDesk { node, sessions, limiter, settings, dispatcher }
    }

    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    fn monotonic_s(&self) -> u64 {
        // The limiter only compares seconds; wall seconds are fine and shared with sessions.
        now_s() as u64
    }

    /// An encrypted synapse: rate limit, session, decrypt, handle, encrypt (§2.3, §2.6, §2.9).
    async fn encrypted(&self, synapse: Synapse, hotkey: &str, request: Option<String>) -> String {
        if !self.limiter.allow(hotkey, self.monotonic_s()) {
            metrics::counter!("axon_rate_limited_total").increment(1);
            return errors::rate_limited();
        }
        let Some(package) = request.filter(|r| !r.is_empty()) else {
            return errors::empty_request();
        };
        let (handle, payload) = match self.sessions.decrypt_request(hotkey, synapse.protocol_type(), &package, now_s())
        {
            Ok(opened) => opened,
            Err(e) => {
                metrics::counter!("axon_session_errors_total", "code" => e.code().to_string()).increment(1);
                return e.response_json();
            }
        };
        let answer = match synapse {
            Synapse::Heartbeat => self.heartbeat(hotkey, &payload).await,
            Synapse::Task => self.task(hotkey, &payload).await,
            Synapse::Challenge => self.commitment(hotkey, &payload).await,
            Synapse::ChallengeProof => self.proof(hotkey, &payload).await,
            Synapse::SessionInit => Err(errors::no_processor(synapse.protocol_type())),
        };
        match answer {
            Ok(value) => self.seal(&handle, &value),
            Err(plaintext) => plaintext,
        }
    }

    fn seal(&self, handle: &SessionHandle, value: &Value) -> String {
        match self.sessions.encrypt_response(handle, value) {
            Ok(package) => package,
            Err(e) => errors::response_encryption_failed(&e.to_string()),
        }
    }

    /// `HEARTBEAT_V1` (§2.10.1): recorded through the ledger, answered `HeartbeatResponse`.
    async fn heartbeat(&self, hotkey: &str, payload: &Value) -> Result<Value, String> {
        let data = HeartbeatData::parse(payload).map_err(|e| errors::request_model_invalid(&e.0))?;
        if data.dropped > 0 {
            metrics::counter!("axon_heartbeat_workers_dropped_total").increment(data.dropped as u64);
        }
        let count = data.workers.len();
        let command = heartbeat_command(hotkey, now_ms(), self.node.id, data);
        let (error_code, message) = match self.node.propose(&command, PROPOSE_TIMEOUT).await {
            Ok(_) => (0, format!("Processed heartbeat for {count} workers")),
            Err(e) => {
                tracing::warn!(%hotkey, error = %e, "heartbeat not recorded");
                (HEARTBEAT_PROCESSING_FAILED, format!("Heartbeat processing failed: {e}"))
            }
        };
        Ok(json!({
            "error_code": error_code,
            "message": message,
            "workers_processed": if error_code == 0 { count } else { 0 },
            "timestamp": now_s(),
            "request_id": null,
            "schema_version": 1,
        }))
    }

    /// `TASK_V1` (§2.10.2): hand out this miner's `created` challenges, each moved to `sent`.
    async fn task(&self, hotkey: &str, payload: &Value) -> Result<Value, String> {
        messages::parse_task_request(payload).map_err(|e| errors::request_model_invalid(&e.0))?;
        let created = match self.node.state.challenges_of(hotkey, ChallengeStatus::Created).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "reading challenges");
                return Ok(json!({"error": "Processing failed with code 1", "error_code": 1}));
            }
        };
        let timeout_ms = self.settings.validation.challenge_timeout * 1000;
        let at = now_ms();
        // One ledger entry for the whole hand-out (up to 100 challenges, §3.1).
        let sends: Vec<Command> = created
            .iter()
            .map(|c| {
                Command::AdvanceChallenge(ChallengeTransition {
                    id: c.id.clone(),
                    from: ChallengeStatus::Created,
                    step: ChallengeStep::Sent { at_ms: at, deadline_ms: at + timeout_ms },
                })
            })
            .collect();
        let results = self.node.propose_all(&sends, PROPOSE_TIMEOUT).await;
        let mut batch = Vec::new();
        for (c, result) in created.iter().zip(results) {
            match result {
                Ok(Applied::Done) => batch.push(self.challenge_entry(c)),
                Ok(_) => {} // another member sent it first
                Err(e) => tracing::warn!(challenge = %c.id, error = %e, "could not mark sent"),
            }
        }
        Ok(if batch.is_empty() {
            json!({"task_type": "no_task", "task_data": null, "timestamp": now_s(), "schema_version": 1})
        } else {
            json!({
                "task_type": "compute_challenge_batch",
                "task_data": {"challenges": batch},
                "timestamp": now_s(),
                "schema_version": 1,
            })
        })
    }

    /// One entry of a `compute_challenge_batch` (§2.10.2) with the challenge data of §3.2/§3.3.
    fn challenge_entry(&self, c: &ChallengeRow) -> Value {
        let seed = hex::encode(&c.seed);
        let round_id = format!("round_{}", c.issued_at_ms / 1000);
        let mut data = json!({
            "challenge_type": c.kind,
            "matrix_size": c.matrix_size,
            "seed": seed,
            "iterations": c.iterations,
            "challenge_id": c.id,
            "worker_id": c.worker_id,
            "miner_hotkey": c.hotkey,
            "round_id": round_id,
        });
        if c.kind == "gpu_matrix" {
            data["mode"] = json!(0);
            data["target_gpu_id"] = json!(-1);
        }
        json!({
            "challenge_id": c.id,
            "challenge_type": c.kind,
            "data": data,
            "timeout": self.settings.validation.challenge_timeout.clamp(1, 300),
            "target_worker_id": c.worker_id,
        })
    }

    /// Loads a challenge of this miner, or the error the original answers (§3.5 step 1).
    async fn own_challenge(&self, hotkey: &str, payload: &Value) -> Result<ChallengeRow, Value> {
        let Some(id) = payload.get("challenge_id").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
        else {
            return Err(json!({"error": "Missing required field: challenge_id"}));
        };
        match self.node.state.challenge(id).await {
            Ok(Some(c)) if c.hotkey == hotkey => Ok(c),
            Ok(_) => Err(json!({"error": format!("Challenge {id} not found or not accessible")})),
            Err(e) => {
                tracing::error!(error = %e, "reading a challenge");
                Err(json!({"error": "Processing failed with code 1", "error_code": 1}))
            }
        }
    }

    /// Fails a challenge (best effort; a race with another member is fine).
    async fn fail(&self, c: &ChallengeRow, from: ChallengeStatus, notes: String) {
        let command = Command::AdvanceChallenge(ChallengeTransition {
            id: c.id.clone(),
            from,
            step: ChallengeStep::Failed { at_ms: now_ms(), notes, validator_fault: false },
        });
        if let Err(e) = self.node.propose(&command, PROPOSE_TIMEOUT).await {
            tracing::warn!(challenge = %c.id, error = %e, "could not record a failure");
        }
    }

    /// `CHALLENGE_V1`: a Phase 1 commitment (§3.5, §3.6), answered with proof requests.
    async fn commitment(&self, hotkey: &str, payload: &Value) -> Result<Value, String> {
        let c = match self.own_challenge(hotkey, payload).await {
            Ok(c) => c,
            Err(answer) => return Ok(answer),
        };
        let data = match CommitmentData::parse(payload) {
            Ok(d) => d,
            Err(e) => return Ok(json!({"error": e.0})),
        };
        let status = ChallengeStatus::parse(&c.status).unwrap_or(ChallengeStatus::Failed);
        if !matches!(status, ChallengeStatus::Created | ChallengeStatus::Sent) {
            return Ok(json!({"error": format!("Challenge {} already processed (status {})", c.id, c.status)}));
        }
        // Deadlines hold when the request arrives, not at the next sweep (§8.3.16).
        if c.deadline_ms.is_some_and(|d| (now_ms() as i64) > d) {
            self.fail(&c, status, "Commitment after the challenge deadline".into()).await;
            return Ok(json!({"error": format!("Challenge {} expired", c.id)}));
        }
        let seed_hex = hex::encode(&c.seed);
        let gpu = c.kind == "gpu_matrix";
        let mut commitments = BTreeMap::new();
        if gpu {
            let owned = match self.node.state.gpus_of(hotkey, &data.worker_id).await {
                Ok(gpus) => gpus.into_iter().map(|g| g.uuid).collect::<HashSet<_>>(),
                Err(e) => {
                    tracing::error!(error = %e, "reading the GPU inventory");
                    return Ok(json!({"error": "Processing failed with code 1", "error_code": 1}));
                }
            };
            for commitment in &data.commitments {
                let failure = if commitment.uuid == "-1" {
                    Some("CPU sentinel uuid in a GPU challenge".to_string())
                } else if !owned.contains(&commitment.uuid) {
                    Some(format!("GPU {} is not in this worker's inventory", commitment.uuid))
                } else if commitment.sig_val.is_empty() {
                    return Ok(json!({"error": format!("Missing signature for GPU {}", commitment.uuid)}));
                } else {
                    crate::challenge::signature::verify_gpu_commitment_signature_with(
                        &self.settings.validation.gpu.commitment_public_key,
                        commitment.sig_ver,
                        &seed_hex,
                        &commitment.uuid,
                        &commitment.merkle_root,
                        &commitment.sig_val,
                    )
                    .err()
                    .map(|e| format!("GPU {} signature invalid: {e}", commitment.uuid))
                };
                if let Some(notes) = failure {
                    self.fail(&c, status, notes.clone()).await;
                    return Ok(json!({"error": notes}));
                }
                commitments.insert(commitment.uuid.clone(), commitment.merkle_root.clone());
            }
        } else {
            for commitment in &data.commitments {
                commitments.insert(commitment.uuid.clone(), commitment.merkle_root.clone());
            }
        }
        if data.worker_id != c.worker_id {
            return Ok(json!({"error": format!("Worker {} does not own challenge {}", data.worker_id, c.id)}));
        }
        let target_seed = TargetSeed(rand::random());
        let v = &self.settings.validation;
        let n = c.matrix_size as u64;
        let (targets, requests) = if gpu {
            let settings = GpuTargetSettings {
                coordinate_count: v.gpu.verification.coordinate_sample_count,
                coordinate_count_variance: v.gpu.verification.coordinate_sample_count_variance,
                row_count: v.gpu.verification.row_verification_count,
                row_count_variance: v.gpu.verification.row_verification_count_variance,
            };
            match select_gpu_targets(&target_seed, n, &settings) {
                Ok(t) => {
                    let coords: Vec<[u64; 2]> = t.coordinates.iter().map(|&(r, c)| [r, c]).collect();
                    let requests: Vec<Value> = commitments
                        .keys()
                        .map(|uuid| json!({"uuid": uuid, "rows": t.rows, "coordinates": coords}))
                        .collect();
                    (t.to_targets(), requests)
                }
                Err(e) => return Ok(json!({"error": format!("Target selection failed: {e}")})),
            }
        } else if commitments.contains_key("-1") {
            let settings = CpuTargetSettings {
                row_count: v.cpu.verification.row_verification_count,
                row_count_variance: v.cpu.verification.row_verification_count_variance,
            };
            match select_cpu_targets(&target_seed, n, &settings) {
                Ok(t) => {
                    let rows: Vec<u64> = t
                        .iter()
                        .filter_map(|t| match t {
                            VerificationTarget::Row { row } => Some(*row),
                            VerificationTarget::Coordinate { .. } => None,
                        })
                        .collect();
                    (t, vec![json!({"uuid": "-1", "rows": rows, "coordinates": []})])
                }
                Err(e) => return Ok(json!({"error": format!("Target selection failed: {e}")})),
            }
        } else {
            (Vec::new(), Vec::new())
        };
        let at = now_ms();
        let step = if requests.is_empty() {
            ChallengeStep::AutoVerified { at_ms: at }
        } else {
            ChallengeStep::Committed {
                at_ms: at,
                deadline_ms: at + v.proof_timeout * 1000,
                commitments_json: serde_json::to_string(&commitments).unwrap_or_default(),
                targets_json: serde_json::to_string(&targets).unwrap_or_default(),
            }
        };
        let command = Command::AdvanceChallenge(ChallengeTransition { id: c.id.clone(), from: status, step });
        match self.node.propose(&command, PROPOSE_TIMEOUT).await {
            Ok(p) if p.applied == Applied::Done => {}
            Ok(_) => return Ok(json!({"error": format!("Challenge {} already processed", c.id)})),
            Err(e) => return Ok(json!({"error": format!("Commitment not recorded: {e}")})),
        }
        Ok(if requests.is_empty() {
            json!({"proof_requests": [], "auto_verified": true, "message": "No proof required for these commitments"})
        } else {
            json!({"proof_requests": requests})
        })
    }

    /// `CHALLENGE_PROOF_V1`: a Phase 2 proof (§3.7), queued for verification on some member.
    async fn proof(&self, hotkey: &str, payload: &Value) -> Result<Value, String> {
        let c = match self.own_challenge(hotkey, payload).await {
            Ok(c) => c,
            Err(answer) => return Ok(answer),
        };
        if c.status != "committed" {
            return Ok(json!({"error": format!("Challenge {} is not awaiting proofs (status {})", c.id, c.status)}));
        }
        if c.deadline_ms.is_some_and(|d| (now_ms() as i64) > d) {
            self.fail(&c, ChallengeStatus::Committed, "Proof after the deadline".into()).await;
            return Ok(json!({"error": format!("Challenge {} expired", c.id)}));
        }
        let commitments: BTreeMap<String, String> =
            c.commitments_json.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        let targets: Vec<VerificationTarget> =
            c.targets_json.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        if commitments.is_empty() {
            return Ok(json!({"error": format!("Challenge {} has no commitments", c.id)}));
        }
        let proof = match ProofData::parse(payload, c.kind == "gpu_matrix", &commitments) {
            Ok(p) => p,
            Err(e) => return Ok(json!({"error": e.0})),
        };
        let v = &self.settings.validation;
        let at = now_ms();
        let command = Command::AdvanceChallenge(ChallengeTransition {
            id: c.id.clone(),
            from: ChallengeStatus::Committed,
            step: ChallengeStep::Verifying {
                at_ms: at,
                deadline_ms: at + v.verification_timeout * 1000,
                received_by: self.node.id,
            },
        });
        match self.node.propose(&command, PROPOSE_TIMEOUT).await {
            Ok(p) if p.applied == Applied::Done => {}
            Ok(_) => return Ok(json!({"error": format!("Challenge {} already received a proof", c.id)})),
            Err(e) => return Ok(json!({"error": format!("Proof not recorded: {e}")})),
        }
        let job = VerifyJob {
            challenge_id: c.id.clone(),
            seed: c.seed.as_slice().try_into().unwrap_or([0; 16]),
            matrix_size: c.matrix_size as u64,
            iterations: c.iterations as u32,
            targets,
            commitments,
            proof,
            abs_tolerance: v.gpu.verification.abs_tolerance,
            rel_tolerance: v.gpu.verification.rel_tolerance,
            success_rate_threshold: v.gpu.verification.success_rate_threshold,
            row_sample_rate: v.gpu.verification.row_sample_rate,
            sample_seed: rand::random(),
        };
        let dispatcher = self.dispatcher.clone();
        tokio::spawn(async move {
            if let Err(e) = dispatcher.dispatch(job).await {
                tracing::warn!(error = %e, "verification did not complete; the leader's sweep will end the challenge");
            }
        });
        Ok(json!({
            "challenge_status": "queued",
            "message": "Proof data received and queued for verification",
            "challenge_id": c.id,
        }))
    }
}

impl MinerService for MinerDesk {
    async fn answer(&self, synapse: Synapse, hotkey: &str, request: Option<String>) -> Option<String> {
        Some(match synapse {
            Synapse::SessionInit => match request {
                Some(r) => match self.sessions.handshake(hotkey, &r, now_s()) {
                    Ok(response) => {
                        metrics::counter!("axon_sessions_opened_total").increment(1);
                        response
                    }
                    Err(e) => e.response_json(),
                },
                None => errors::handshake_failed("empty handshake request"),
            },
            other => self.encrypted(other, hotkey, request).await,
        })
    }
}

/// The ledger command of one heartbeat, as `received_by` got it at `at_ms` (§2.10.1).
pub fn heartbeat_command(hotkey: &str, at_ms: u64, received_by: u64, data: HeartbeatData) -> Command {
    Command::RecordHeartbeat(Heartbeat {
        hotkey: hotkey.to_string(),
        at_ms,
        received_by,
        public_ip: data.public_ip,
        miner_version: data.miner_version,
        workers: data
            .workers
            .into_iter()
            .map(|w| WorkerStatus {
                worker_id: w.worker_id,
                worker_name: w.worker_name,
                worker_version: w.worker_version,
                capabilities: w.capabilities,
                status: w.status,
                gpus: w
                    .gpus
                    .into_iter()
                    .map(|g| GpuReport { uuid: g.uuid, model: g.name, memory_mb: g.memory_mb })
                    .collect(),
                info_json: w.system_info_json,
            })
            .collect(),
    })
}
