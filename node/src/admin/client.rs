//! The admin client: TLS material, connecting, and following leader redirects.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::Certificate;
use tonic::transport::Channel;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Identity;

use super::LEADER_HEADER;
use super::pb::admin_client::AdminClient;

/// The CA to trust and the client certificate to present.
#[derive(Clone)]
pub struct CtlTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl CtlTls {
    /// Loads `ca.crt` and either `admin.crt`/`admin.key` (an operator's folder, as `validator
    /// init` writes next to the CA) or `node.crt`/`node.key` (a node's `tls` folder).
    pub fn from_dir(dir: &Path) -> anyhow::Result<CtlTls> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).with_context(|| format!("reading {}", dir.join(name).display()))
        };
        let ca_pem = read("ca.crt")?;
        let (cert, key) =
            if dir.join("admin.crt").exists() { ("admin.crt", "admin.key") } else { ("node.crt", "node.key") };
        Ok(CtlTls { ca_pem, cert_pem: read(cert)?, key_pem: read(key)? })
    }
}

/// The host part of `host:port` (brackets removed for IPv6).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Connects to the admin service at `addr`.
pub async fn connect(addr: &str, tls: &CtlTls, timeout: Duration) -> anyhow::Result<AdminClient<Channel>> {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .domain_name(host_of(addr));
    let channel = Channel::from_shared(format!("https://{addr}"))
        .with_context(|| format!("invalid admin address {addr:?}"))?
        .tls_config(config)
        .context("admin TLS configuration")?
        .connect_timeout(timeout)
        .timeout(Duration::from_secs(120))
        .connect()
        .await
        .with_context(|| format!("cannot reach the admin service at {addr}"))?;
    Ok(AdminClient::new(channel).max_decoding_message_size(64 << 20))
}

/// Calls `f` on the node at `addr`, following `x-leader-admin` redirects to the leader (at most
/// three hops).
pub async fn on_leader<T, F, Fut>(addr: &str, tls: &CtlTls, mut f: F) -> anyhow::Result<T>
where
    F: FnMut(AdminClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut target = addr.to_string();
    for _ in 0..4 {
        let client = connect(&target, tls, Duration::from_secs(5)).await?;
        match f(client).await {
            Ok(reply) => return Ok(reply.into_inner()),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                match status.metadata().get(LEADER_HEADER).and_then(|v| v.to_str().ok()) {
                    Some(leader) if leader != target => target = leader.to_string(),
                    _ => anyhow::bail!("{}", status.message()),
                }
            }
            Err(status) => anyhow::bail!("{} ({:?})", status.message(), status.code()),
        }
    }
    anyhow::bail!("too many leader redirects starting at {addr}")
}
