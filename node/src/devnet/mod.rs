//! `validator devnet`: a local cluster of real node processes, formed and watched.
//!
//! It is the first thing a newcomer runs: N nodes on loopback with SQLite ledgers under one
//! folder, a cluster CA, and a live table of who leads and how far each node has committed. A
//! small ticker proposes a setting every second through a different node each time, so the
//! table shows entries being forwarded, committed and applied. Later issues add the local chain
//! and simulated miners here.

pub mod cluster;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;

pub use self::cluster::ClusterOptions;
pub use self::cluster::LocalCluster;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::admin::pb;
use crate::axon::identity::Hotkey;
use crate::config::RaftProfile;
use crate::sim::dendrite::AxonTarget;
use crate::sim::miner::Behaviour;
use crate::sim::miner::SimMiner;
use crate::sim::miner::SimStats;

#[derive(Debug, clap::Args)]
pub struct DevnetArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub nodes: u16,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Where the nodes' folders go. An existing devnet there is restarted, not re-created.
    #[arg(long, default_value = "devnet-data")]
    pub data_dir: PathBuf,
    /// Delete the data folder first.
    #[arg(long)]
    pub fresh: bool,
    /// First port (transport base+i, admin base+100+i, metrics base+200+i); 0 picks free ports.
    #[arg(long, default_value_t = 17100)]
    pub base_port: u16,
    #[arg(long, value_enum, default_value = "fast")]
    pub profile: ProfileArg,
    /// Simulated miners talking to the nodes' axons (some cheat on purpose).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub miners: u16,
    /// Workers per simulated miner.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub workers: u16,
    /// Which challenges the leader issues: `cpu` (128×128 matrices) or `gpu` (64×64, computed on
    /// the CPU and signed with a devnet key).
    #[arg(long, value_enum, default_value = "cpu")]
    pub challenge: ChallengeArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ChallengeArg {
    Cpu,
    Gpu,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProfileArg {
    Fast,
    Production,
}

impl From<ProfileArg> for RaftProfile {
    fn from(p: ProfileArg) -> RaftProfile {
        match p {
            ProfileArg::Fast => RaftProfile::Fast,
            ProfileArg::Production => RaftProfile::Production,
        }
    }
}

pub async fn run(args: DevnetArgs) -> anyhow::Result<()> {
    crate::daemon::init_logging("warn", false);
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir).with_context(|| format!("removing {}", args.data_dir.display()))?;
    }
    let binary = std::env::current_exe().context("locating the validator binary")?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let gpu_key = devnet_gpu_key(&args.data_dir.join("gpu-commitment.key"))?;
    let mut options = ClusterOptions::new(args.nodes.into(), binary);
    options.profile = args.profile.into();
    options.config_extra = devnet_validation(args.challenge, &gpu_key);
    options.base_port = (args.base_port != 0).then_some(args.base_port);
    let mut cluster = LocalCluster::prepare(&args.data_dir, &options)?;
    println!("devnet: {} nodes under {}", cluster.nodes.len(), cluster.root.display());
    cluster.start_all()?;
    let leader = match cluster.form(Duration::from_secs(30)).await {
        Ok(leader) => leader,
        Err(e) => {
            cluster.stop_all().await;
            return Err(e.context("forming the devnet cluster (see node-*/node.log)"));
        }
    };
    println!("devnet: node-{leader} leads. Talk to it with:");
    println!("  validatorctl --tls-dir {} --addr {} status", cluster.ca_dir.display(), cluster.admin_addr(1));
    for node in &cluster.nodes {
        println!(
            "  node-{}: metrics http://{}/metrics, log {}",
            node.index,
            node.metrics_addr,
            node.log_path().display()
        );
    }

    let (stop_miners, miners_stop) = tokio::sync::watch::channel(false);
    let stats = start_miners(&cluster, &args, gpu_key, miners_stop).await?;

    let started = Instant::now();
    let until = args.duration.map(|s| started + Duration::from_secs(s));
    let tty = std::io::stdout().is_terminal();
    let stop = crate::daemon::shutdown_signal();
    tokio::pin!(stop);
    let mut tick: u64 = 0;
    let mut last_print = Instant::now() - Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        tick += 1;
        // Propose through a different node each second: followers forward to the leader.
        let via = (tick as usize % cluster.nodes.len()) + 1;
        if let Ok(mut client) = cluster.client(via).await {
            let _ = client
                .put_setting(pb::PutSettingRequest {
                    key: "devnet.tick".into(),
                    value: tick.to_string(),
                    timeout_ms: 900,
                })
                .await;
        }
        let mut rows = Vec::new();
        for node in &cluster.nodes {
            rows.push((node.index, cluster.status(node.index).await.ok()));
        }
        if tty || last_print.elapsed() >= Duration::from_secs(5) {
            if tty {
                print!("\x1b[2J\x1b[H");
            }
            println!("devnet: {} s, {} ticks proposed (Ctrl-C stops)", started.elapsed().as_secs(), tick);
            println!("{}", crate::ctl::status_table(&rows));
            if !stats.is_empty() {
                println!("{}", miners_line(&stats));
            }
            last_print = Instant::now();
        }
    }
    let _ = stop_miners.send(true);
    println!("devnet: stopping");
    cluster.stop_all().await;
    println!(
        "devnet: stopped; data kept in {} (run again to restart it, --fresh to start over)",
        cluster.root.display()
    );
    Ok(())
}

/// The devnet's P-256 key for simulated GPU commitments (the real one lives in the CUDA binary,
/// byteleap-protocol.md §3.3), created once in the data folder.
fn devnet_gpu_key(path: &std::path::Path) -> anyhow::Result<p256::ecdsa::SigningKey> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let bytes = hex::decode(text.trim()).context("devnet GPU key is not hex")?;
        return p256::ecdsa::SigningKey::from_slice(&bytes).context("devnet GPU key is not a P-256 secret");
    }
    let key = loop {
        let candidate: [u8; 32] = rand::random();
        if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&candidate) {
            break key;
        }
    };
    transport::pki::write(path, &hex::encode(key.to_bytes()), true)?;
    Ok(key)
}

/// Fast, small challenges so a laptop shows verdicts within a minute.
fn devnet_validation(challenge: ChallengeArg, gpu_key: &p256::ecdsa::SigningKey) -> String {
    let public = hex::encode(gpu_key.verifying_key().to_sec1_point(false).as_bytes());
    let kind = match challenge {
        ChallengeArg::Cpu => "cpu_matrix",
        ChallengeArg::Gpu => "gpu_matrix",
    };
    format!(
        r#"[validation]
challenge_interval = 15
challenge_timeout = 30
challenge_type = "{kind}"

[validation.cpu]
matrix_size = 128
size_variance = 0.1

[validation.gpu]
matrix_size = 64
size_variance = 0.1
model_allowlist = []
commitment_public_key = "{public}"
"#
    )
}

/// Replaces the replicated metagraph with `miners` (uids 0..) and the cluster's validator hotkey
/// (the last uid, with a permit, stake and the first node's axon).
pub async fn load_sim_metagraph(cluster: &LocalCluster, miners: &[&str]) -> anyhow::Result<()> {
    let mut neurons: Vec<pb::Neuron> = miners
        .iter()
        .enumerate()
        .map(|(uid, hotkey)| pb::Neuron {
            uid: uid as u32,
            hotkey: hotkey.to_string(),
            coldkey: String::new(),
            stake_rao: 0,
            validator_permit: false,
            axon: None,
        })
        .collect();
    neurons.push(pb::Neuron {
        uid: miners.len() as u32,
        hotkey: cluster.hotkey.clone(),
        coldkey: String::new(),
        stake_rao: 10_000_000_000_000,
        validator_permit: true,
        axon: Some(cluster.nodes[0].axon_addr.to_string()),
    });
    let mut client = cluster.client(1).await?;
    client.load_metagraph(pb::MetagraphRequest { netuid: 128, block: 0, neurons }).await?;
    Ok(())
}

/// Registers the simulated miners (and the validator) in the metagraph and starts them.
async fn start_miners(
    cluster: &LocalCluster,
    args: &DevnetArgs,
    gpu_key: p256::ecdsa::SigningKey,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<(Behaviour, Arc<SimStats>)>> {
    let keys: Vec<Hotkey> = (0..args.miners).map(|_| Hotkey::generate().0).collect();
    let hotkeys: Vec<&str> = keys.iter().map(|k| k.ss58.as_str()).collect();
    load_sim_metagraph(cluster, &hotkeys).await.context("loading the devnet metagraph")?;
    let gpus = match args.challenge {
        ChallengeArg::Cpu => 0,
        ChallengeArg::Gpu => 1,
    };
    let n = cluster.nodes.len();
    let mut stats = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        // Miner i starts on node i mod N and moves to the next one if that node dies.
        let axons = (0..n)
            .map(|k| AxonTarget { addr: cluster.nodes[(i + k) % n].axon_addr, hotkey: cluster.hotkey.clone() })
            .collect();
        let behaviour = Behaviour::for_index(i);
        let miner = SimMiner::new(key, axons, args.workers.into(), gpus, behaviour, Some(gpu_key.clone()));
        stats.push((behaviour, miner.stats.clone()));
        tokio::spawn(miner.run(Duration::from_secs(10), Duration::from_secs(5), stop.clone()));
    }
    Ok(stats)
}

fn miners_line(stats: &[(Behaviour, Arc<SimStats>)]) -> String {
    let sum = |f: fn(&SimStats) -> u64| stats.iter().map(|(_, s)| f(s)).sum::<u64>();
    let cheats = stats.iter().filter(|(b, _)| *b != Behaviour::Honest).count();
    format!(
        "miners: {} ({} cheating) | heartbeats {} | challenges {} | commitments {} | proofs {} | refused {} | sessions {} (+{} re-handshakes) | failovers {}",
        stats.len(),
        cheats,
        sum(|s| s.heartbeats.load(Ordering::Relaxed)),
        sum(|s| s.challenges.load(Ordering::Relaxed)),
        sum(|s| s.commitments.load(Ordering::Relaxed)),
        sum(|s| s.proofs.load(Ordering::Relaxed)),
        sum(|s| s.refused.load(Ordering::Relaxed)),
        sum(|s| s.handshakes.load(Ordering::Relaxed)),
        sum(|s| s.rehandshakes.load(Ordering::Relaxed)),
        sum(|s| s.failovers.load(Ordering::Relaxed)),
    )
}
