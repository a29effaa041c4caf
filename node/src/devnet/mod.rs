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
use crate::admin::pb;
use crate::config::RaftProfile;

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
    let mut options = ClusterOptions::new(args.nodes.into(), binary);
    options.profile = args.profile.into();
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
            last_print = Instant::now();
        }
    }
    println!("devnet: stopping");
    cluster.stop_all().await;
    println!(
        "devnet: stopped; data kept in {} (run again to restart it, --fresh to start over)",
        cluster.root.display()
    );
    Ok(())
}
