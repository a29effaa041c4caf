//! A cluster of real `validator` processes on loopback, for the devnet, the benchmarks and the
//! black-box tests.
//!
//! Each node gets its own folder under the cluster root (`node-1`, `node-2`, ...) with the
//! files `validator init` writes, a `node.log` with its output, and its ledger. Nodes are real
//! child processes, so killing one with SIGKILL is a real crash: no destructor runs, no buffer
//! is flushed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::bail;
use tonic::transport::Channel;

use crate::admin::client::CtlTls;
use crate::admin::client::connect;
use crate::admin::pb;
use crate::admin::pb::admin_client::AdminClient;
use crate::config::RaftProfile;
use crate::init::InitOptions;

/// How to lay out a local cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: usize,
    pub profile: RaftProfile,
    /// First port: node i uses base+i (transport), base+100+i (admin), base+200+i (metrics).
    /// `None` picks free ports.
    pub base_port: Option<u16>,
    /// Per-node database URL overrides (index → URL); others use SQLite in their folder.
    pub databases: BTreeMap<usize, String>,
    /// Extra lines appended to every node's `[raft]` section (tests tune snapshots with it).
    pub raft_extra: String,
    /// TOML appended to every node's config (whole sections, e.g. `[validation]`).
    pub config_extra: String,
    /// The `validator` binary to run.
    pub binary: PathBuf,
    pub log_level: String,
}

impl ClusterOptions {
    pub fn new(nodes: usize, binary: PathBuf) -> ClusterOptions {
        ClusterOptions {
            nodes,
            profile: RaftProfile::Fast,
            base_port: None,
            databases: BTreeMap::new(),
            raft_extra: String::new(),
            config_extra: String::new(),
            binary,
            log_level: "info,openraft=warn".into(),
        }
    }
}

/// One node of a local cluster.
pub struct LocalNode {
    pub index: usize,
    pub name: String,
    pub dir: PathBuf,
    pub raft_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The miner-facing axon.
    pub axon_addr: SocketAddr,
    child: Option<tokio::process::Child>,
}

impl LocalNode {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("validator.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }
}

/// A local cluster of node processes.
pub struct LocalCluster {
    pub root: PathBuf,
    pub ca_dir: PathBuf,
    pub tls: CtlTls,
    pub nodes: Vec<LocalNode>,
    binary: PathBuf,
    /// The validator hotkey every node serves.
    pub hotkey: String,
}

fn free_port() -> anyhow::Result<u16> {
    // A port free for both UDP (transport) and TCP (admin, metrics).
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port found")
}

impl LocalCluster {
    /// Creates the CA and the node folders under `root` (reusing what is already there).
    pub fn prepare(root: &Path, options: &ClusterOptions) -> anyhow::Result<LocalCluster> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let root = root.canonicalize()?;
        let ca_dir = root.join("ca");
        let mut nodes = Vec::with_capacity(options.nodes);
        for i in 1..=options.nodes {
            let dir = root.join(format!("node-{i}"));
            let name = format!("node-{i}");
            let config = dir.join("validator.toml");
            let (raft_addr, admin_addr, metrics_addr, axon_addr) = if config.exists() {
                let existing = crate::config::Config::load(&config)?;
                let metrics = existing.metrics.listen.context("existing devnet node has no metrics address")?;
                let axon = SocketAddr::from(([127, 0, 0, 1], existing.port));
                (existing.cluster.listen, existing.admin.listen, metrics, axon)
            } else {
                let ports = match options.base_port {
                    Some(base) => {
                        let b = base as usize;
                        let p = |off: usize| u16::try_from(b + off + i).context("port out of range");
                        (p(0)?, p(100)?, p(200)?, p(300)?)
                    }
                    None => (free_port()?, free_port()?, free_port()?, free_port()?),
                };
                let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
                let database_url = options.databases.get(&i).cloned().unwrap_or_else(|| "sqlite://ledger.db".into());
                crate::init::init(&InitOptions {
                    dir: dir.clone(),
                    name: name.clone(),
                    raft_addr: addr(ports.0),
                    admin_addr: addr(ports.1),
                    metrics_addr: Some(addr(ports.2)),
                    axon_port: ports.3,
                    // One validator hotkey for the whole cluster: that is the point.
                    wallet: crate::config::WalletSection {
                        path: root.join("wallets"),
                        name: "validator".into(),
                        hotkey: "default".into(),
                    },
                    generate_hotkey: true,
                    advertise_host: None,
                    ca_dir: ca_dir.clone(),
                    cluster_name: "devnet".into(),
                    database_url,
                    profile: options.profile,
                    force: false,
                })?;
                let mut text = std::fs::read_to_string(&config)?;
                text = text
                    .replace("log_level = \"info,openraft=warn\"", &format!("log_level = \"{}\"", options.log_level));
                // All nodes share this host: one async worker each (see node.worker_threads).
                text = text.replace("data_dir = \"data\"\n", "data_dir = \"data\"\nworker_threads = 1\n");
                if !options.raft_extra.is_empty() {
                    text = text.replace("[raft]\n", &format!("[raft]\n{}\n", options.raft_extra));
                }
                if !options.config_extra.is_empty() {
                    text.push('\n');
                    text.push_str(&options.config_extra);
                }
                // The axon listens on loopback only in a devnet.
                text = text.replace("[node]\n", "[axon]\nbind_ip = \"127.0.0.1\"\n\n[node]\n");
                std::fs::write(&config, &text)?;
                (addr(ports.0), addr(ports.1), addr(ports.2), addr(ports.3))
            };
            nodes.push(LocalNode { index: i, name, dir, raft_addr, admin_addr, metrics_addr, axon_addr, child: None });
        }
        let tls = CtlTls::from_dir(&ca_dir)?;
        let hotkey = crate::axon::identity::Hotkey::load(&root.join("wallets/validator/hotkeys/default"))?;
        Ok(LocalCluster { root, ca_dir, tls, nodes, binary: options.binary.clone(), hotkey: hotkey.ss58 })
    }

    fn node(&mut self, i: usize) -> anyhow::Result<&mut LocalNode> {
        self.nodes.iter_mut().find(|n| n.index == i).with_context(|| format!("no node {i}"))
    }

    /// Starts node `i` (1-based) as a child process.
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let binary = self.binary.clone();
        let node = self.node(i)?;
        if node.is_running() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(node.log_path())?;
        let child = tokio::process::Command::new(&binary)
            .arg("run")
            .arg("--config")
            .arg(node.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        node.child = Some(child);
        Ok(())
    }

    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 1..=self.nodes.len() {
            self.start(i)?;
        }
        Ok(())
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.node(i)?;
        if let Some(mut child) = node.child.take() {
            child.start_kill().ok();
            // Reap in the background so the process does not linger as a zombie.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Ok(())
    }

    /// SIGTERM and wait: a clean stop.
    pub async fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.node(i)?;
        if let Some(mut child) = node.child.take() {
            if let Some(pid) = child.id() {
                signal(pid, "TERM");
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                child.start_kill().ok();
                let _ = child.wait().await;
            }
        }
        Ok(())
    }

    /// Sends a signal by name (STOP/CONT for pause drills).
    pub fn signal(&mut self, i: usize, name: &str) -> anyhow::Result<()> {
        let node = self.node(i)?;
        let pid = node.pid().context("node is not running")?;
        signal(pid, name);
        Ok(())
    }

    /// Deletes node `i`'s data folder (ledger and snapshots). The node must be stopped.
    pub fn wipe(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.node(i)?;
        if node.is_running() {
            bail!("stop node {i} before wiping it");
        }
        let data = node.data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
        }
        Ok(())
    }

    pub async fn stop_all(&mut self) {
        for i in 1..=self.nodes.len() {
            let _ = self.stop(i).await;
        }
    }

    pub fn admin_addr(&self, i: usize) -> String {
        self.nodes.iter().find(|n| n.index == i).map(|n| n.admin_addr.to_string()).unwrap_or_default()
    }

    pub async fn client(&self, i: usize) -> anyhow::Result<AdminClient<Channel>> {
        connect(&self.admin_addr(i), &self.tls, Duration::from_secs(2)).await
    }

    pub async fn status(&self, i: usize) -> anyhow::Result<pb::StatusReply> {
        let mut client = self.client(i).await?;
        Ok(client.status(pb::Empty {}).await?.into_inner())
    }

    /// Waits until node `i` answers on its admin port.
    pub async fn wait_ready(&mut self, i: usize, timeout: Duration) -> anyhow::Result<pb::MemberSpec> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(mut client) = self.client(i).await
                && let Ok(info) = client.node_info(pb::Empty {}).await
            {
                return Ok(info.into_inner());
            }
            if !self.node(i)?.is_running() {
                let log = std::fs::read_to_string(self.node(i)?.log_path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                bail!("node {i} exited during start:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            if Instant::now() > deadline {
                bail!("node {i} did not answer within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forms the cluster from all nodes if no node is initialized yet; returns the leader.
    pub async fn form(&mut self, timeout: Duration) -> anyhow::Result<usize> {
        let mut specs = Vec::new();
        let mut initialized = false;
        for i in 1..=self.nodes.len() {
            specs.push(self.wait_ready(i, timeout).await?);
            initialized |= self.status(i).await?.initialized;
        }
        if !initialized {
            let mut client = self.client(1).await?;
            client.init_cluster(pb::InitClusterRequest { members: specs }).await.context("initializing the cluster")?;
        }
        self.wait_leader(timeout).await
    }

    /// The index of the node every reachable node agrees leads, waiting up to `timeout`.
    pub async fn wait_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader().await {
                return Ok(i);
            }
            if Instant::now() > deadline {
                bail!("no leader within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The leader's index, if a node reports itself leader.
    pub async fn leader(&self) -> Option<usize> {
        for node in &self.nodes {
            if let Ok(status) = self.status(node.index).await
                && status.state == "leader"
            {
                return Some(node.index);
            }
        }
        None
    }

    /// The node index whose Raft id is `id`.
    pub async fn index_of(&self, id: u64) -> Option<usize> {
        for node in &self.nodes {
            if let Ok(status) = self.status(node.index).await
                && status.id == id
            {
                return Some(node.index);
            }
        }
        None
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.start_kill();
            }
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
}
