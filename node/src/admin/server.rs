//! The admin service on a node.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use ledger::command::Applied;
use ledger::command::Command;
use ledger::command::LEDGER_FORMAT;
use ledger::command::ProposeError;
use ledger::types::Member;
use ledger::types::NodeId;
use openraft::ChangeMembers;
use openraft::Instant as _;
use openraft::ReadPolicy;
use openraft::ServerState;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::AdminError;
use super::pb;
use crate::cluster::LedgerNode;

/// Longest a client may ask a setting write to wait.
const MAX_PROPOSE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AdminService {
    node: Arc<LedgerNode>,
    dispatcher: Arc<crate::proofs::fanout::Dispatcher>,
    validation: crate::config::ValidationSection,
}

impl AdminService {
    pub fn new(
        node: Arc<LedgerNode>,
        dispatcher: Arc<crate::proofs::fanout::Dispatcher>,
        validation: crate::config::ValidationSection,
    ) -> AdminService {
        AdminService { node, dispatcher, validation }
    }

    fn require_leader(&self) -> Result<(), AdminError> {
        if self.node.is_leader() {
            return Ok(());
        }
        let leader = self.node.metrics().current_leader;
        let leader_admin = leader.and_then(|id| self.node.member(id)).map(|m| m.admin_addr);
        Err(AdminError::NotLeader { leader_admin })
    }

    fn membership_reply(&self, log_index: u64) -> pb::MembershipReply {
        let m = self.node.metrics();
        let membership = m.membership_config.membership();
        pb::MembershipReply {
            log_index,
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
        }
    }

    async fn change(&self, change: ChangeMembers<NodeId, Member>) -> Result<pb::MembershipReply, AdminError> {
        self.require_leader()?;
        let response =
            self.node.raft.change_membership(change, false).await.map_err(|e| AdminError::Failed(e.to_string()))?;
        Ok(self.membership_reply(response.log_id.index))
    }

    async fn transfer(&self, to: NodeId) -> Result<pb::TransferLeaderReply, AdminError> {
        self.require_leader()?;
        let metrics = self.node.metrics();
        if to == self.node.id {
            return Err(AdminError::InvalidArgument("this node already leads".into()));
        }
        if !metrics.membership_config.membership().voter_ids().any(|v| v == to) {
            return Err(AdminError::InvalidArgument(format!("{to} is not a voter")));
        }
        let started = Instant::now();
        self.node.raft.trigger().transfer_leader(to).await.map_err(|e| AdminError::Failed(e.to_string()))?;
        let me = self.node.id;
        let waited =
            self.node.wait_until(Duration::from_secs(5), move |m| m.current_leader.is_some_and(|l| l != me)).await;
        let new_leader = match waited {
            Some(m) => m.current_leader.unwrap_or(to),
            None => {
                return Err(AdminError::Unavailable(format!("leadership did not move to {to} within 5 s")));
            }
        };
        Ok(pb::TransferLeaderReply { new_leader, elapsed_ms: started.elapsed().as_millis() as u64 })
    }
}

fn member_spec(id: NodeId, m: &Member) -> pb::MemberSpec {
    pb::MemberSpec {
        id,
        name: m.name.clone(),
        raft_addr: m.raft_addr.clone(),
        admin_addr: m.admin_addr.clone(),
        ledger_format: m.ledger_format.into(),
    }
}

pub fn member_from_spec(spec: &pb::MemberSpec) -> Result<(NodeId, Member), AdminError> {
    if spec.id == 0 || spec.name.is_empty() || spec.raft_addr.is_empty() || spec.admin_addr.is_empty() {
        return Err(AdminError::InvalidArgument("a member needs id, name, raft_addr and admin_addr".into()));
    }
    let ledger_format = u16::try_from(spec.ledger_format)
        .map_err(|_| AdminError::InvalidArgument(format!("ledger_format {} is out of range", spec.ledger_format)))?;
    Ok((
        spec.id,
        Member {
            name: spec.name.clone(),
            raft_addr: spec.raft_addr.clone(),
            admin_addr: spec.admin_addr.clone(),
            ledger_format,
        },
    ))
}

fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

fn propose_status(e: ProposeError) -> Status {
    match e {
        ProposeError::Command(_) | ProposeError::MemberTooOld { .. } => Status::invalid_argument(e.to_string()),
        ProposeError::Timeout(_) | ProposeError::NoLeader => Status::unavailable(e.to_string()),
        other => Status::unavailable(other.to_string()),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn weights(&self, _: Request<pb::Empty>) -> Result<Response<pb::WeightsReply>, Status> {
        let last = self.node.state.last_score_pass().await.map_err(|e| Status::internal(e.to_string()))?;
        let Some(pass) = last else { return Ok(Response::new(pb::WeightsReply::default())) };
        let neurons = self.node.state.neurons().await.map_err(|e| Status::internal(e.to_string()))?;
        let hotkeys: std::collections::HashMap<u16, String> = neurons.into_iter().map(|n| (n.uid, n.hotkey)).collect();
        Ok(Response::new(pb::WeightsReply {
            seq: Some(pass.seq.max(0) as u64),
            at_ms: pass.at_ms.max(0) as u64,
            inputs_digest: hex::encode(&pass.inputs_digest),
            weights: pass
                .weights
                .iter()
                .map(|(uid, w)| pb::UidWeight {
                    uid: u32::from(*uid),
                    weight: u32::from(*w),
                    hotkey: hotkeys.get(uid).cloned().unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn explain_weights(
        &self,
        request: Request<pb::ExplainWeightsRequest>,
    ) -> Result<Response<pb::ExplainWeightsReply>, Status> {
        let miner = request.into_inner().miner;
        let last = self.node.state.last_score_pass().await.map_err(|e| Status::internal(e.to_string()))?;
        // Recomputed as of the last pass's time, so an unchanged ledger gives the same digest.
        let at = last.as_ref().map_or_else(
            || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0)
            },
            |p| p.at_ms.max(0) as u64,
        );
        let mut report = crate::duties::scoring::compute(&self.node, &self.validation, at)
            .await
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let matches = last.as_ref().is_some_and(|p| p.inputs_digest == report.inputs_digest);
        match &miner {
            Some(hotkey) => {
                report.miners.retain(|m| &m.hotkey == hotkey);
                if report.miners.is_empty() {
                    return Err(Status::not_found(format!("miner {hotkey} is not known to the ledger")));
                }
            }
            None => report.miners.iter_mut().for_each(|m| m.workers.clear()),
        }
        let report_json = serde_json::to_string(&report).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ExplainWeightsReply {
            report_json,
            inputs_digest: hex::encode(report.inputs_digest),
            matches_last_pass: matches,
        }))
    }

    async fn node_info(&self, _: Request<pb::Empty>) -> Result<Response<pb::MemberSpec>, Status> {
        Ok(Response::new(member_spec(self.node.id, &self.node.me)))
    }

    async fn status(&self, _: Request<pb::Empty>) -> Result<Response<pb::StatusReply>, Status> {
        let m = self.node.metrics();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let last = m.last_log_index.unwrap_or(0);
        let members = membership
            .nodes()
            .map(|(id, member)| {
                let matched = m.replication.as_ref().and_then(|r| r.get(id)).map(|l| l.map(|l| l.index).unwrap_or(0));
                let heartbeat_age_ms = m
                    .heartbeat
                    .as_ref()
                    .and_then(|h| h.get(id))
                    .and_then(|t| t.as_ref())
                    .map(|t| (**t).elapsed().as_millis() as u64);
                pb::MemberStatus {
                    member: Some(member_spec(*id, member)),
                    voter: voters.contains(id),
                    matched_index: if *id == self.node.id && m.state == ServerState::Leader {
                        Some(last)
                    } else {
                        matched
                    },
                    lag: if *id == self.node.id && m.state == ServerState::Leader {
                        Some(0)
                    } else {
                        matched.map(|x| last.saturating_sub(x))
                    },
                    heartbeat_age_ms,
                }
            })
            .collect();
        let (challenges_open, challenges_verified, challenges_failed) =
            self.node.state.challenge_counts().await.unwrap_or_default();
        let running = match &m.running_state {
            Ok(()) => "running".to_string(),
            Err(fatal) => format!("stopped: {fatal}"),
        };
        Ok(Response::new(pb::StatusReply {
            id: self.node.id,
            name: self.node.me.name.clone(),
            state: state_name(m.state).into(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            committed: m.local_committed.map(|l| l.index),
            applied: m.last_applied.map(|l| l.index),
            snapshot: m.snapshot.map(|l| l.index),
            purged: m.purged.map(|l| l.index),
            millis_since_quorum_ack: m.last_quorum_acked.as_ref().map(|t| (**t).elapsed().as_millis() as u64),
            members,
            initialized: !voters.is_empty(),
            backend: self.node.backend().as_str().into(),
            version: env!("CARGO_PKG_VERSION").into(),
            leader_changes: self.node.leader_changes(),
            running,
            challenges_open,
            challenges_verified,
            challenges_failed,
        }))
    }

    async fn init_cluster(
        &self,
        request: Request<pb::InitClusterRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let mut members = BTreeMap::new();
        for spec in &request.get_ref().members {
            let (id, member) = member_from_spec(spec)?;
            if member.ledger_format > LEDGER_FORMAT {
                return Err(Status::invalid_argument(format!("member {id} runs a newer ledger format")));
            }
            members.insert(id, member);
        }
        if members.is_empty() {
            return Err(Status::invalid_argument("no members given"));
        }
        self.node.initialize(members).await.map_err(|e| Status::failed_precondition(e.to_string()))?;
        let _ = self.node.wait_until(Duration::from_secs(10), |m| m.current_leader.is_some()).await;
        Ok(Response::new(self.membership_reply(0)))
    }

    async fn add_learner(&self, request: Request<pb::MemberSpec>) -> Result<Response<pb::MembershipReply>, Status> {
        self.require_leader()?;
        let (id, member) = member_from_spec(request.get_ref())?;
        let response =
            self.node.raft.add_learner(id, member, false).await.map_err(|e| AdminError::Failed(e.to_string()))?;
        Ok(Response::new(self.membership_reply(response.log_id.index)))
    }

    async fn promote(&self, request: Request<pb::NodeIds>) -> Result<Response<pb::MembershipReply>, Status> {
        let ids: BTreeSet<NodeId> = request.get_ref().ids.iter().copied().collect();
        if ids.is_empty() {
            return Err(Status::invalid_argument("no node ids given"));
        }
        Ok(Response::new(self.change(ChangeMembers::AddVoterIds(ids)).await?))
    }

    async fn remove(&self, request: Request<pb::NodeIds>) -> Result<Response<pb::MembershipReply>, Status> {
        let ids: BTreeSet<NodeId> = request.get_ref().ids.iter().copied().collect();
        if ids.is_empty() {
            return Err(Status::invalid_argument("no node ids given"));
        }
        self.require_leader()?;
        let metrics = self.node.metrics();
        let voters: BTreeSet<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        let voting: BTreeSet<NodeId> = ids.intersection(&voters).copied().collect();
        let mut reply = self.membership_reply(0);
        if !voting.is_empty() {
            reply = self.change(ChangeMembers::RemoveVoters(voting)).await?;
        }
        let remaining: BTreeSet<NodeId> = {
            let m = self.node.metrics();
            let membership = m.membership_config.membership();
            ids.iter().copied().filter(|id| membership.get_node(id).is_some()).collect()
        };
        if !remaining.is_empty() {
            reply = self.change(ChangeMembers::RemoveNodes(remaining)).await?;
        }
        Ok(Response::new(reply))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderReply>, Status> {
        Ok(Response::new(self.transfer(request.get_ref().to).await?))
    }

    async fn step_down(&self, _: Request<pb::Empty>) -> Result<Response<pb::TransferLeaderReply>, Status> {
        self.require_leader()?;
        let m = self.node.metrics();
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        // The most up-to-date other voter takes over.
        let target = m
            .replication
            .as_ref()
            .and_then(|r| {
                r.iter()
                    .filter(|(id, _)| **id != self.node.id && voters.contains(id))
                    .max_by_key(|(_, matched)| matched.map(|l| l.index))
                    .map(|(id, _)| *id)
            })
            .ok_or_else(|| Status::failed_precondition("no other voter to step down to"))?;
        Ok(Response::new(self.transfer(target).await?))
    }

    async fn snapshot(&self, _: Request<pb::Empty>) -> Result<Response<pb::SnapshotReply>, Status> {
        let applied = self.node.metrics().last_applied.map(|l| l.index);
        self.node.raft.trigger().snapshot().await.map_err(|e| AdminError::Failed(e.to_string()))?;
        let done = self
            .node
            .wait_until(Duration::from_secs(60), move |m| {
                m.snapshot.is_some() && m.snapshot.map(|l| l.index) >= applied
            })
            .await;
        match done {
            Some(m) => Ok(Response::new(pb::SnapshotReply { index: m.snapshot.map(|l| l.index) })),
            None => Err(Status::unavailable("the snapshot did not complete within 60 s")),
        }
    }

    async fn put_setting(&self, request: Request<pb::PutSettingRequest>) -> Result<Response<pb::ProposeReply>, Status> {
        let r = request.into_inner();
        let timeout = match r.timeout_ms {
            0 => DEFAULT_PROPOSE_TIMEOUT,
            ms => Duration::from_millis(ms.into()).min(MAX_PROPOSE_TIMEOUT),
        };
        let proposed = self
            .node
            .propose(&Command::PutSetting { key: r.key, value: r.value }, timeout)
            .await
            .map_err(propose_status)?;
        let outcome = match proposed.applied {
            Applied::Done => "done".to_string(),
            Applied::Nothing => "nothing".to_string(),
            Applied::Refused(reason) => format!("refused: {reason}"),
            Applied::Batch(items) => format!("batch of {}", items.len()),
        };
        Ok(Response::new(pb::ProposeReply {
            index: proposed.index,
            term: proposed.term,
            leader: proposed.leader,
            outcome,
        }))
    }

    async fn get_setting(
        &self,
        request: Request<pb::GetSettingRequest>,
    ) -> Result<Response<pb::GetSettingReply>, Status> {
        let r = request.into_inner();
        if r.linearizable {
            self.require_leader()?;
            self.node
                .raft
                .ensure_linearizable(ReadPolicy::ReadIndex)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
        }
        let value = self.node.state.setting(&r.key).await.map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::GetSettingReply { value, applied: self.node.state.applied().map(|l| l.index) }))
    }

    async fn state_hash(&self, _: Request<pb::Empty>) -> Result<Response<pb::StateHashReply>, Status> {
        let h = self.node.state.state_hash().await.map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::StateHashReply {
            applied: h.applied.map(|l| l.index),
            hash: ledger::snapshot::hex(&h.hash),
            rows: h.rows,
        }))
    }

    async fn load_metagraph(
        &self,
        request: Request<pb::MetagraphRequest>,
    ) -> Result<Response<pb::ProposeReply>, Status> {
        let r = request.into_inner();
        let netuid = u16::try_from(r.netuid).map_err(|_| Status::invalid_argument("netuid out of range"))?;
        let mut neurons = Vec::with_capacity(r.neurons.len());
        for n in r.neurons {
            let uid =
                u16::try_from(n.uid).map_err(|_| Status::invalid_argument(format!("uid {} out of range", n.uid)))?;
            crate::axon::identity::decode_ss58(&n.hotkey)
                .map_err(|e| Status::invalid_argument(format!("uid {uid}: hotkey: {e}")))?;
            neurons.push(ledger::command::Neuron {
                uid,
                hotkey: n.hotkey,
                coldkey: n.coldkey,
                stake_rao: n.stake_rao,
                validator_permit: n.validator_permit,
                axon: n.axon,
            });
        }
        let command = Command::SyncMetagraph(ledger::command::MetagraphSync { netuid, block: r.block, neurons });
        let proposed = self.node.propose(&command, DEFAULT_PROPOSE_TIMEOUT).await.map_err(propose_status)?;
        let outcome = match proposed.applied {
            Applied::Refused(reason) => return Err(Status::invalid_argument(reason)),
            _ => "done".to_string(),
        };
        Ok(Response::new(pb::ProposeReply {
            index: proposed.index,
            term: proposed.term,
            leader: proposed.leader,
            outcome,
        }))
    }

    async fn list_neurons(&self, _: Request<pb::Empty>) -> Result<Response<pb::MetagraphRequest>, Status> {
        let neurons = self.node.state.neurons().await.map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::MetagraphRequest {
            netuid: 0,
            block: 0,
            neurons: neurons
                .into_iter()
                .map(|n| pb::Neuron {
                    uid: n.uid.into(),
                    hotkey: n.hotkey,
                    coldkey: n.coldkey,
                    stake_rao: n.stake_rao,
                    validator_permit: n.validator_permit,
                    axon: n.axon,
                })
                .collect(),
        }))
    }

    async fn run_load(&self, request: Request<pb::RunLoadRequest>) -> Result<Response<pb::RunLoadReply>, Status> {
        let r = request.into_inner();
        if r.writers == 0 || r.writers > 4096 {
            return Err(Status::invalid_argument("writers must be between 1 and 4096"));
        }
        if r.duration_ms == 0 || r.duration_ms > 600_000 {
            return Err(Status::invalid_argument("duration_ms must be between 1 and 600000"));
        }
        if r.value_bytes > 64 * 1024 {
            return Err(Status::invalid_argument("value_bytes must be at most 65536"));
        }
        let report = super::load::run(
            self.node.clone(),
            r.writers as usize,
            Duration::from_millis(r.duration_ms.into()),
            r.value_bytes as usize,
        )
        .await;
        Ok(Response::new(report))
    }

    async fn run_verify_batch(
        &self,
        request: Request<pb::VerifyBatchRequest>,
    ) -> Result<Response<pb::VerifyBatchReply>, Status> {
        use crate::proofs::batch;
        let r = request.into_inner();
        let spec =
            batch::BatchSpec { jobs: r.jobs, matrix_size: r.matrix_size, iterations: r.iterations, rows: r.rows };
        let report = batch::run(self.dispatcher.clone(), spec).await.map_err(|e| match e {
            batch::BatchError::Invalid(m) => Status::invalid_argument(m),
            e => Status::unavailable(e.to_string()),
        })?;
        Ok(Response::new(pb::VerifyBatchReply {
            wall_ms: report.wall_ms,
            setup_ms: report.setup_ms,
            verified: report.verified,
            failed: report.failed,
            errors: report.errors,
            mean_verification_ms: report.mean_verification_ms,
            per_member: report.per_member.into_iter().collect(),
            first_error: report.first_error,
        }))
    }
}
