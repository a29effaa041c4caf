//! One QUIC endpoint per member: it accepts streams from peers and opens streams to them.
//!
//! Connections are mutual TLS against the cluster CA (see [`crate::pki`]); the handshake
//! refuses a peer without such a certificate before a single stream is accepted. Each request
//! runs on its own bidirectional stream, so a slow snapshot never blocks a vote. One connection
//! per peer is cached and replaced as soon as a call on it fails, so a restarted peer is
//! reached again on the next call instead of after an idle timeout.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use quinn::RecvStream;
use quinn::SendStream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame;
use crate::frame::ALPN;
use crate::frame::Fault;
use crate::frame::FrameError;
use crate::frame::Header;
use crate::frame::MAX_HEADER_BYTES;
use crate::frame::PROTOCOL_VERSION;
use crate::pki::TlsIdentity;

/// Bounds of the transport.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame accepted (an AppendEntries batch, a forwarded command, a snapshot chunk).
    pub max_frame: usize,
    /// Largest snapshot accepted from a leader.
    pub max_snapshot: u64,
    pub connect_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    pub keep_alive: Duration,
    /// Concurrent streams a peer may open on one connection.
    pub max_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 32 << 20,
            max_snapshot: 16 << 30,
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_millis(500),
            max_streams: 4096,
        }
    }
}

/// Errors calling a peer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("peer refused: {0}")]
    Remote(Fault),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("setup: {0}")]
    Setup(String),
}

/// Who is on the other side of a stream.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The name in the peer's certificate.
    pub name: Option<String>,
}

/// Serves the streams of accepted connections.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, header: Header, send: SendStream, recv: RecvStream, peer: Peer)
    -> impl Future<Output = ()> + Send;
}

type Slot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

/// A member's QUIC endpoint.
pub struct Endpoint {
    quic: quinn::Endpoint,
    limits: Limits,
    peers: Mutex<HashMap<(String, String), Slot>>,
}

fn transport_config(limits: &Limits) -> Result<quinn::TransportConfig, TransportError> {
    let mut config = quinn::TransportConfig::default();
    config
        .max_concurrent_bidi_streams(limits.max_streams.into())
        .max_concurrent_uni_streams(0u32.into())
        .keep_alive_interval(Some(limits.keep_alive))
        .max_idle_timeout(Some(
            limits.idle_timeout.try_into().map_err(|e| TransportError::Setup(format!("idle timeout: {e}")))?,
        ))
        .stream_receive_window((8u32 << 20).into())
        .receive_window((64u32 << 20).into())
        .send_window(64 << 20);
    Ok(config)
}

impl Endpoint {
    /// Binds a member endpoint that both accepts and opens connections.
    pub fn bind(addr: SocketAddr, identity: &TlsIdentity, limits: Limits) -> Result<Arc<Endpoint>, TransportError> {
        let transport = Arc::new(transport_config(&limits)?);
        let server_tls = identity.server_config(&[ALPN]).map_err(|e| TransportError::Setup(e.to_string()))?;
        let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_tls)
            .map_err(|e| TransportError::Setup(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());
        let mut quic = quinn::Endpoint::server(server, addr)
            .map_err(|e| TransportError::Setup(format!("cannot bind UDP {addr}: {e}")))?;
        quic.set_default_client_config(client_config(identity, transport)?);
        Ok(Arc::new(Endpoint { quic, limits, peers: Mutex::new(HashMap::new()) }))
    }

    /// A client-only endpoint (tools, tests).
    pub fn client(identity: &TlsIdentity, limits: Limits) -> Result<Arc<Endpoint>, TransportError> {
        let transport = Arc::new(transport_config(&limits)?);
        let bind: SocketAddr = ([0, 0, 0, 0], 0).into();
        let mut quic =
            quinn::Endpoint::client(bind).map_err(|e| TransportError::Setup(format!("cannot bind UDP: {e}")))?;
        quic.set_default_client_config(client_config(identity, transport)?);
        Ok(Arc::new(Endpoint { quic, limits, peers: Mutex::new(HashMap::new()) }))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.quic.local_addr().ok()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.quic.close(0u32.into(), b"shutdown");
    }

    fn slot(&self, addr: &str, name: &str) -> Slot {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.entry((addr.to_string(), name.to_string())).or_default().clone()
    }

    /// The cached connection to `addr` (authenticated as `name`), connecting if needed.
    pub async fn connection(&self, addr: &str, name: &str) -> Result<quinn::Connection, TransportError> {
        let slot = self.slot(addr, name);
        let mut cached = slot.lock().await;
        if let Some(conn) = cached.as_ref()
            && conn.close_reason().is_none()
        {
            return Ok(conn.clone());
        }
        let unreachable = |reason: String| TransportError::Unreachable { addr: addr.to_string(), reason };
        let socket = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| unreachable("no address".into()))?;
        let connecting = self.quic.connect(socket, name).map_err(|e| unreachable(e.to_string()))?;
        let conn = tokio::time::timeout(self.limits.connect_timeout, connecting)
            .await
            .map_err(|_| unreachable(format!("no handshake within {:?}", self.limits.connect_timeout)))?
            .map_err(|e| unreachable(e.to_string()))?;
        *cached = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the cached connection if it is `conn` (after a failed call on it).
    pub fn forget(&self, addr: &str, name: &str, conn: &quinn::Connection) {
        let slot = self.slot(addr, name);
        if let Ok(mut cached) = slot.try_lock()
            && cached.as_ref().is_some_and(|c| c.stable_id() == conn.stable_id())
        {
            *cached = None;
        }
        conn.close(0u32.into(), b"call failed");
    }

    /// Opens a stream to a peer and sends its header.
    pub async fn open(
        &self,
        addr: &str,
        name: &str,
        header: &Header,
    ) -> Result<(quinn::Connection, SendStream, RecvStream), TransportError> {
        let conn = self.connection(addr, name).await?;
        let opened = async {
            let (mut send, recv) = conn.open_bi().await.map_err(|e| FrameError::Write(e.to_string()))?;
            frame::write_value(&mut send, header).await?;
            Ok::<_, FrameError>((send, recv))
        }
        .await;
        match opened {
            Ok((send, recv)) => Ok((conn, send, recv)),
            Err(e) => {
                self.forget(addr, name, &conn);
                Err(e.into())
            }
        }
    }

    /// One request, one response, within `timeout`.
    pub async fn unary<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        name: &str,
        header: Header,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        let body = frame::encode(request)?;
        let call = async {
            let (conn, mut send, mut recv) = self.open(addr, name, &header).await?;
            let result = async {
                frame::write_frame(&mut send, &body).await?;
                let _ = send.finish();
                let reply: Result<Resp, Fault> = frame::read_value(&mut recv, self.limits.max_frame).await?;
                Ok::<_, FrameError>(reply)
            }
            .await;
            match result {
                Ok(reply) => reply.map_err(TransportError::Remote),
                Err(e) => {
                    self.forget(addr, name, &conn);
                    Err(e.into())
                }
            }
        };
        tokio::time::timeout(timeout, call).await.map_err(|_| TransportError::Timeout(timeout))?
    }

    /// Accepts connections and streams until the endpoint closes, handing each stream to
    /// `handler` on its own task.
    pub async fn serve<H: Handler>(self: Arc<Self>, handler: Arc<H>) {
        while let Some(incoming) = self.quic.accept().await {
            let handler = handler.clone();
            let max_frame = self.limits.max_frame;
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                let conn = match incoming.await {
                    Ok(conn) => conn,
                    Err(e) => {
                        // The usual reason: no certificate, or one from another CA.
                        metrics::counter!("transport_handshakes_refused_total").increment(1);
                        tracing::warn!(peer = %remote, error = %e, "refused a cluster connection");
                        return;
                    }
                };
                let name = peer_name(&conn);
                let peer = Peer { addr: remote, name };
                loop {
                    let (send, recv) = match conn.accept_bi().await {
                        Ok(streams) => streams,
                        Err(_) => break,
                    };
                    let handler = handler.clone();
                    let peer = peer.clone();
                    tokio::spawn(serve_stream(handler, send, recv, peer, max_frame));
                }
            });
        }
    }
}

async fn serve_stream<H: Handler>(
    handler: Arc<H>,
    mut send: SendStream,
    mut recv: RecvStream,
    peer: Peer,
    _max: usize,
) {
    let header =
        match tokio::time::timeout(Duration::from_secs(5), frame::read_frame(&mut recv, MAX_HEADER_BYTES)).await {
            Ok(Ok(Some(bytes))) => frame::decode::<Header>(&bytes),
            Ok(Ok(None)) => return,
            Ok(Err(e)) => Err(e),
            Err(_) => Err(FrameError::Read("no header within 5 s".into())),
        };
    let header = match header {
        Ok(h) if h.version == PROTOCOL_VERSION => h,
        Ok(h) => {
            refuse(&mut send, &mut recv, Fault::Version(h.version), &peer).await;
            return;
        }
        Err(e) => {
            refuse(&mut send, &mut recv, e.into(), &peer).await;
            return;
        }
    };
    handler.handle(header, send, recv, peer).await;
}

/// Answers a stream with a fault and ends it; the connection stays up.
pub async fn refuse(send: &mut SendStream, recv: &mut RecvStream, fault: Fault, peer: &Peer) {
    metrics::counter!("transport_streams_refused_total").increment(1);
    tracing::warn!(peer = %peer.addr, name = ?peer.name, %fault, "refused a cluster stream");
    let reply: Result<(), Fault> = Err(fault);
    if let Ok(bytes) = frame::encode(&reply) {
        let _ = frame::write_frame(send, &bytes).await;
    }
    let _ = send.finish();
    let _ = recv.stop(0u32.into());
}

fn client_config(
    identity: &TlsIdentity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TransportError> {
    let tls = identity.client_config(&[ALPN]).map_err(|e| TransportError::Setup(e.to_string()))?;
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| TransportError::Setup(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport);
    Ok(config)
}

fn peer_name(conn: &quinn::Connection) -> Option<String> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast_ref::<Vec<rustls_pki_types::CertificateDer<'static>>>()?;
    certs.first().and_then(crate::pki::certificate_name)
}
