//! openraft's network over the cluster transport, both directions.
//!
//! * [`Network`] / [`PeerClient`]: what openraft calls to reach a peer. AppendEntries are
//!   pipelined on one long-lived stream per peer ([`Kind::StreamAppend`]), so replication
//!   never waits a round trip per batch; votes and leader transfers are one stream each;
//!   snapshots are streamed from the file in chunks, never loaded whole.
//! * [`LedgerService`]: the receiving side. It hands Raft messages to the local [`Raft`], lands
//!   snapshots in the snapshot folder (verifying size and blake3 before install), and passes
//!   forwarded proposals and application requests to the node's [`ClusterServices`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ledger::command::ProposeError;
use ledger::command::ProposeRequest;
use ledger::command::Proposed;
use ledger::snapshot::SnapshotFile;
use ledger::types::Member;
use ledger::types::NodeId;
use ledger::types::Raft;
use ledger::types::Snapshot;
use ledger::types::SnapshotMeta;
use ledger::types::TypeConfig;
use ledger::types::Vote;
use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::base::BoxFuture;
use openraft::base::BoxStream;
use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::Backoff;
use openraft::network::NetBackoff;
use openraft::network::NetSnapshot;
use openraft::network::NetStreamAppend;
use openraft::network::NetTransferLeader;
use openraft::network::NetVote;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::SnapshotResponse;
use openraft::raft::StreamAppendResult;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use quinn::RecvStream;
use quinn::SendStream;
use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;

use crate::endpoint::Endpoint;
use crate::endpoint::Handler;
use crate::endpoint::Peer;
use crate::endpoint::TransportError;
use crate::endpoint::refuse;
use crate::frame;
use crate::frame::Fault;
use crate::frame::FrameError;
use crate::frame::Header;
use crate::frame::Kind;

/// Size of the chunks a snapshot travels in.
const SNAPSHOT_CHUNK: usize = 1 << 20;

type RpcErr = RPCError<TypeConfig>;

fn rpc_error(e: TransportError) -> RpcErr {
    match e {
        TransportError::Unreachable { .. } | TransportError::Remote(Fault::WrongMember { .. }) => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        other => RPCError::Network(NetworkError::new(&other)),
    }
}

fn streaming_error(e: TransportError) -> StreamingError<TypeConfig> {
    match e {
        TransportError::Unreachable { .. } | TransportError::Remote(Fault::WrongMember { .. }) => {
            StreamingError::Unreachable(Unreachable::new(&e))
        }
        other => StreamingError::Network(NetworkError::new(&other)),
    }
}

/// openraft's network factory: one [`PeerClient`] per target member.
#[derive(Clone)]
pub struct Network {
    endpoint: Arc<Endpoint>,
}

impl Network {
    pub fn new(endpoint: Arc<Endpoint>) -> Network {
        Network { endpoint }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient { endpoint: self.endpoint.clone(), target, addr: node.raft_addr.clone(), name: node.name.clone() }
    }
}

/// Calls to one peer.
pub struct PeerClient {
    endpoint: Arc<Endpoint>,
    target: NodeId,
    addr: String,
    name: String,
}

impl PeerClient {
    async fn unary<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, TransportError> {
        self.endpoint.unary(&self.addr, &self.name, Header::new(kind, self.target), request, option.hard_ttl()).await
    }
}

impl NetVote<TypeConfig> for PeerClient {
    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RpcErr> {
        self.unary(Kind::Vote, &rpc, &option).await.map_err(rpc_error)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RpcErr> {
        self.unary(Kind::PreVote, &rpc, &option).await.map_err(rpc_error)
    }
}

impl NetTransferLeader<TypeConfig> for PeerClient {
    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RpcErr> {
        self.unary(Kind::TransferLeader, &req, &option).await.map_err(rpc_error)
    }
}

impl NetBackoff<TypeConfig> for PeerClient {
    fn backoff(&self) -> Option<Backoff> {
        // None: use Config::backoff (200 ms growing to 1 s on an unreachable peer).
        None
    }
}

/// Aborts a task when dropped (the writer half of a replication stream).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl NetStreamAppend<TypeConfig> for PeerClient {
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        _option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RpcErr>>, RpcErr>>
    where
        S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        Box::pin(async move {
            let header = Header::new(Kind::StreamAppend, self.target);
            let (conn, mut send, recv) =
                self.endpoint.open(&self.addr, &self.name, &header).await.map_err(rpc_error)?;
            let writer = tokio::spawn(async move {
                let mut input = input;
                while let Some(request) = input.next().await {
                    let ok = match frame::encode(&request) {
                        Ok(bytes) => frame::write_frame(&mut send, &bytes).await.is_ok(),
                        Err(_) => false,
                    };
                    if !ok {
                        return;
                    }
                }
                let _ = send.finish();
            });
            let guard = Arc::new(AbortOnDrop(writer));
            let max = self.endpoint.limits().max_frame;
            let endpoint = self.endpoint.clone();
            let (addr, name) = (self.addr.clone(), self.name.clone());
            let out = futures::stream::unfold(Some((recv, guard)), move |state| {
                let (endpoint, addr, name, conn) = (endpoint.clone(), addr.clone(), name.clone(), conn.clone());
                async move {
                    let (mut recv, guard) = state?;
                    match frame::read_frame(&mut recv, max).await {
                        Ok(Some(bytes)) => match frame::decode::<Result<StreamAppendResult<TypeConfig>, Fault>>(&bytes)
                        {
                            Ok(Ok(result)) => {
                                let next = if result.is_err() { None } else { Some((recv, guard)) };
                                Some((Ok(result), next))
                            }
                            Ok(Err(fault)) => Some((Err(rpc_error(TransportError::Remote(fault))), None)),
                            Err(e) => Some((Err(rpc_error(e.into())), None)),
                        },
                        Ok(None) => None,
                        Err(e) => {
                            endpoint.forget(&addr, &name, &conn);
                            Some((Err(rpc_error(e.into())), None))
                        }
                    }
                }
            });
            Ok(Box::pin(out) as BoxStream<'s, _>)
        })
    }
}

/// What precedes a snapshot's bytes on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotOffer {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub size: u64,
    pub checksum: [u8; 32],
}

impl NetSnapshot<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let send_all = async {
            let header = Header::new(Kind::Snapshot, self.target);
            let (conn, mut send, mut recv) = self.endpoint.open(&self.addr, &self.name, &header).await?;
            let result = async {
                let file = &snapshot.snapshot;
                let offer =
                    SnapshotOffer { vote, meta: snapshot.meta.clone(), size: file.size, checksum: file.checksum };
                frame::write_value(&mut send, &offer).await?;
                let mut input = tokio::fs::File::open(&file.path).await.map_err(|e| FrameError::Read(e.to_string()))?;
                let mut buf = vec![0u8; SNAPSHOT_CHUNK];
                loop {
                    let n = input.read(&mut buf).await.map_err(|e| FrameError::Read(e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    frame::write_frame(&mut send, &buf[..n]).await?;
                }
                frame::write_frame(&mut send, &[]).await?;
                let _ = send.finish();
                let reply: Result<SnapshotResponse<TypeConfig>, Fault> =
                    frame::read_value(&mut recv, self.endpoint.limits().max_frame).await?;
                Ok::<_, FrameError>(reply)
            }
            .await;
            match result {
                Ok(reply) => reply.map_err(TransportError::Remote),
                Err(e) => {
                    self.endpoint.forget(&self.addr, &self.name, &conn);
                    Err(e.into())
                }
            }
        };
        // The snapshot timeout covers the whole transfer (openraft's send_snapshot_timeout).
        let ttl = option.hard_ttl();
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            done = tokio::time::timeout(ttl, send_all) => match done {
                Ok(result) => result.map_err(streaming_error),
                Err(_) => Err(streaming_error(TransportError::Timeout(ttl))),
            },
        }
    }
}

/// What the node serves besides Raft itself.
pub trait ClusterServices: Send + Sync + 'static {
    /// A proposal forwarded by a follower; only the leader commits it.
    fn forward(&self, request: ProposeRequest) -> impl Future<Output = Result<Proposed, ProposeError>> + Send;
    /// An application request on the named service.
    fn request(
        &self,
        service: String,
        body: Vec<u8>,
        peer: Peer,
    ) -> impl Future<Output = Result<Vec<u8>, Fault>> + Send;
}

/// The receiving side of the cluster transport.
pub struct LedgerService<S> {
    raft: Raft,
    node_id: NodeId,
    snapshot_dir: PathBuf,
    services: Arc<S>,
    max_frame: usize,
    max_snapshot: u64,
}

impl<S: ClusterServices> LedgerService<S> {
    pub fn new(raft: Raft, node_id: NodeId, snapshot_dir: PathBuf, services: Arc<S>, endpoint: &Endpoint) -> Self {
        LedgerService {
            raft,
            node_id,
            snapshot_dir,
            services,
            max_frame: endpoint.limits().max_frame,
            max_snapshot: endpoint.limits().max_snapshot,
        }
    }

    async fn unary<Req, Resp, F, Fut>(&self, send: &mut SendStream, recv: &mut RecvStream, peer: &Peer, f: F)
    where
        Req: serde::de::DeserializeOwned,
        Resp: Serialize,
        F: FnOnce(Req) -> Fut,
        Fut: Future<Output = Result<Resp, Fault>>,
    {
        let request = match frame::read_value::<Req>(recv, self.max_frame).await {
            Ok(r) => r,
            Err(e) => return refuse(send, recv, e.into(), peer).await,
        };
        let reply = f(request).await;
        if let Ok(bytes) = frame::encode(&reply) {
            let _ = frame::write_frame(send, &bytes).await;
        }
        let _ = send.finish();
    }

    async fn stream_append(&self, mut send: SendStream, recv: RecvStream, peer: Peer) {
        let max = self.max_frame;
        let (tx, rx) = tokio::sync::mpsc::channel::<AppendEntriesRequest<TypeConfig>>(64);
        let (fault_tx, mut fault_rx) = tokio::sync::oneshot::channel::<Fault>();
        tokio::spawn(async move {
            let mut recv = recv;
            loop {
                match frame::read_frame(&mut recv, max).await {
                    Ok(Some(bytes)) => match frame::decode::<AppendEntriesRequest<TypeConfig>>(&bytes) {
                        Ok(request) => {
                            if tx.send(request).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = fault_tx.send(e.into());
                            return;
                        }
                    },
                    Ok(None) => return,
                    Err(e) => {
                        let _ = fault_tx.send(e.into());
                        return;
                    }
                }
            }
        });
        let input = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut output = std::pin::pin!(self.raft.stream_append(input));
        loop {
            tokio::select! {
                biased;
                item = output.next() => {
                    let Some(item) = item else { break };
                    let reply: Result<StreamAppendResult<TypeConfig>, Fault> = item.map_err(|fatal| Fault::Failed(fatal.to_string()));
                    let stop = !matches!(reply, Ok(Ok(_)));
                    let Ok(bytes) = frame::encode(&reply) else { break };
                    if frame::write_frame(&mut send, &bytes).await.is_err() || stop {
                        break;
                    }
                }
                fault = &mut fault_rx => {
                    if let Ok(fault) = fault {
                        tracing::warn!(peer = %peer.addr, %fault, "malformed replication stream");
                        let reply: Result<StreamAppendResult<TypeConfig>, Fault> = Err(fault);
                        if let Ok(bytes) = frame::encode(&reply) {
                            let _ = frame::write_frame(&mut send, &bytes).await;
                        }
                        break;
                    }
                    // The reader ended cleanly: drain the remaining results.
                    while let Some(item) = output.next().await {
                        let reply: Result<StreamAppendResult<TypeConfig>, Fault> = item.map_err(|fatal| Fault::Failed(fatal.to_string()));
                        let Ok(bytes) = frame::encode(&reply) else { break };
                        if frame::write_frame(&mut send, &bytes).await.is_err() {
                            break;
                        }
                    }
                    break;
                }
            }
        }
        let _ = send.finish();
    }

    async fn receive_snapshot(
        &self,
        send: &mut SendStream,
        recv: &mut RecvStream,
    ) -> Result<SnapshotResponse<TypeConfig>, Fault> {
        let offer: SnapshotOffer = frame::read_value(recv, self.max_frame).await?;
        if offer.size > self.max_snapshot || offer.size < 44 {
            return Err(Fault::TooLarge { len: offer.size, max: self.max_snapshot });
        }
        tokio::fs::create_dir_all(&self.snapshot_dir).await.map_err(|e| Fault::Failed(e.to_string()))?;
        let temp = self.snapshot_dir.join(format!("receiving-{}-{}.tmp", self.node_id, nanos()));
        let received = async {
            let mut file = tokio::fs::File::create(&temp).await.map_err(|e| Fault::Failed(e.to_string()))?;
            let mut hasher = blake3::Hasher::new();
            let mut size = 0u64;
            let mut tail: Vec<u8> = Vec::with_capacity(64);
            loop {
                let chunk = frame::read_required(recv, self.max_frame).await?;
                if chunk.is_empty() {
                    break;
                }
                size += chunk.len() as u64;
                if size > offer.size {
                    return Err(Fault::Malformed(format!("snapshot longer than the offered {} bytes", offer.size)));
                }
                // Hash everything but the last 32 bytes (the trailer) as it streams by.
                tail.extend_from_slice(&chunk);
                if tail.len() > 32 {
                    let cut = tail.len() - 32;
                    hasher.update(&tail[..cut]);
                    tail.drain(..cut);
                }
                file.write_all(&chunk).await.map_err(|e| Fault::Failed(e.to_string()))?;
            }
            if size != offer.size || tail.len() != 32 {
                return Err(Fault::Malformed(format!("snapshot of {size} bytes, {} offered", offer.size)));
            }
            let computed = *hasher.finalize().as_bytes();
            if computed[..] != tail[..] || computed != offer.checksum {
                return Err(Fault::Malformed("snapshot checksum mismatch; refusing to install".into()));
            }
            file.sync_all().await.map_err(|e| Fault::Failed(e.to_string()))?;
            Ok(SnapshotFile { path: temp.clone(), size, checksum: computed })
        }
        .await;
        let file = match received {
            Ok(file) => file,
            Err(fault) => {
                let _ = tokio::fs::remove_file(&temp).await;
                metrics::counter!("transport_snapshots_refused_total").increment(1);
                return Err(fault);
            }
        };
        let _ = send;
        let path = self.snapshot_dir.join(format!("received-{}.{}", nanos(), ledger::snapshot::EXTENSION));
        tokio::fs::rename(&file.path, &path).await.map_err(|e| Fault::Failed(e.to_string()))?;
        let snapshot = Snapshot { meta: offer.meta, snapshot: SnapshotFile { path, ..file } };
        self.raft.install_full_snapshot(offer.vote, snapshot).await.map_err(|e| Fault::Failed(e.to_string()))
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

impl<S: ClusterServices> Handler for LedgerService<S> {
    async fn handle(&self, header: Header, mut send: SendStream, mut recv: RecvStream, peer: Peer) {
        if header.target != 0 && header.target != self.node_id {
            return refuse(
                &mut send,
                &mut recv,
                Fault::WrongMember { expected: header.target, actual: self.node_id },
                &peer,
            )
            .await;
        }
        let raft = &self.raft;
        let fail = |e: &dyn std::fmt::Display| Fault::Failed(e.to_string());
        match header.kind {
            Kind::Append => {
                self.unary(&mut send, &mut recv, &peer, |req: AppendEntriesRequest<TypeConfig>| async move {
                    raft.append_entries(req).await.map_err(|e| fail(&e))
                })
                .await
            }
            Kind::StreamAppend => self.stream_append(send, recv, peer).await,
            Kind::Vote => {
                self.unary(&mut send, &mut recv, &peer, |req: VoteRequest<TypeConfig>| async move {
                    raft.vote(req).await.map_err(|e| fail(&e))
                })
                .await
            }
            Kind::PreVote => {
                self.unary(&mut send, &mut recv, &peer, |req: VoteRequest<TypeConfig>| async move {
                    raft.pre_vote(req).await.map_err(|e| fail(&e))
                })
                .await
            }
            Kind::TransferLeader => {
                self.unary(&mut send, &mut recv, &peer, |req: TransferLeaderRequest<TypeConfig>| async move {
                    raft.handle_transfer_leader(req).await.map_err(|e| fail(&e))
                })
                .await
            }
            Kind::Snapshot => {
                let reply =
                    tokio::time::timeout(Duration::from_secs(3600), self.receive_snapshot(&mut send, &mut recv))
                        .await
                        .unwrap_or_else(|_| Err(Fault::Failed("snapshot transfer took over an hour".into())));
                if let Err(fault) = &reply {
                    tracing::warn!(peer = %peer.addr, %fault, "snapshot not installed");
                }
                if let Ok(bytes) = frame::encode(&reply) {
                    let _ = frame::write_frame(&mut send, &bytes).await;
                }
                let _ = send.finish();
            }
            Kind::Forward => {
                let services = self.services.clone();
                self.unary(&mut send, &mut recv, &peer, |req: ProposeRequest| async move {
                    Ok::<_, Fault>(services.forward(req).await)
                })
                .await
            }
            Kind::Request(service) => {
                let services = self.services.clone();
                let p = peer.clone();
                self.unary(&mut send, &mut recv, &peer, |body: Vec<u8>| async move {
                    services.request(service, body, p).await
                })
                .await
            }
        }
    }
}

/// Forwards a proposal to the leader at `addr`.
pub async fn forward(
    endpoint: &Endpoint,
    leader: NodeId,
    member: &Member,
    request: &ProposeRequest,
    timeout: Duration,
) -> Result<Proposed, ProposeError> {
    let reply: Result<Result<Proposed, ProposeError>, TransportError> =
        endpoint.unary(&member.raft_addr, &member.name, Header::new(Kind::Forward, leader), request, timeout).await;
    match reply {
        Ok(result) => result,
        Err(TransportError::Timeout(t)) => Err(ProposeError::Timeout(t.as_millis() as u64)),
        Err(e) => Err(ProposeError::Transport(e.to_string())),
    }
}
