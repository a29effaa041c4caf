//! A running member of the validator cluster: the ledger, Raft and the cluster transport,
//! wired together, and the one way the rest of the node changes replicated state
//! ([`LedgerNode::propose`]).
//!
//! Proposals may start on any member. The leader appends them itself; a follower forwards them
//! over QUIC to the leader it knows, and retries on the new leader if leadership moves while
//! the call is in flight, until the caller's deadline. Either way the call returns only after
//! the command is committed and applied on the leader, with the deterministic result of apply.

pub mod leader_watch;
pub mod metrics;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use ledger::Storage;
use ledger::command::Applied;
use ledger::command::Command;
use ledger::command::CommandError;
use ledger::command::LEDGER_FORMAT;
use ledger::command::MAX_BATCH_ITEMS;
use ledger::command::MAX_COMMAND_BYTES;
use ledger::command::Proposal;
use ledger::command::ProposeError;
use ledger::command::ProposeRequest;
use ledger::command::Proposed;
use ledger::state::StateReader;
use ledger::store::Backend;
use ledger::store::Database;
use ledger::types::LeaderId;
use ledger::types::Member;
use ledger::types::NodeId;
use ledger::types::Raft;
use ledger::types::RaftMetrics;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use openraft::impls::ProgressResponder;
use transport::Endpoint;
use transport::Limits;
use transport::endpoint::Peer;
use transport::frame::Fault;
use transport::pki::TlsIdentity;
use transport::raft_net::ClusterServices;
use transport::raft_net::LedgerService;
use transport::raft_net::Network;

use crate::config::Config;

/// Most bytes of encoded items one batch entry carries (half the entry limit, so the batch's
/// own framing always fits).
pub const BATCH_BYTES: usize = MAX_COMMAND_BYTES / 2;

/// An application service on the cluster transport (`Kind::Request(name)`).
pub type ServiceFn =
    Arc<dyn Fn(Vec<u8>, Peer) -> futures::future::BoxFuture<'static, Result<Vec<u8>, Fault>> + Send + Sync>;

/// A member of the cluster.
pub struct LedgerNode {
    pub id: NodeId,
    pub me: Member,
    pub raft: Raft,
    pub state: StateReader,
    pub endpoint: Arc<Endpoint>,
    pub db: Database,
    pub data_dir: PathBuf,
    leader_changes: AtomicU64,
    services: parking_lot::RwLock<std::collections::HashMap<String, ServiceFn>>,
}

/// How long a forwarded proposal may take on the leader before the follower gives up on it.
const FORWARD_CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl LedgerNode {
    /// Opens the ledger and starts Raft and the cluster transport.
    pub async fn start(config: &Config) -> anyhow::Result<Arc<LedgerNode>> {
        let data_dir = config.data_dir();
        std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let (db, storage) = Storage::open(&config.database.url, &data_dir)
            .await
            .with_context(|| format!("opening the ledger at {}", ledger::store::redact(&config.database.url)))?;
        let tls = config.tls_dir();
        let identity = TlsIdentity::load(&tls.join("ca.crt"), &tls.join("node.crt"), &tls.join("node.key"))
            .context("loading the node's TLS identity (run `validator init` first)")?;
        let limits = Limits { max_snapshot: config.cluster.max_snapshot_mib << 20, ..Limits::default() };
        let endpoint = Endpoint::bind(config.cluster.listen, &identity, limits)
            .with_context(|| format!("binding the cluster transport on {}", config.cluster.listen))?;

        let t = config.raft.timings();
        let raft_config = openraft::Config {
            cluster_name: config.cluster.name.clone(),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_min_ms,
            election_timeout_max: t.election_max_ms,
            install_snapshot_timeout: config.raft.snapshot_send_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.raft.snapshot_every_entries),
            max_in_snapshot_log_to_keep: config.raft.keep_entries_after_snapshot,
            enable_pre_vote: Some(true),
            max_payload_entries: 1000,
            ..Default::default()
        }
        .validate()
        .context("raft configuration")?;

        let id = storage.node_id;
        let me = Member {
            name: config.node.name.clone(),
            raft_addr: config.raft_advertise(),
            admin_addr: config.admin_advertise(),
            ledger_format: LEDGER_FORMAT,
        };
        let state = storage.reader.clone();
        let raft =
            Raft::new(id, Arc::new(raft_config), Network::new(endpoint.clone()), storage.log, storage.state_machine)
                .await
                .context("starting raft")?;
        let node = Arc::new(LedgerNode {
            id,
            me,
            raft: raft.clone(),
            state,
            endpoint: endpoint.clone(),
            db,
            data_dir: data_dir.clone(),
            leader_changes: AtomicU64::new(0),
            services: Default::default(),
        });
        let service = LedgerService::new(raft, id, data_dir.join("snapshots"), node.clone(), &endpoint);
        tokio::spawn(endpoint.clone().serve(Arc::new(service)));
        tokio::spawn(metrics::mirror(node.clone()));
        tokio::spawn(leader_watch::watch(node.clone(), Duration::from_millis((t.heartbeat_ms / 2).max(5))));
        tracing::info!(
            node_id = id,
            name = %node.me.name,
            raft = %node.me.raft_addr,
            backend = node.db.backend().as_str(),
            "ledger node started"
        );
        Ok(node)
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// A copy of the current Raft metrics (never hold the watch borrow across an await:
    /// ha-anchors.md §1.8).
    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow_watched().clone()
    }

    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    pub(crate) fn count_leader_change(&self) {
        self.leader_changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits up to `timeout` for the metrics to satisfy `pred`; the metrics that did, if any.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&RaftMetrics) -> bool + Send + 'static,
    ) -> Option<RaftMetrics> {
        self.raft.wait(Some(timeout)).metrics(pred, "condition").await.ok()
    }

    /// The member record of `id` in the current membership.
    pub fn member(&self, id: NodeId) -> Option<Member> {
        self.metrics().membership_config.membership().get_node(&id).cloned()
    }

    /// Proposes `command` and waits until it is committed and applied, forwarding to the
    /// leader if needed and following leadership changes until `timeout`.
    pub async fn propose(&self, command: &Command, timeout: Duration) -> Result<Proposed, ProposeError> {
        let request = ProposeRequest { proposal: Proposal::encode(command), expect_leader: None };
        self.propose_request(request, timeout).await
    }

    /// Proposes `commands` as few entries as possible ([`Command::Batch`] of at most
    /// [`MAX_BATCH_ITEMS`] items and [`BATCH_BYTES`] bytes each) and returns one result per
    /// command, in order. A chunk that fails fails all its commands with the same error (it may
    /// still commit, like any proposal that timed out). While a member of the membership still
    /// runs ledger format 1, the commands go one by one.
    pub async fn propose_all(&self, commands: &[Command], timeout: Duration) -> Vec<Result<Applied, ProposeError>> {
        let mut results = Vec::with_capacity(commands.len());
        let mut start = 0;
        while start < commands.len() {
            let mut end = start;
            let mut bytes = 0;
            let mut encoded = Vec::new();
            while end < commands.len() && end - start < MAX_BATCH_ITEMS {
                let item = Proposal::encode(&commands[end]);
                if !encoded.is_empty() && bytes + item.body.len() > BATCH_BYTES {
                    break;
                }
                bytes += item.body.len() + 8;
                encoded.push(item);
                end += 1;
            }
            let chunk = &commands[start..end];
            if chunk.len() == 1 {
                results.push(self.propose(&chunk[0], timeout).await.map(|p| p.applied));
            } else {
                let request =
                    ProposeRequest { proposal: Proposal::encode(&Command::Batch(encoded)), expect_leader: None };
                match self.propose_request(request, timeout).await {
                    Ok(Proposed { applied: Applied::Batch(items), .. }) if items.len() == chunk.len() => {
                        results.extend(items.into_iter().map(Ok));
                    }
                    Ok(other) => {
                        let e =
                            ProposeError::Raft(format!("a batch of {} was answered {:?}", chunk.len(), other.applied));
                        results.extend(chunk.iter().map(|_| Err(e.clone())));
                    }
                    Err(ProposeError::MemberTooOld { .. }) => {
                        for command in chunk {
                            results.push(self.propose(command, timeout).await.map(|p| p.applied));
                        }
                    }
                    Err(e) => results.extend(chunk.iter().map(|_| Err(e.clone()))),
                }
            }
            start = end;
        }
        results
    }

    /// Like [`Self::propose`] with an explicit request (e.g. a committed-leader precondition).
    pub async fn propose_request(&self, request: ProposeRequest, timeout: Duration) -> Result<Proposed, ProposeError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut last_error = ProposeError::NoLeader;
        loop {
            let now = Instant::now();
            if now >= deadline {
                ::metrics::counter!("ledger_proposals_failed_total", "reason" => "timeout").increment(1);
                return Err(match last_error {
                    ProposeError::NoLeader => ProposeError::Timeout(timeout.as_millis() as u64),
                    other => other,
                });
            }
            let leader = self.metrics().current_leader;
            let attempt = match leader {
                Some(leader) if leader == self.id => self.propose_here(request.clone()).await,
                Some(leader) => match self.member(leader) {
                    Some(member) => {
                        let left = deadline.saturating_duration_since(now).min(FORWARD_CALL_TIMEOUT);
                        let forwarded = transport::raft_net::forward(&self.endpoint, leader, &member, &request, left);
                        // A leader that dies or hands over mid-call never answers; stop waiting
                        // for it as soon as another leader is known and retry there. (The
                        // write may still commit through the old leader's log: commands are
                        // idempotent or guarded, see ledger::state::apply.)
                        let waiter = self.raft.wait(Some(left));
                        let moved = waiter.metrics(|m| m.current_leader.is_some_and(|l| l != leader), "leader moved");
                        tokio::select! {
                            result = forwarded => result,
                            Ok(m) = moved => Err(ProposeError::NotLeader { leader: m.current_leader }),
                        }
                    }
                    None => Err(ProposeError::NoLeader),
                },
                None => Err(ProposeError::NoLeader),
            };
            match attempt {
                Ok(proposed) => {
                    ::metrics::histogram!("ledger_proposal_seconds").record(started.elapsed().as_secs_f64());
                    return Ok(proposed);
                }
                // Retry where leadership may have moved or the leader was briefly unreachable.
                Err(e @ (ProposeError::NoLeader | ProposeError::NotLeader { .. } | ProposeError::Transport(_))) => {
                    last_error = e;
                    self.wait_for_leader_change(leader, deadline).await;
                }
                Err(e) => {
                    ::metrics::counter!("ledger_proposals_failed_total", "reason" => "refused").increment(1);
                    return Err(e);
                }
            }
        }
    }

    /// Waits until the known leader differs from `seen` (or a short pause passes), bounded by
    /// `deadline`.
    async fn wait_for_leader_change(&self, seen: Option<NodeId>, deadline: Instant) {
        let pause = Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now()));
        let _ = self
            .raft
            .wait(Some(pause))
            .metrics(|m| m.current_leader != seen && m.current_leader.is_some(), "leader change")
            .await;
    }

    /// Proposes on this node, which believes it is the leader.
    async fn propose_here(&self, request: ProposeRequest) -> Result<Proposed, ProposeError> {
        let command = request.proposal.decode()?;
        // Every member must be able to apply the command (see ledger::command docs).
        let needed = command.format();
        for (id, member) in self.metrics().membership_config.membership().nodes() {
            if member.ledger_format < needed {
                return Err(ProposeError::MemberTooOld { member: *id, supported: member.ledger_format, needed });
            }
        }
        let (responder, rx) = ProgressResponder::complete_only();
        let mut write = self.raft.write(request.proposal).responder(responder);
        if let Some((term, node_id)) = request.expect_leader {
            write = write.with_leader(LeaderId { term, node_id });
        }
        write.await.map_err(|fatal| ProposeError::Raft(fatal.to_string()))?;
        let result = rx.await.map_err(|_| ProposeError::Raft("raft dropped the proposal".into()))?;
        match result {
            Ok(response) => Ok(Proposed {
                index: response.log_id.index,
                term: response.log_id.leader_id.term,
                leader: response.log_id.leader_id.node_id,
                applied: response.data,
            }),
            Err(ClientWriteError::ForwardToLeader(f)) => match request.expect_leader {
                Some((expected_term, expected_node)) => {
                    Err(ProposeError::LeaderChanged { expected_term, expected_node })
                }
                None => Err(ProposeError::NotLeader { leader: f.leader_id }),
            },
            Err(ClientWriteError::LogEntryDiscarded(f)) => Err(ProposeError::NotLeader { leader: f.leader_id }),
            Err(other) => Err(ProposeError::Raft(other.to_string())),
        }
    }

    /// Initializes a pristine cluster with `members` (this node must be one of them).
    pub async fn initialize(&self, members: BTreeMap<NodeId, Member>) -> anyhow::Result<()> {
        if !members.contains_key(&self.id) {
            anyhow::bail!("this node ({}) is not among the members to initialize", self.id);
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(e)) => Err(anyhow::anyhow!("cannot initialize: {e}")),
            Err(e) => Err(anyhow::anyhow!("cannot initialize: {e}")),
        }
    }

    /// Serves `name` on the cluster transport.
    pub fn register_service(&self, name: &str, handler: ServiceFn) {
        self.services.write().insert(name.to_string(), handler);
    }

    /// True when this node currently leads.
    pub fn is_leader(&self) -> bool {
        let m = self.metrics();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Stops Raft and the transport.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        self.endpoint.close();
        self.db.close().await;
    }
}

impl ClusterServices for LedgerNode {
    async fn forward(&self, request: ProposeRequest) -> Result<Proposed, ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotLeader { leader: self.metrics().current_leader });
        }
        self.propose_here(request).await
    }

    async fn request(&self, service: String, body: Vec<u8>, peer: Peer) -> Result<Vec<u8>, Fault> {
        let handler = self.services.read().get(&service).cloned();
        match handler {
            Some(handler) => handler(body, peer).await,
            None => {
                tracing::debug!(%service, peer = %peer.addr, "request for an unknown service");
                Err(Fault::Unsupported(format!("no service named {service:?} on this node")))
            }
        }
    }
}

impl From<CommandError> for crate::admin::AdminError {
    fn from(e: CommandError) -> Self {
        crate::admin::AdminError::InvalidArgument(e.to_string())
    }
}
