//! Simulated ByteLeap miners and workers for the devnet and the tests.
//!
//! A simulated miner does what the Python miner does (byteleap-protocol.md §2.10, §2.11) over
//! real HTTP against our axon: it opens a session, heartbeats its workers, polls for challenges,
//! computes them as the workers would (CPU matrices exactly; GPU matrices on the CPU, with small
//! sizes), commits, answers the proof requests, and re-handshakes once when the validator says
//! its session is gone. Some miners misbehave on purpose ([`Behaviour`]) so the devnet shows
//! failed challenges and refused requests next to the verified ones.
//!
//! If its axon stops answering, a miner moves to the next address, as miners behind the HA
//! front door do after a failover, and carries on with one re-handshake.
//!
//! For `validator bench axon` a miner can also record the latency of every HTTP exchange in a
//! shared [`LatencyLog`], start its heartbeat and poll timers at given phases (so a whole subnet
//! is spread over the period instead of arriving at once), and leave the challenges it receives
//! alone ([`SimMiner::measure_only`]), so the load generator does not compete with the nodes for
//! the CPU. None of that is on unless asked for: the devnet and the tests are unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use serde_json::Value;
use serde_json::json;

use super::dendrite::AxonTarget;
use super::dendrite::CallOptions;
use super::dendrite::Dendrite;
use super::dendrite::DendriteError;
use super::session::MinerSession;
use super::session::Outcome;
use super::session::RETRY_CODES;
use crate::axon::http::Synapse;
use crate::axon::identity::Hotkey;
use crate::challenge::ChallengeSeed;
use crate::challenge::cpu::cpu_all_row_hashes;
use crate::challenge::gpu::expected_rows;
use crate::challenge::gpu::expected_value;
use crate::challenge::gpu::fnv_fp16_row_hash;
use crate::challenge::gpu::gpu_seed_hash;
use crate::challenge::merkle::MerkleTree;
use crate::challenge::signature::gpu_commitment_message;

/// How a simulated miner behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Reports a wrong row hash: verification fails.
    WrongRows,
    /// Sends a Merkle proof with a flipped direction: verification fails.
    BadProofs,
    /// Re-sends an old package after each heartbeat: the validator answers 4020.
    Replays,
    /// Sends one unsigned request per round: the validator answers 401.
    Unsigned,
}

impl Behaviour {
    /// The behaviour of miner `i` of a devnet: most honest, one of each kind of cheat.
    pub fn for_index(i: usize) -> Behaviour {
        match i % 8 {
            3 => Behaviour::WrongRows,
            5 => Behaviour::BadProofs,
            6 => Behaviour::Replays,
            7 => Behaviour::Unsigned,
            _ => Behaviour::Honest,
        }
    }
}

/// Counters of what a miner saw, shared with the devnet's table.
#[derive(Debug, Default)]
pub struct SimStats {
    pub handshakes: AtomicU64,
    pub rehandshakes: AtomicU64,
    pub heartbeats: AtomicU64,
    pub challenges: AtomicU64,
    pub commitments: AtomicU64,
    pub proofs: AtomicU64,
    pub refused: AtomicU64,
    pub errors: AtomicU64,
    pub failovers: AtomicU64,
}

/// What an HTTP exchange of a miner was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExchangeKind {
    Handshake,
    Heartbeat,
    /// A poll answered with no challenge.
    Poll,
    /// A poll that handed out challenges (the validator marks each one sent first).
    Handout,
    Commitment,
    Proof,
}

impl ExchangeKind {
    pub const ALL: [ExchangeKind; 6] = [
        ExchangeKind::Handshake,
        ExchangeKind::Heartbeat,
        ExchangeKind::Poll,
        ExchangeKind::Handout,
        ExchangeKind::Commitment,
        ExchangeKind::Proof,
    ];

    pub fn of(synapse: Synapse) -> ExchangeKind {
        match synapse {
            Synapse::SessionInit => ExchangeKind::Handshake,
            Synapse::Heartbeat => ExchangeKind::Heartbeat,
            Synapse::Task => ExchangeKind::Poll,
            Synapse::Challenge => ExchangeKind::Commitment,
            Synapse::ChallengeProof => ExchangeKind::Proof,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExchangeKind::Handshake => "handshake",
            ExchangeKind::Heartbeat => "heartbeat",
            ExchangeKind::Poll => "poll",
            ExchangeKind::Handout => "poll (hand-out)",
            ExchangeKind::Commitment => "commitment",
            ExchangeKind::Proof => "proof",
        }
    }
}

/// How an exchange ended, as the miner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeOutcome {
    /// A usable answer (a decrypted payload, or a session for a handshake).
    Ok,
    /// No complete answer within the miner's timeout.
    Timeout,
    /// Anything else: a transport error, a non-200 status, a plaintext refusal, an answer that
    /// did not decrypt, a heartbeat the validator did not record. The reason is counted in
    /// [`LatencyLog::failures`].
    Failed,
}

/// One HTTP exchange: from handing the request to the HTTP client to the complete response.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    pub kind: ExchangeKind,
    /// The axon it went to.
    pub axon: std::net::SocketAddr,
    pub sent: Instant,
    pub seconds: f64,
    pub outcome: ExchangeOutcome,
}

/// Latencies of every exchange of the miners that share it, and why the failed ones failed.
/// A few hundred thousand samples at most (a full subnet sends ~13 requests/s), so a `Vec`.
#[derive(Debug, Default)]
pub struct LatencyLog {
    exchanges: parking_lot::Mutex<Vec<Exchange>>,
    failures: parking_lot::Mutex<BTreeMap<String, u64>>,
}

impl LatencyLog {
    pub fn new() -> LatencyLog {
        LatencyLog::default()
    }

    pub fn record(&self, kind: ExchangeKind, axon: std::net::SocketAddr, sent: Instant, outcome: ExchangeOutcome) {
        let seconds = sent.elapsed().as_secs_f64();
        self.exchanges.lock().push(Exchange { kind, axon, sent, seconds, outcome });
    }

    /// Counts a failure under a short reason (e.g. `heartbeat: plaintext error 4012`).
    pub fn fail(&self, reason: String) {
        *self.failures.lock().entry(reason).or_default() += 1;
    }

    /// A copy of the exchanges so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().clone()
    }

    /// The exchanges completed since index `from` (for progress lines), and the new length.
    pub fn exchanges_since(&self, from: usize) -> (Vec<Exchange>, usize) {
        let all = self.exchanges.lock();
        let from = from.min(all.len());
        (all[from..].to_vec(), all.len())
    }

    pub fn len(&self) -> usize {
        self.exchanges.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Failure reasons and how often each happened.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures.lock().clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("transport: {0}")]
    Transport(String),
    #[error("validator error {code}: {text}")]
    Plain { code: i64, text: String },
    #[error("{0}")]
    Protocol(String),
}

/// One simulated miner.
pub struct SimMiner {
    pub hotkey: String,
    dendrite: Dendrite,
    session: MinerSession,
    axons: Vec<AxonTarget>,
    current: usize,
    workers: Vec<String>,
    gpus_per_worker: usize,
    behaviour: Behaviour,
    gpu_key: Option<SigningKey>,
    pub stats: Arc<SimStats>,
    timeout: Duration,
    /// Poll, but leave the received challenges alone (load generation without the work).
    measure_only: bool,
    latency: Option<Arc<LatencyLog>>,
    /// Delay of the first heartbeat and the first poll (zero: both at once, at the start).
    heartbeat_phase: Duration,
    poll_phase: Duration,
}

impl SimMiner {
    /// `axons` in the order to try; all serve the validator hotkey of the first.
    pub fn new(
        hotkey: Hotkey,
        axons: Vec<AxonTarget>,
        workers: usize,
        gpus_per_worker: usize,
        behaviour: Behaviour,
        gpu_key: Option<SigningKey>,
    ) -> SimMiner {
        let validator = axons.first().map(|a| a.hotkey.clone()).unwrap_or_default();
        let ss58 = hotkey.ss58.clone();
        let workers = (0..workers).map(|w| format!("{}w{w:03}", &ss58[..8.min(ss58.len())])).collect();
        SimMiner {
            hotkey: ss58.clone(),
            dendrite: Dendrite::new(hotkey),
            session: MinerSession::new(&ss58, &validator),
            axons,
            current: 0,
            workers,
            gpus_per_worker,
            behaviour,
            gpu_key,
            stats: Arc::new(SimStats::default()),
            timeout: Duration::from_secs(20),
            measure_only: false,
            latency: None,
            heartbeat_phase: Duration::ZERO,
            poll_phase: Duration::ZERO,
        }
    }

    /// Polls and counts the challenges it gets, but neither computes nor answers them.
    pub fn measure_only(mut self) -> SimMiner {
        self.measure_only = true;
        self
    }

    /// Records every HTTP exchange (latency, outcome) in `log`.
    pub fn with_latency_log(mut self, log: Arc<LatencyLog>) -> SimMiner {
        self.latency = Some(log);
        self
    }

    /// The client timeout of each request, also sent as the synapse `timeout` (SDK default 12 s).
    pub fn with_timeout(mut self, timeout: Duration) -> SimMiner {
        self.timeout = timeout;
        self
    }

    /// Starts the heartbeat timer after `heartbeat` and the poll timer after `poll`; a tick
    /// missed because a request was slow is skipped, so the phases hold.
    pub fn with_phase(mut self, heartbeat: Duration, poll: Duration) -> SimMiner {
        self.heartbeat_phase = heartbeat;
        self.poll_phase = poll;
        self
    }

    /// Records an exchange if a latency log is attached.
    fn record(&self, kind: ExchangeKind, sent: Instant, outcome: ExchangeOutcome, reason: Option<String>) {
        if let Some(log) = &self.latency {
            // Called before any failover moves `current`: the axon the exchange went to.
            log.record(kind, self.target().addr, sent, outcome);
            if let Some(reason) = reason {
                log.fail(format!("{}: {reason}", kind.name()));
            }
        }
    }

    /// Records the end of a `dendrite.call`: the transport outcome, or nothing yet for a 200
    /// (the caller records it once it has read the answer).
    fn record_transport<T>(&self, kind: ExchangeKind, sent: Instant, result: &Result<T, DendriteError>) {
        match result {
            Ok(_) => {}
            Err(DendriteError::Timeout(_)) => self.record(kind, sent, ExchangeOutcome::Timeout, None),
            Err(e @ DendriteError::Http(_)) => {
                self.record(kind, sent, ExchangeOutcome::Failed, Some(format!("transport error ({})", short(e))))
            }
        }
    }

    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    fn target(&self) -> &AxonTarget {
        &self.axons[self.current % self.axons.len().max(1)]
    }

    /// Moves to the next axon address (a failover of the front door).
    fn fail_over(&mut self) {
        self.current = (self.current + 1) % self.axons.len().max(1);
        self.stats.failovers.fetch_add(1, Ordering::Relaxed);
    }

    async fn handshake(&mut self) -> Result<(), SimError> {
        let request = self.session.handshake_request();
        let target = self.target().clone();
        let kind = ExchangeKind::Handshake;
        let sent = Instant::now();
        let reply = self
            .dendrite
            .call(&target, Synapse::SessionInit, Some(&request), self.timeout, &CallOptions::default())
            .await;
        self.record_transport(kind, sent, &reply);
        let reply = reply.map_err(|e| SimError::Transport(e.to_string()))?;
        if reply.status != 200 {
            self.record(kind, sent, ExchangeOutcome::Failed, Some(format!("HTTP {}", reply.status)));
            return Err(SimError::Protocol(format!("handshake HTTP {}: {:?}", reply.status, reply.message)));
        }
        if let Err(e) = self.session.complete_handshake(reply.response.as_deref().unwrap_or("")) {
            self.record(kind, sent, ExchangeOutcome::Failed, Some(format!("refused ({})", short(&e))));
            return Err(SimError::Protocol(e));
        }
        self.record(kind, sent, ExchangeOutcome::Ok, None);
        self.stats.handshakes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// One encrypted request with the miner's retry rule: on 4011/4012/4013/4020, re-handshake
    /// and retry once (§2.9). A transport failure moves to the next axon first.
    pub async fn request(&mut self, synapse: Synapse, payload: &Value) -> Result<Value, SimError> {
        let mut rehandshaked = false;
        let mut failed_over = false;
        loop {
            if !self.session.is_open() {
                match self.handshake().await {
                    Ok(()) => {}
                    Err(SimError::Transport(_)) if !failed_over && self.axons.len() > 1 => {
                        failed_over = true;
                        self.fail_over();
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let package = self.session.seal(synapse.protocol_type(), payload).map_err(SimError::Protocol)?;
            let target = self.target().clone();
            let kind = ExchangeKind::of(synapse);
            let sent = Instant::now();
            let reply =
                self.dendrite.call(&target, synapse, Some(&package), self.timeout, &CallOptions::default()).await;
            self.record_transport(kind, sent, &reply);
            let reply = match reply {
                Ok(r) => r,
                Err(_) if !failed_over && self.axons.len() > 1 => {
                    // The axon is gone: the next address, where our session is unknown.
                    failed_over = true;
                    self.fail_over();
                    continue;
                }
                Err(e) => return Err(SimError::Transport(e.to_string())),
            };
            if reply.status != 200 {
                self.record(kind, sent, ExchangeOutcome::Failed, Some(format!("HTTP {}", reply.status)));
                return Err(SimError::Protocol(format!("HTTP {}: {:?}", reply.status, reply.message)));
            }
            let outcome = self.session.open(synapse.protocol_type(), reply.response.as_deref().unwrap_or(""));
            match &outcome {
                Outcome::Payload(value) => {
                    // A heartbeat the validator answered but did not record is a failure too.
                    let code = value.get("error_code").and_then(Value::as_i64).unwrap_or(0);
                    let handed_out = synapse == Synapse::Task
                        && value
                            .get("task_data")
                            .and_then(|d| d.get("challenges"))
                            .and_then(Value::as_array)
                            .is_some_and(|c| !c.is_empty());
                    if synapse == Synapse::Heartbeat && code != 0 {
                        self.record(kind, sent, ExchangeOutcome::Failed, Some(format!("error_code {code}")));
                    } else if handed_out {
                        self.record(ExchangeKind::Handout, sent, ExchangeOutcome::Ok, None);
                    } else {
                        self.record(kind, sent, ExchangeOutcome::Ok, None);
                    }
                }
                Outcome::PlainError { code, .. } => {
                    self.record(kind, sent, ExchangeOutcome::Failed, Some(format!("plaintext error {code}")))
                }
                Outcome::Failure(_) => {
                    self.record(kind, sent, ExchangeOutcome::Failed, Some("answer did not decrypt".into()))
                }
            }
            match outcome {
                Outcome::Payload(value) => return Ok(value),
                Outcome::PlainError { code, .. } if RETRY_CODES.contains(&code) && !rehandshaked => {
                    // The miner's rule: invalidate, re-handshake, retry once (§2.9).
                    rehandshaked = true;
                    self.session.invalidate();
                    self.stats.rehandshakes.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::PlainError { code, text, .. } => return Err(SimError::Plain { code, text }),
                Outcome::Failure(e) => {
                    self.session.invalidate();
                    return Err(SimError::Protocol(e));
                }
            }
        }
    }

    fn gpu_uuids(&self, worker: &str) -> Vec<String> {
        (0..self.gpus_per_worker).map(|g| format!("GPU-sim-{worker}-{g}")).collect()
    }

    /// The heartbeat of all workers (§2.10.1).
    pub async fn heartbeat(&mut self) -> Result<(), SimError> {
        let payload = self.heartbeat_payload();
        let answer = self.request(Synapse::Heartbeat, &payload).await?;
        if answer.get("error_code").and_then(Value::as_i64) != Some(0) {
            return Err(SimError::Protocol(format!("heartbeat: {answer}")));
        }
        self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
        if self.behaviour == Behaviour::Replays {
            self.replay_last(&payload).await;
        }
        if self.behaviour == Behaviour::Unsigned {
            self.unsigned_request().await;
        }
        Ok(())
    }

    /// The `HeartbeatData` payload listing all workers (before encryption).
    pub fn heartbeat_payload(&self) -> Value {
        let workers: Vec<Value> = self
            .workers
            .iter()
            .map(|w| {
                let gpus: Vec<Value> = self
                    .gpu_uuids(w)
                    .into_iter()
                    .map(|uuid| json!({"uuid": uuid, "name": "NVIDIA GeForce RTX 4090", "total_memory": 25_757_220_864u64}))
                    .collect();
                let mut capabilities = vec!["cpu_matrix"];
                if !gpus.is_empty() {
                    capabilities.push("gpu_matrix");
                }
                json!({
                    "worker_id": w, "worker_name": format!("sim-{w}"), "worker_version": "0.0.5",
                    "capabilities": capabilities, "status": "online",
                    "system_info": {"cpu_count": 8, "memory_total": 32768, "gpu_plugin": gpus},
                })
            })
            .collect();
        json!({
            "hotkey": self.hotkey, "timestamp": now_s(), "schema_version": 1,
            "miner_info": {"public_ip": "127.0.0.1", "miner_version": "0.0.5"},
            "workers": workers,
        })
    }

    /// Sends an already used sequence number; the validator must refuse it with 4020.
    async fn replay_last(&mut self, payload: &Value) {
        let Ok(package) = self.session.seal_with_seq(Synapse::Heartbeat.protocol_type(), payload, 1) else { return };
        let target = self.target().clone();
        if let Ok(reply) =
            self.dendrite.call(&target, Synapse::Heartbeat, Some(&package), self.timeout, &CallOptions::default()).await
            && let Outcome::PlainError { code: 4020, .. } =
                self.session.open(Synapse::Heartbeat.protocol_type(), reply.response.as_deref().unwrap_or(""))
        {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn unsigned_request(&mut self) {
        let target = self.target().clone();
        let options = CallOptions { unsigned: true, ..Default::default() };
        if let Ok(reply) = self.dendrite.call(&target, Synapse::Task, Some("{}"), self.timeout, &options).await
            && reply.status == 401
        {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Polls for challenges and works through them (§2.10.2–§2.10.4).
    pub async fn poll_and_work(&mut self) -> Result<usize, SimError> {
        let answer = self
            .request(
                Synapse::Task,
                &json!({"hotkey": self.hotkey, "request_type": "challenge", "timestamp": now_s(), "schema_version": 1}),
            )
            .await?;
        let challenges = answer
            .get("task_data")
            .and_then(|d| d.get("challenges"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if self.measure_only {
            self.stats.challenges.fetch_add(challenges.len() as u64, Ordering::Relaxed);
            return Ok(challenges.len());
        }
        for challenge in &challenges {
            self.stats.challenges.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.work(challenge).await {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(miner = %self.hotkey, error = %e, "challenge work failed");
            }
        }
        Ok(challenges.len())
    }

    async fn work(&mut self, entry: &Value) -> Result<(), SimError> {
        let data = entry.get("data").ok_or_else(|| SimError::Protocol("challenge without data".into()))?;
        let field = |k: &str| data.get(k).cloned().unwrap_or(Value::Null);
        let id = field("challenge_id").as_str().unwrap_or_default().to_string();
        let worker = field("worker_id").as_str().unwrap_or_default().to_string();
        let seed_hex = field("seed").as_str().unwrap_or_default().to_string();
        let n = field("matrix_size").as_u64().unwrap_or(0);
        let iterations = field("iterations").as_u64().unwrap_or(1) as u32;
        let gpu = field("challenge_type").as_str() == Some("gpu_matrix");
        let seed = ChallengeSeed::from_hex(&seed_hex).map_err(|e| SimError::Protocol(e.to_string()))?;
        // The worker's computation: every row hash, then the tree (per GPU for GPU challenges).
        let uuids = if gpu { self.gpu_uuids(&worker) } else { vec!["-1".to_string()] };
        let mut trees = BTreeMap::new();
        for uuid in &uuids {
            let hashes = if gpu {
                let sh = gpu_seed_hash(&seed_hex, uuid);
                let rows: Vec<u64> = (0..n).collect();
                let values = expected_rows(sh, n, &rows, iterations).map_err(|e| SimError::Protocol(e.to_string()))?;
                values
                    .iter()
                    .map(|v| fnv_fp16_row_hash(v))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| SimError::Protocol(e.to_string()))?
            } else {
                cpu_all_row_hashes(&seed, n, iterations).map_err(|e| SimError::Protocol(e.to_string()))?
            };
            trees.insert(uuid.clone(), MerkleTree::new(hashes).map_err(|e| SimError::Protocol(e.to_string()))?);
        }
        let commitments: Vec<Value> = trees
            .iter()
            .map(|(uuid, tree)| {
                let root = tree.root().to_string();
                let (sig_ver, sig_val) = match (&self.gpu_key, gpu) {
                    (Some(key), true) => {
                        let message = gpu_commitment_message(1, &seed_hex, uuid, &root);
                        let signature: p256::ecdsa::Signature = key.sign(message.as_bytes());
                        (1, hex::encode(signature.to_bytes()))
                    }
                    _ => (0, String::new()),
                };
                json!({"uuid": uuid, "merkle_root": root, "sig_ver": sig_ver, "sig_val": sig_val})
            })
            .collect();
        let answer = self
            .request(Synapse::Challenge, &json!({"challenge_id": id, "worker_id": worker, "commitments": commitments, "debug_info": {}, "schema_version": 1}))
            .await?;
        if let Some(error) = answer.get("error") {
            return Err(SimError::Protocol(format!("commitment refused: {error}")));
        }
        self.stats.commitments.fetch_add(1, Ordering::Relaxed);
        let requests = answer.get("proof_requests").and_then(Value::as_array).cloned().unwrap_or_default();
        if requests.is_empty() {
            return Ok(());
        }
        let mut proofs = Vec::new();
        for request in &requests {
            let uuid = request.get("uuid").and_then(Value::as_str).unwrap_or_default().to_string();
            let rows: Vec<u64> = request
                .get("rows")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let coords: Vec<(u64, u64)> = request
                .get("coordinates")
                .and_then(Value::as_array)
                .map(|c| c.iter().filter_map(|p| Some((p.get(0)?.as_u64()?, p.get(1)?.as_u64()?))).collect())
                .unwrap_or_default();
            let tree =
                trees.get(&uuid).ok_or_else(|| SimError::Protocol(format!("proof requested for unknown {uuid}")))?;
            let mut row_hashes = Vec::new();
            let mut merkle_proofs = Vec::new();
            for &row in &rows {
                let mut proof = tree.proof(row).map_err(|e| SimError::Protocol(e.to_string()))?;
                row_hashes.push(proof.leaf_hash.clone());
                if self.behaviour == Behaviour::BadProofs
                    && merkle_proofs.is_empty()
                    && !proof.proof_directions.is_empty()
                {
                    proof.proof_directions[0] = !proof.proof_directions[0];
                }
                merkle_proofs.push(json!({
                    "leaf_index": proof.leaf_index, "leaf_hash": proof.leaf_hash,
                    "proof_hashes": proof.proof_hashes, "proof_directions": proof.proof_directions,
                }));
            }
            if self.behaviour == Behaviour::WrongRows
                && let Some(first) = row_hashes.first_mut()
            {
                *first = "0000000000000000".into();
            }
            let mut proof = json!({"uuid": uuid, "row_hashes": row_hashes, "merkle_proofs": merkle_proofs});
            if gpu {
                let sh = gpu_seed_hash(&seed_hex, &uuid);
                let mut values = Vec::new();
                for &(r, c) in &coords {
                    values
                        .push(expected_value(sh, n, r, c, iterations).map_err(|e| SimError::Protocol(e.to_string()))?);
                }
                for row in expected_rows(sh, n, &rows, iterations).map_err(|e| SimError::Protocol(e.to_string()))? {
                    values.extend(row);
                }
                proof["coordinate_values"] = json!(values);
            }
            proofs.push(proof);
        }
        let answer = self
            .request(
                Synapse::ChallengeProof,
                &json!({"challenge_id": id, "proofs": proofs, "debug_info": {}, "schema_version": 1}),
            )
            .await?;
        if let Some(error) = answer.get("error") {
            return Err(SimError::Protocol(format!("proof refused: {error}")));
        }
        self.stats.proofs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Heartbeats and polls on the miner's cadence until `stop` turns true.
    pub async fn run(
        mut self,
        heartbeat_every: Duration,
        poll_every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let start = tokio::time::Instant::now();
        let mut heartbeat = tokio::time::interval_at(start + self.heartbeat_phase, heartbeat_every);
        let mut poll = tokio::time::interval_at(start + self.poll_phase, poll_every);
        if !self.heartbeat_phase.is_zero() || !self.poll_phase.is_zero() {
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        }
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = heartbeat.tick() => {
                    if let Err(e) = self.heartbeat().await {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(miner = %self.hotkey, error = %e, "heartbeat failed");
                    }
                }
                _ = poll.tick() => {
                    if let Err(e) = self.poll_and_work().await {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(miner = %self.hotkey, error = %e, "poll failed");
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

/// The first line of an error, shortened, for a failure reason.
fn short(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(80).collect()
}

fn now_s() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}
