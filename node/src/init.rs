//! `validator init`: a node's certificate and configuration, and once per cluster the CA.
//!
//! The CA folder (`--ca-dir`) holds `ca.crt`, `ca.key` and an operator certificate
//! (`admin.crt`, `admin.key`) for validatorctl. It is created on the first `init` and reused by
//! the next ones; keep it off the nodes in production (only `ca.crt` goes to a node). The node
//! folder (`--dir`) gets `validator.toml` and `tls/{ca.crt,node.crt,node.key}`; its ledger is
//! created on first start.

use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;

use anyhow::Context;
use transport::pki::ClusterCa;
use transport::pki::write;

use crate::config::Config;
use crate::config::RaftProfile;

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub dir: PathBuf,
    pub name: String,
    pub raft_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    /// The miner-facing axon port (original key `port`).
    pub axon_port: u16,
    /// Where the validator's hotkey lives (`wallet.path`, `wallet.name`, `wallet.hotkey`).
    pub wallet: crate::config::WalletSection,
    /// Create a new hotkey file there if none exists (devnet, first setup).
    pub generate_hotkey: bool,
    /// Hosts peers and operators use when they differ from the listen addresses.
    pub advertise_host: Option<String>,
    pub ca_dir: PathBuf,
    pub cluster_name: String,
    pub database_url: String,
    pub profile: RaftProfile,
    pub force: bool,
}

/// What `init` wrote.
#[derive(Debug)]
pub struct InitReport {
    pub config: PathBuf,
    pub created_ca: bool,
}

pub fn init(options: &InitOptions) -> anyhow::Result<InitReport> {
    let config_path = options.dir.join("validator.toml");
    if config_path.exists() && !options.force {
        anyhow::bail!("{} exists; pass --force to replace it", config_path.display());
    }
    std::fs::create_dir_all(&options.dir).with_context(|| format!("creating {}", options.dir.display()))?;
    let (ca, created_ca) = if options.ca_dir.join("ca.crt").exists() {
        (ClusterCa::load(&options.ca_dir)?, false)
    } else {
        let ca = ClusterCa::generate(&options.cluster_name)?;
        ca.save(&options.ca_dir)?;
        let admin = ca.issue("operator", &[])?;
        write(&options.ca_dir.join("admin.crt"), &admin.cert_pem, false)?;
        write(&options.ca_dir.join("admin.key"), &admin.key_pem, true)?;
        (ca, true)
    };
    let mut alt_names = vec![options.raft_addr.ip().to_string(), options.admin_addr.ip().to_string()];
    if let Some(host) = &options.advertise_host {
        alt_names.push(host.clone());
    }
    if options.raft_addr.ip().is_unspecified() || options.admin_addr.ip().is_unspecified() {
        alt_names.push("127.0.0.1".into());
        alt_names.push("localhost".into());
    }
    let issued = ca.issue(&options.name, &alt_names)?;
    let tls = options.dir.join("tls");
    write(&tls.join("ca.crt"), &ca.cert_pem, false)?;
    write(&tls.join("node.crt"), &issued.cert_pem, false)?;
    write(&tls.join("node.key"), &issued.key_pem, true)?;

    let text = config_text(options);
    if options.generate_hotkey {
        let probe = Config::parse(&text, &options.dir, std::iter::empty(), "generated")
            .context("the generated configuration is invalid")?;
        let file = probe.hotkey_file();
        if !file.exists() {
            let (_, seed) = crate::axon::identity::Hotkey::generate();
            let hotkey = crate::axon::identity::Hotkey::write_file(&file, &seed)?;
            println!("created hotkey {} in {}", hotkey.ss58, file.display());
        }
    }
    // The file we write must load: catch a bad name or address here, not at first start.
    Config::parse(&text, &options.dir, std::iter::empty(), &config_path.display().to_string())
        .context("the generated configuration is invalid")?;
    write(&config_path, &text, false)?;
    Ok(InitReport { config: config_path, created_ca })
}

fn config_text(o: &InitOptions) -> String {
    let advertise = |addr: &SocketAddr| match &o.advertise_host {
        Some(host) => format!("\nadvertise = \"{host}:{}\"", addr.port()),
        None => String::new(),
    };
    let metrics = match o.metrics_addr {
        Some(addr) => format!("listen = \"{addr}\""),
        None => "# listen = \"127.0.0.1:9101\"".into(),
    };
    let profile = match o.profile {
        RaftProfile::Fast => "fast",
        RaftProfile::Production => "production",
    };
    format!(
        r#"# ByteLeap HA validator node. Every key is described in deploy/validator.example.toml.

# The miner-facing axon (original key).
port = {axon_port}

[wallet]
path = "{wallet_path}"
name = "{wallet_name}"
hotkey = "{wallet_hotkey}"

[node]
name = "{name}"
data_dir = "data"

[database]
# sqlite://FILE (relative to node.data_dir) or postgres://USER@HOST:PORT/DB
url = "{db}"

[cluster]
name = "{cluster}"
listen = "{raft}"{raft_adv}
tls_dir = "tls"

[admin]
listen = "{admin}"{admin_adv}

[metrics]
{metrics}

[raft]
# fast: heartbeat 50 ms, election 150-300 ms; production: heartbeat 100 ms, election 500-1000 ms
profile = "{profile}"

[logging]
log_level = "info,openraft=warn"
format = "text"
"#,
        name = o.name,
        db = o.database_url,
        cluster = o.cluster_name,
        raft = o.raft_addr,
        raft_adv = advertise(&o.raft_addr),
        admin = o.admin_addr,
        admin_adv = advertise(&o.admin_addr),
        axon_port = o.axon_port,
        wallet_path = o.wallet.path.display(),
        wallet_name = o.wallet.name,
        wallet_hotkey = o.wallet.hotkey,
    )
}

/// The default CA folder next to the node folder.
pub fn default_ca_dir(node_dir: &Path) -> PathBuf {
    node_dir.parent().map(|p| p.join("cluster-ca")).unwrap_or_else(|| PathBuf::from("cluster-ca"))
}
