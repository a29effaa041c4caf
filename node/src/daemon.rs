//! `validator run`: one node, until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use tonic::transport::Certificate;
use tonic::transport::Identity;
use tonic::transport::Server;
use tonic::transport::ServerTlsConfig;

use crate::admin::pb::admin_server::AdminServer;
use crate::admin::server::AdminService;
use crate::cluster::LedgerNode;
use crate::config::Config;

/// Sets up logging from the config (`RUST_LOG` overrides the level).
pub fn init_logging(level: &str, json: bool) {
    let filter = std::env::var("RUST_LOG").ok().unwrap_or_else(|| level.to_string());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Resolves when the process is asked to stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Runs a node with `config` until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    crate::install_crypto();
    if let Some(addr) = config.metrics.listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets(&[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .context("metrics buckets")?
            .install()
            .with_context(|| format!("serving metrics on {addr}"))?;
        crate::cluster::metrics::describe();
    }
    let hotkey = crate::axon::identity::Hotkey::load(&config.hotkey_file())
        .context("loading the validator hotkey (config keys wallet.path, wallet.name, wallet.hotkey)")?;
    tracing::info!(hotkey = %hotkey.ss58, "validator hotkey loaded");
    let node = LedgerNode::start(&config).await?;

    let tls = config.tls_dir();
    let read = |name: &str| {
        std::fs::read_to_string(tls.join(name)).with_context(|| format!("reading {}", tls.join(name).display()))
    };
    let tls_config = ServerTlsConfig::new()
        .identity(Identity::from_pem(read("node.crt")?, read("node.key")?))
        .client_ca_root(Certificate::from_pem(read("ca.crt")?));
    let admin_addr = config.admin.listen;
    let listener = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("binding the admin service on {admin_addr}"))?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    // Every member verifies proofs for its peers, whether or not it serves miners itself.
    let workers = usize::try_from(config.validation.verification_workers).unwrap_or(usize::MAX);
    let verifier = crate::proofs::fanout::Verifier::new(node.clone(), workers);
    node.register_service(crate::proofs::fanout::SERVICE, verifier.service());
    let dispatcher = crate::proofs::fanout::Dispatcher::new(node.clone(), verifier);
    let service = AdminServer::new(AdminService::new(node.clone(), dispatcher.clone(), config.validation.clone()))
        .max_decoding_message_size(4 << 20);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(
        Server::builder()
            .tls_config(tls_config)
            .context("admin TLS configuration")?
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            }),
    );
    tracing::info!(admin = %admin_addr, "admin service listening");

    tokio::spawn(crate::duties::challenges::run(node.clone(), config.validation.clone()));
    tokio::spawn(crate::duties::scoring::run(node.clone(), config.validation.clone()));

    let (axon_stop, axon_stopped) = tokio::sync::oneshot::channel::<()>();
    let axon = if config.axon.enabled {
        let addr = std::net::SocketAddr::new(config.axon.bind_ip, config.port);
        let limiter = crate::axon::limits::RateLimiter::new(
            config.security.rate_limit.window_seconds,
            config.security.rate_limit.max_requests,
        );
        let settings = crate::axon::miners::ProtocolSettings { validation: config.validation.clone() };
        let max_body = usize::try_from(config.axon.max_body_kib * 1024).unwrap_or(usize::MAX);
        let setup = crate::axon::AxonSetup { hotkey: hotkey.ss58.clone(), addr, max_body, limiter, settings };
        let handle = crate::axon::start(node.clone(), setup, dispatcher.clone(), async {
            let _ = axon_stopped.await;
        })
        .await
        .with_context(|| format!("binding the axon on {addr}"))?;
        Some(handle)
    } else {
        None
    };

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    let _ = axon_stop.send(());
    if let Some(axon) = axon {
        let _ = axon.await;
    }
    shutdown(node).await;
    let _ = admin.await;
    Ok(())
}

async fn shutdown(node: Arc<LedgerNode>) {
    node.shutdown().await;
    tracing::info!("stopped");
}
