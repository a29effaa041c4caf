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
use super::messages::HeartbeatData;
use super::session::SessionHandle;
use super::session::SessionStore;
use super::session::errors;
use crate::cluster::LedgerNode;

/// How long a proposal made for a miner request may take before the miner is answered with an
/// error (the miner's own timeouts are 10–40 s, §2.11).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(8);
/// `error_code` of a heartbeat that could not be recorded (§2.10.5 HEARTBEAT_PROCESSING_FAILED).
const HEARTBEAT_PROCESSING_FAILED: i64 = 1004;

/// Settings of the miner protocol (original keys under `validation.*`, §6).
#[derive(Debug, Clone)]
pub struct ProtocolSettings {
    /// `validation.challenge_timeout`, seconds: the deadline after a poll, and the `timeout` sent
    /// to the miner (which accepts 1..=300, §2.10.2).
    pub challenge_timeout_s: u64,
}

impl Default for ProtocolSettings {
    fn default() -> Self {
        ProtocolSettings { challenge_timeout_s: 60 }
    }
}

/// The validator's side of the miner protocol on one member.
pub struct MinerDesk {
    node: Arc<LedgerNode>,
    sessions: SessionStore,
    limiter: RateLimiter,
    settings: ProtocolSettings,
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
    ) -> Self {
        MinerDesk { node, sessions, limiter, settings }
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
            Synapse::Challenge | Synapse::ChallengeProof => self.challenge_message(synapse, hotkey, &payload).await,
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
        let command = Command::RecordHeartbeat(Heartbeat {
            hotkey: hotkey.to_string(),
            at_ms: now_ms(),
            received_by: self.node.id,
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
        });
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
        let timeout_ms = self.settings.challenge_timeout_s * 1000;
        let sends = created.iter().map(|c| {
            let at = now_ms();
            let command = Command::AdvanceChallenge(ChallengeTransition {
                id: c.id.clone(),
                from: ChallengeStatus::Created,
                step: ChallengeStep::Sent { at_ms: at, deadline_ms: at + timeout_ms },
            });
            async move { (c, self.node.propose(&command, PROPOSE_TIMEOUT).await) }
        });
        let mut batch = Vec::new();
        for (c, result) in futures::future::join_all(sends).await {
            match result {
                Ok(p) if p.applied == ledger::command::Applied::Done => batch.push(self.challenge_entry(c)),
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
            "timeout": self.settings.challenge_timeout_s.clamp(1, 300),
            "target_worker_id": c.worker_id,
        })
    }

    /// `CHALLENGE_V1` / `CHALLENGE_PROOF_V1` (§3.5, §3.7).
    async fn challenge_message(&self, synapse: Synapse, hotkey: &str, payload: &Value) -> Result<Value, String> {
        let Some(id) = payload.get("challenge_id").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
        else {
            return Ok(json!({"error": "Missing required field: challenge_id"}));
        };
        let found = self.node.state.challenge(id).await.ok().flatten().filter(|c| c.hotkey == hotkey);
        match found {
            None => Ok(json!({"error": format!("Challenge {id} not found or not accessible")})),
            Some(_) => {
                // Phase 1 and 2 processing arrives with the verification pipeline.
                let _ = synapse;
                Ok(json!({"error": format!("Challenge {id} cannot be processed by this validator yet")}))
            }
        }
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
