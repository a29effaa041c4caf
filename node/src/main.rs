//! `validator`: the ByteLeap HA validator daemon and its tools.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use clap::Subcommand;
use validator_node::config::Config;
use validator_node::config::RaftProfile;

#[derive(Parser)]
#[command(
    name = "validator",
    version,
    about = "ByteLeap HA validator (Bittensor subnet 128): several nodes, one hotkey"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start; the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Write a node's certificate and configuration (and the cluster CA, the first time).
    Init {
        /// The node's folder (validator.toml and tls/ go here; its ledger is created on first run).
        #[arg(long)]
        dir: PathBuf,
        /// The node's name, also the DNS name in its certificate.
        #[arg(long)]
        name: String,
        /// UDP address of the cluster transport.
        #[arg(long, default_value = "127.0.0.1:7101")]
        raft_addr: SocketAddr,
        /// TCP address of the admin service.
        #[arg(long, default_value = "127.0.0.1:7201")]
        admin_addr: SocketAddr,
        /// TCP address of Prometheus /metrics.
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
        /// The miner-facing axon port (original key `port`).
        #[arg(long, default_value_t = 9091)]
        axon_port: u16,
        /// Bittensor wallets folder holding the validator's hotkey.
        #[arg(long, default_value = "~/.bittensor/wallets")]
        wallet_path: PathBuf,
        #[arg(long, default_value = "validator")]
        wallet_name: String,
        #[arg(long, default_value = "default")]
        wallet_hotkey: String,
        /// Create the hotkey file if it does not exist (for a new validator or a devnet).
        #[arg(long)]
        generate_hotkey: bool,
        /// Host name or IP peers and operators dial, if not the listen IP.
        #[arg(long)]
        advertise_host: Option<String>,
        /// The cluster CA folder (created if missing). Default: cluster-ca next to --dir.
        #[arg(long)]
        ca_dir: Option<PathBuf>,
        #[arg(long, default_value = "byteleap-sn128")]
        cluster_name: String,
        /// sqlite://FILE (relative to the node's data folder) or postgres://...
        #[arg(long, default_value = "sqlite://ledger.db")]
        database_url: String,
        #[arg(long, value_enum, default_value = "production")]
        profile: Profile,
        /// Replace an existing validator.toml.
        #[arg(long)]
        force: bool,
    },
    /// Run a node.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start a local cluster of real node processes and show its status live.
    Devnet(validator_node::devnet::DevnetArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Recompute challenges by hand (JSON), to check workers against the original's numbers.
    #[command(subcommand)]
    Tools(validator_node::ctl::tools::ToolsCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Replicated-ledger throughput, commit latency and leader failover on a 3-node cluster.
    Raft(validator_node::bench::raft::RaftBenchArgs),
    /// Proof verification: per-core cost of one CPU and one GPU proof, and the fan-out speed-up
    /// of a batch of CPU verifications on 1 vs 3 nodes.
    Verify(validator_node::bench::verify::VerifyBenchArgs),
    /// The miner-facing axon under the traffic of a full subnet (simulated miners on a 3-node devnet).
    Axon(validator_node::bench::axon::AxonBenchArgs),
    /// One scoring pass over a full subnet (256 miners x 100 workers, 169 h of presence, 45
    /// challenges per worker): time on one core and memory.
    Scoring(validator_node::bench::scoring::ScoringBenchArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Profile {
    Fast,
    Production,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // The message chain, not a backtrace: this is for operators.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    validator_node::install_crypto();
    // `run` sizes its runtime from the config; everything else uses the default.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let mut loaded = None;
    if let Command::Run { config } = &cli.command {
        let config = Config::load(config)?;
        if config.node.worker_threads > 0 {
            builder.worker_threads(config.node.worker_threads);
        }
        loaded = Some(config);
    }
    let runtime = builder.enable_all().build().context("starting tokio")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Init {
                dir,
                name,
                raft_addr,
                admin_addr,
                metrics_addr,
                axon_port,
                wallet_path,
                wallet_name,
                wallet_hotkey,
                generate_hotkey,
                advertise_host,
                ca_dir,
                cluster_name,
                database_url,
                profile,
                force,
            } => {
                let ca_dir = ca_dir.unwrap_or_else(|| validator_node::init::default_ca_dir(&dir));
                let options = validator_node::init::InitOptions {
                    dir,
                    name,
                    raft_addr,
                    admin_addr,
                    metrics_addr,
                    axon_port,
                    wallet: validator_node::config::WalletSection {
                        path: wallet_path,
                        name: wallet_name,
                        hotkey: wallet_hotkey,
                    },
                    generate_hotkey,
                    advertise_host,
                    ca_dir: ca_dir.clone(),
                    cluster_name,
                    database_url,
                    profile: match profile {
                        Profile::Fast => RaftProfile::Fast,
                        Profile::Production => RaftProfile::Production,
                    },
                    force,
                };
                let report = validator_node::init::init(&options)?;
                if report.created_ca {
                    println!("created the cluster CA and an operator certificate in {}", ca_dir.display());
                }
                if let Some((ss58, file)) = &report.created_hotkey {
                    println!("created hotkey {ss58} in {}", file.display());
                }
                println!("wrote {}", report.config.display());
                println!("start it with: validator run --config {}", report.config.display());
                Ok(())
            }
            Command::Run { config } => {
                let config = match loaded {
                    Some(c) => c,
                    None => Config::load(&config)?,
                };
                validator_node::daemon::init_logging(&config.logging.log_level, config.logging.format == "json");
                validator_node::daemon::run(config).await
            }
            Command::Devnet(args) => validator_node::devnet::run(args).await,
            Command::Bench(BenchCommand::Raft(args)) => validator_node::bench::raft::run(args).await,
            Command::Bench(BenchCommand::Verify(args)) => validator_node::bench::verify::run(args).await,
            Command::Bench(BenchCommand::Axon(args)) => validator_node::bench::axon::run(args).await,
            Command::Bench(BenchCommand::Scoring(args)) => validator_node::bench::scoring::run(args).await,
            Command::Tools(command) => validator_node::ctl::tools::run(command),
        }
    })
}
