//! The miner-facing axon: the Bittensor axon protocol as ByteLeap miners speak it.
//!
//! * [`http`]: routes and the `bt_header_*` checks (signature always required, nonce freshness,
//!   metagraph allow-list), the response shape the miner's dendrite accepts;
//! * [`identity`]: SS58 addresses, sr25519 signatures, hotkey files;
//! * [`nonce`], [`limits`]: request freshness and per-hotkey rate limits, bounded;
//! * [`session`]: the encrypted miner sessions, byte-exact with the Python miner;
//! * [`messages`]: the decrypted message models, bounded;
//! * [`miners`]: what the validator answers to each synapse, through the ledger.
//!
//! [`start`] runs it on a member.

pub mod http;
pub mod identity;
pub mod limits;
pub mod messages;
pub mod miners;
pub mod nonce;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::LedgerNode;

/// How often expired sessions are dropped (§2.8 SESSION_CLEANUP_INTERVAL_SECONDS).
const SESSION_CLEANUP: Duration = Duration::from_secs(300);

/// What one member's axon serves and how.
pub struct AxonSetup {
    /// The validator hotkey (ss58) every member serves.
    pub hotkey: String,
    pub addr: SocketAddr,
    /// Largest request body accepted, bytes.
    pub max_body: usize,
    pub limiter: limits::RateLimiter,
    pub settings: miners::ProtocolSettings,
}

/// Starts the axon of `node` until `shutdown` resolves; proofs it receives go to `dispatcher`.
pub async fn start(
    node: Arc<LedgerNode>,
    setup: AxonSetup,
    dispatcher: Arc<crate::proofs::fanout::Dispatcher>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let AxonSetup { hotkey, addr, max_body, limiter, settings } = setup;
    let members = Arc::new(http::Members::default());
    tokio::spawn(follow_metagraph(node.clone(), members.clone()));
    let sessions = session::SessionStore::new(hotkey.clone(), session::SessionStoreConfig::default());
    let desk = Arc::new(miners::MinerDesk::new(node, sessions, limiter, settings, dispatcher));
    tokio::spawn(expire_sessions(desk.clone()));
    let axon = Arc::new(http::Axon::new(hotkey, members, desk));
    let router = http::router(axon, max_body);
    // Bind now so a taken port fails the start, not a background task.
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(axon = %addr, "axon listening");
    Ok(tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
    }))
}

/// Keeps the allow-list equal to the replicated metagraph.
async fn follow_metagraph(node: Arc<LedgerNode>, members: Arc<http::Members>) {
    let mut changes = node.state.metagraph_changes();
    loop {
        match node.state.registered_hotkeys().await {
            Ok(hotkeys) => {
                members.replace(hotkeys);
                metrics::gauge!("axon_registered_hotkeys").set(members.len() as f64);
            }
            Err(e) => tracing::warn!(error = %e, "reading the metagraph"),
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

async fn expire_sessions(desk: Arc<miners::MinerDesk>) {
    let mut ticker = tokio::time::interval(SESSION_CLEANUP);
    loop {
        ticker.tick().await;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let dropped = desk.sessions().expire(now);
        metrics::gauge!("axon_sessions").set(desk.sessions().len() as f64);
        if dropped > 0 {
            tracing::debug!(dropped, "expired miner sessions");
        }
    }
}
