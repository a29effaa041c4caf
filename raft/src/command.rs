//! The command set: every state change of the validator is one of these, proposed to Raft and
//! applied by every member in log order.
//!
//! ## Versioning
//!
//! A log entry carries a [`Proposal`]: the ledger format the command needs and the command's
//! postcard bytes. openraft never looks inside, so an entry always replicates; the command is
//! decoded twice, with the same rules:
//!
//! * on the leader, before it enters the log ([`Proposal::decode`] in the proposal path): a
//!   command this leader does not know (sent by a newer member) is refused with
//!   [`CommandError::UnsupportedFormat`] or [`CommandError::Malformed`], and the proposer gets
//!   that error back. Nothing is written.
//! * on every member, at apply. A member that cannot decode a committed entry stops applying
//!   with an error instead of skipping it: skipping would silently fork its state from the
//!   others'. The leader prevents this by refusing commands whose format exceeds the
//!   `ledger_format` any member advertises in the membership.
//!
//! New commands are appended at the end of [`Command`] (postcard encodes the variant index) and
//! raise [`LEDGER_FORMAT`]; existing variants never change shape.
//!
//! ## Determinism
//!
//! Apply must produce the same state on every member, so commands carry everything that is not
//! already in the state: timestamps (`*_ms`, the proposer's clock), random seeds and targets
//! (drawn by the proposer), and ids. Apply never reads a clock or a random source.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

/// The newest ledger format this build can apply. Raise it when a command variant is added.
pub const LEDGER_FORMAT: u16 = 2;

/// Most commands one [`Command::Batch`] may carry.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// Largest encoded command accepted into the log. Commands are small (a heartbeat of 100
/// workers is a few KiB); proof payloads never go through the log (architecture.md, data flow).
pub const MAX_COMMAND_BYTES: usize = 1 << 20;

/// What one log entry carries: an encoded [`Command`] and the ledger format it needs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The minimum [`LEDGER_FORMAT`] a member needs to apply this command.
    pub format: u16,
    /// postcard encoding of the [`Command`].
    pub body: Vec<u8>,
}

impl fmt::Debug for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proposal(format={}, {} bytes)", self.format, self.body.len())
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why a proposal cannot be decoded into a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CommandError {
    #[error("command needs ledger format {needed}, this node applies up to {supported}; upgrade this node")]
    UnsupportedFormat { needed: u16, supported: u16 },
    #[error("malformed command: {0}")]
    Malformed(String),
    #[error("command of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

impl Proposal {
    /// Encodes a command at the format it needs.
    pub fn encode(command: &Command) -> Proposal {
        // postcard cannot fail on these types: no maps with non-string keys, no unsized
        // sequences. An empty body would be refused on decode anyway.
        let body = postcard::to_allocvec(command).unwrap_or_default();
        Proposal { format: command.format(), body }
    }

    /// Decodes the command, refusing formats newer than this build and trailing garbage, and
    /// a batch any item of which does not decode.
    pub fn decode(&self) -> Result<Command, CommandError> {
        let command = self.decode_one()?;
        if let Command::Batch(items) = &command {
            // Every item must decode on its own: the leader refuses a bad batch whole, so a
            // committed batch never fails to decode at apply.
            for item in Command::batch_items(items)? {
                item?;
            }
        }
        Ok(command)
    }

    /// [`Self::decode`] without looking into a batch's items (one level only, whatever the
    /// input).
    fn decode_one(&self) -> Result<Command, CommandError> {
        if self.format > LEDGER_FORMAT {
            return Err(CommandError::UnsupportedFormat { needed: self.format, supported: LEDGER_FORMAT });
        }
        if self.body.len() > MAX_COMMAND_BYTES {
            return Err(CommandError::TooLarge { size: self.body.len(), limit: MAX_COMMAND_BYTES });
        }
        let (command, rest): (Command, &[u8]) =
            postcard::take_from_bytes(&self.body).map_err(|e| CommandError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CommandError::Malformed(format!("{} trailing bytes", rest.len())));
        }
        if command.format() > self.format {
            return Err(CommandError::Malformed(format!(
                "command needs format {} but the entry says {}",
                command.format(),
                self.format
            )));
        }
        Ok(command)
    }
}

/// Every state change of the validator.
///
/// Append new variants at the end only; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// A cluster-wide setting (operator switches such as a paused weight submission, tuned
    /// parameters). Last writer wins.
    PutSetting { key: String, value: String },
    /// Removes a cluster-wide setting.
    DeleteSetting { key: String },
    /// The leader's metagraph sync. Replaces the registered neurons, so every member blacklists
    /// the same hotkeys (byteleap-protocol.md §2.2).
    SyncMetagraph(MetagraphSync),
    /// A miner heartbeat accepted by one member's axon (byteleap-protocol.md §2.10.1).
    RecordHeartbeat(Heartbeat),
    /// A challenge issued to one worker (byteleap-protocol.md §3.1); seed drawn by the proposer.
    IssueChallenge(IssuedChallenge),
    /// A challenge moved along its lifecycle (byteleap-protocol.md §1.5).
    AdvanceChallenge(ChallengeTransition),
    /// One scoring pass: the digest of its inputs and the resulting weights.
    RecordScorePass(ScorePass),
    /// Write-ahead intent to submit weights for one window (ha-anchors.md §3.4). Proposed only
    /// with a committed-leader precondition.
    CommitWeightIntent(WeightIntent),
    /// The outcome of a weight intent, as observed on chain.
    RecordWeightOutcome(WeightOutcome),
    /// Several commands in one entry, applied in order in the entry's transaction, each with
    /// its own result ([`Applied::Batch`]): a refused item changes nothing and does not stop
    /// the others. Busy loops (an issuing pass, a hand-out poll, an expiry sweep, a run of
    /// verdicts) write one entry where they would write hundreds. Not nested; at most
    /// [`MAX_BATCH_ITEMS`] items. Format 2.
    ///
    /// Items travel encoded, each as its own [`Proposal`], so decoding never recurses deeper
    /// than one level whatever a peer sends (a `Vec<Command>` would let a megabyte of nested
    /// batches overflow the stack of every member). Build it with [`Command::batch`].
    Batch(Vec<Proposal>),
}

impl Command {
    /// The ledger format that introduced this variant.
    pub fn format(&self) -> u16 {
        match self {
            Command::PutSetting { .. }
            | Command::DeleteSetting { .. }
            | Command::SyncMetagraph(_)
            | Command::RecordHeartbeat(_)
            | Command::IssueChallenge(_)
            | Command::AdvanceChallenge(_)
            | Command::RecordScorePass(_)
            | Command::CommitWeightIntent(_)
            | Command::RecordWeightOutcome(_) => 1,
            Command::Batch(items) => items.iter().map(|p| p.format).max().unwrap_or(1).max(2),
        }
    }

    /// One entry carrying `items` in order (see [`Command::Batch`]).
    pub fn batch(items: &[Command]) -> Command {
        Command::Batch(items.iter().map(Proposal::encode).collect())
    }

    /// The items of a batch, each decoded on its own; a nested batch is an error.
    pub fn batch_items(items: &[Proposal]) -> Result<Vec<Result<Command, CommandError>>, CommandError> {
        if items.len() > MAX_BATCH_ITEMS {
            return Err(CommandError::Malformed(format!(
                "a batch of {} commands exceeds the limit of {MAX_BATCH_ITEMS}",
                items.len()
            )));
        }
        Ok(items
            .iter()
            .map(|item| match item.decode_one()? {
                Command::Batch(_) => Err(CommandError::Malformed("a batch inside a batch".into())),
                command => Ok(command),
            })
            .collect())
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::PutSetting { .. } => "put_setting",
            Command::DeleteSetting { .. } => "delete_setting",
            Command::SyncMetagraph(_) => "sync_metagraph",
            Command::RecordHeartbeat(_) => "record_heartbeat",
            Command::IssueChallenge(_) => "issue_challenge",
            Command::AdvanceChallenge(_) => "advance_challenge",
            Command::RecordScorePass(_) => "record_score_pass",
            Command::CommitWeightIntent(_) => "commit_weight_intent",
            Command::RecordWeightOutcome(_) => "record_weight_outcome",
            Command::Batch(_) => "batch",
        }
    }
}

/// One registered neuron of the subnet, as the chain reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neuron {
    pub uid: u16,
    pub hotkey: String,
    pub coldkey: String,
    /// Stake in rao.
    pub stake_rao: u64,
    pub validator_permit: bool,
    /// `ip:port` of the neuron's axon, if served.
    pub axon: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetagraphSync {
    pub netuid: u16,
    pub block: u64,
    pub neurons: Vec<Neuron>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub hotkey: String,
    pub at_ms: u64,
    /// The member whose axon received it, for operators.
    pub received_by: u64,
    /// The miner host's public IP (`miner_info.public_ip`, §2.10.1).
    pub public_ip: Option<String>,
    pub miner_version: Option<String>,
    pub workers: Vec<WorkerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub worker_id: String,
    pub worker_name: Option<String>,
    pub worker_version: Option<String>,
    /// e.g. `cpu_matrix`, `gpu_matrix` (§2.10.1).
    pub capabilities: Vec<String>,
    /// `online`, `busy` or `offline`.
    pub status: String,
    /// GPUs from the worker's `gpu_plugin` report.
    pub gpus: Vec<GpuReport>,
    /// The worker's `system_info`, validated and size-bounded JSON.
    pub info_json: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuReport {
    pub uuid: String,
    pub model: String,
    pub memory_mb: u64,
}

/// The kinds of challenge the original issues (byteleap-protocol.md §3.2, §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeKind {
    CpuMatrix,
    GpuMatrix,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::CpuMatrix => "cpu_matrix",
            ChallengeKind::GpuMatrix => "gpu_matrix",
        }
    }

    pub fn parse(text: &str) -> Option<ChallengeKind> {
        match text {
            "cpu_matrix" => Some(ChallengeKind::CpuMatrix),
            "gpu_matrix" => Some(ChallengeKind::GpuMatrix),
            _ => None,
        }
    }
}

/// The challenge lifecycle of byteleap-protocol.md §1.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeStatus {
    Created,
    Sent,
    Committed,
    Verifying,
    Verified,
    Failed,
}

impl ChallengeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeStatus::Created => "created",
            ChallengeStatus::Sent => "sent",
            ChallengeStatus::Committed => "committed",
            ChallengeStatus::Verifying => "verifying",
            ChallengeStatus::Verified => "verified",
            ChallengeStatus::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, ChallengeStatus::Verified | ChallengeStatus::Failed)
    }

    pub fn parse(text: &str) -> Option<ChallengeStatus> {
        Some(match text {
            "created" => ChallengeStatus::Created,
            "sent" => ChallengeStatus::Sent,
            "committed" => ChallengeStatus::Committed,
            "verifying" => ChallengeStatus::Verifying,
            "verified" => ChallengeStatus::Verified,
            "failed" => ChallengeStatus::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedChallenge {
    /// UUIDv4 string, as the original (§3.1 step 5).
    pub id: String,
    pub hotkey: String,
    pub worker_id: String,
    pub kind: ChallengeKind,
    /// 16 random bytes drawn by the proposer (§3.2).
    pub seed: [u8; 16],
    pub matrix_size: u32,
    pub iterations: u32,
    pub issued_at_ms: u64,
}

/// A challenge moving along its lifecycle (byteleap-protocol.md §1.5). Guarded: it applies only
/// if the challenge is still in `from`, so two members racing on one challenge cannot both win.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeTransition {
    pub id: String,
    /// The status the proposer saw.
    pub from: ChallengeStatus,
    pub step: ChallengeStep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChallengeStep {
    /// The miner polled: created → sent (§2.10.2). The deadline is the poll plus the challenge
    /// timeout.
    Sent { at_ms: u64, deadline_ms: u64 },
    /// A commitment was accepted: created/sent → committed (§3.5), with the proof requests the
    /// proposer drew (`targets_json`, §3.6).
    Committed { at_ms: u64, deadline_ms: u64, commitments_json: String, targets_json: String },
    /// A commitment that asks for no proof: → verified without a verdict (§3.5 step 6).
    AutoVerified { at_ms: u64 },
    /// A proof was accepted: committed → verifying (§3.7). `received_by` keeps the proof.
    Verifying { at_ms: u64, deadline_ms: u64, received_by: u64 },
    /// The verdict: verifying → verified or failed (§3.8).
    Verified { at_ms: u64, success: bool, success_count: u32, verification_ms: u64, verified_by: u64, notes: String },
    /// Ended without a verdict: a timeout, a refused commitment, or a fault on our side
    /// (`validator_fault`, never scored against the worker).
    Failed { at_ms: u64, notes: String, validator_fault: bool },
}

impl ChallengeStep {
    /// The status this step leads to.
    pub fn to(&self) -> ChallengeStatus {
        match self {
            ChallengeStep::Sent { .. } => ChallengeStatus::Sent,
            ChallengeStep::Committed { .. } => ChallengeStatus::Committed,
            ChallengeStep::AutoVerified { .. } => ChallengeStatus::Verified,
            ChallengeStep::Verifying { .. } => ChallengeStatus::Verifying,
            ChallengeStep::Verified { success: true, .. } => ChallengeStatus::Verified,
            ChallengeStep::Verified { success: false, .. } | ChallengeStep::Failed { .. } => ChallengeStatus::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorePass {
    pub at_ms: u64,
    /// blake3 digest of every input the pass read.
    pub inputs_digest: [u8; 32],
    /// `(uid, u16 weight)` pairs as they would be submitted.
    pub weights: Vec<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightIntent {
    /// The submission window (ha-anchors.md §3.4).
    pub window: u64,
    pub weights_hash: [u8; 32],
    /// The account nonce the extrinsic will be signed with: the fence the chain enforces.
    pub account_nonce: u64,
    /// First block of the mortal era.
    pub era_birth_block: u64,
    /// Period of the mortal era in blocks.
    pub era_period: u64,
    /// The leader that wrote the intent.
    pub leader: u64,
    pub leader_term: u64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightOutcomeKind {
    Included,
    Expired,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightOutcome {
    pub window: u64,
    pub kind: WeightOutcomeKind,
    /// Block hash of inclusion, or the rejection reason.
    pub detail: String,
    pub at_ms: u64,
}

/// What applying one entry returned: the same on every member, so a refusal here is a
/// deterministic business rule, never a local fault.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Applied {
    /// A blank or membership entry.
    #[default]
    Nothing,
    /// The command changed the state.
    Done,
    /// The command was valid but the state did not allow it (e.g. a challenge that already
    /// moved on); nothing changed.
    Refused(String),
    /// One result per item of a [`Command::Batch`], in order.
    Batch(Vec<Applied>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_format_two_flat_and_bounded() {
        let one = Command::PutSetting { key: "k".into(), value: "v".into() };
        let batch = Command::batch(&[one.clone(), Command::DeleteSetting { key: "k".into() }]);
        let proposal = Proposal::encode(&batch);
        assert_eq!(proposal.format, 2);
        assert_eq!(proposal.decode(), Ok(batch.clone()));

        // A batch inside a batch is refused before it can reach the log.
        let nested = Proposal::encode(&Command::Batch(vec![Proposal::encode(&batch)]));
        assert!(matches!(nested.decode(), Err(CommandError::Malformed(m)) if m.contains("inside")));
        // So is an item that does not decode, and a batch over the limit.
        let garbage = Proposal::encode(&Command::Batch(vec![Proposal { format: 1, body: vec![0xff, 0xff] }]));
        assert!(matches!(garbage.decode(), Err(CommandError::Malformed(_))));
        let too_many = Proposal::encode(&Command::batch(&vec![one; MAX_BATCH_ITEMS + 1]));
        assert!(matches!(too_many.decode(), Err(CommandError::Malformed(m)) if m.contains("limit")));
        // Deep nesting costs one level of decoding (items stay bytes), never the stack.
        let mut deep = Proposal::encode(&Command::DeleteSetting { key: "k".into() });
        for _ in 0..2000 {
            deep = Proposal { format: 2, body: postcard::to_allocvec(&Command::Batch(vec![deep])).unwrap() };
        }
        assert!(matches!(deep.decode(), Err(CommandError::Malformed(m)) if m.contains("inside")));
    }

    #[test]
    fn round_trip_keeps_the_command() {
        let command = Command::PutSetting { key: "weights.paused".into(), value: "true".into() };
        let proposal = Proposal::encode(&command);
        assert_eq!(proposal.format, 1);
        assert_eq!(proposal.decode(), Ok(command));
    }

    #[test]
    fn a_newer_format_is_refused_not_misread() {
        let command = Command::DeleteSetting { key: "x".into() };
        let mut proposal = Proposal::encode(&command);
        proposal.format = LEDGER_FORMAT + 1;
        assert_eq!(
            proposal.decode(),
            Err(CommandError::UnsupportedFormat { needed: LEDGER_FORMAT + 1, supported: LEDGER_FORMAT })
        );
    }

    #[test]
    fn an_unknown_variant_is_malformed() {
        // Variant index 200 does not exist in this build: what a newer member would send if it
        // wrongly labelled a new command with an old format.
        let proposal = Proposal { format: 1, body: vec![200, 1, 0] };
        assert!(matches!(proposal.decode(), Err(CommandError::Malformed(_))));
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut proposal = Proposal::encode(&Command::DeleteSetting { key: "x".into() });
        proposal.body.push(0);
        assert!(matches!(proposal.decode(), Err(CommandError::Malformed(_))));
    }
}

/// A command as a member hands it to the ledger for proposal, possibly forwarded to the
/// leader over the cluster transport.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposeRequest {
    pub proposal: Proposal,
    /// Only commit if this is still the committed leader (term, node) when the entry is
    /// proposed: the fence for weight intents (ha-anchors.md §3.4).
    pub expect_leader: Option<(u64, u64)>,
}

/// A committed and applied proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposed {
    pub index: u64,
    pub term: u64,
    pub leader: u64,
    pub applied: Applied,
}

/// Why a proposal was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    #[error("no leader is known right now; retry shortly")]
    NoLeader,
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("refused by the leader: {0}")]
    Command(#[from] CommandError),
    #[error("member {member} applies ledger formats up to {supported}, the command needs {needed}; upgrade it first")]
    MemberTooOld { member: u64, supported: u16, needed: u16 },
    #[error("the leader changed (expected term {expected_term} node {expected_node}); not committed")]
    LeaderChanged { expected_term: u64, expected_node: u64 },
    #[error("not committed within {0} ms (it may still commit)")]
    Timeout(u64),
    #[error("cluster transport: {0}")]
    Transport(String),
    #[error("raft: {0}")]
    Raft(String),
}
