//! `validator bench verify`: what a proof costs to verify, and how the fan-out spreads it.
//!
//! * Per core: one CPU proof (n = 2000, 50 requested rows) and one GPU proof (n = 32768, 25
//!   coordinates and 2 full rows), verified on this thread, repeated. The proofs are honest
//!   ones built from the requested rows only ([`crate::proofs::synthetic`]); the verifier does
//!   exactly the work it does for a real worker's proof. `--full-product` also times the
//!   original validator's approach (the whole product, then the hashes) in Rust, for scale.
//! * Fan-out: the same batch of CPU verifications on a 1-node and on a 3-node cluster of real
//!   processes ([`crate::proofs::batch`]): issued as real challenges, dispatched at once by one
//!   member, verified wherever the dispatcher sends them, verdicts committed. Each member
//!   verifies `--workers-per-node` proofs at once (default 1, one core per member: each member
//!   of a real cluster is its own machine, and a single member here would otherwise use every
//!   core of this one machine). The speed-up is bounded by the cores of the machine running
//!   all three processes.

use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::bail;
use serde::Serialize;

use super::machine;
use super::quantile;
use crate::admin::pb;
use crate::challenge::ChallengeSeed;
use crate::config::RaftProfile;
use crate::devnet::ClusterOptions;
use crate::devnet::LocalCluster;
use crate::proofs::job::VerifyJob;
use crate::proofs::synthetic;

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyBenchArgs {
    /// CPU matrix size n (§3.2; the original's default is 2000).
    #[arg(long, default_value_t = 2000)]
    pub cpu_size: u64,
    /// Requested rows of the CPU proof (§3.6 default 50).
    #[arg(long, default_value_t = 50)]
    pub cpu_rows: u32,
    /// GPU matrix size n (§3.3).
    #[arg(long, default_value_t = 32768)]
    pub gpu_size: u64,
    /// Coordinates of the GPU proof (§3.6 default 25).
    #[arg(long, default_value_t = 25)]
    pub gpu_coords: u32,
    /// Full rows of the GPU proof (§3.6 default 2).
    #[arg(long, default_value_t = 2)]
    pub gpu_rows: u32,
    /// Verifications timed per proof.
    #[arg(long, default_value_t = 10)]
    pub repeat: u32,
    /// Also time the whole CPU product (what the original validator computes per proof).
    #[arg(long)]
    pub full_product: bool,
    /// CPU verifications in the fan-out batch (0 skips the fan-out).
    #[arg(long, default_value_t = 60)]
    pub batch: u32,
    /// Cluster sizes to run the batch on.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    pub nodes: Vec<usize>,
    /// Proofs each member verifies at once (`validation.verification_workers`; 0 = one per core).
    #[arg(long, default_value_t = 1)]
    pub workers_per_node: u32,
    /// Batches per cluster size (the median counts).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Folder for the clusters (deleted first).
    #[arg(long, default_value = "bench-data/verify")]
    pub data_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Timing {
    pub what: String,
    pub runs: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct FanoutRound {
    pub wall_ms: f64,
    pub mean_verification_ms: f64,
    pub verified: u32,
    pub per_member: Vec<(u64, u64)>,
}

#[derive(Debug, Serialize)]
pub struct FanoutResult {
    pub nodes: usize,
    pub jobs: u32,
    pub workers_per_node: u32,
    pub rounds: Vec<FanoutRound>,
    pub median_wall_ms: f64,
    pub verifications_per_sec: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub per_core: Vec<Timing>,
    pub fanout: Vec<FanoutResult>,
    /// Median 1-node batch time over median largest-cluster batch time.
    pub speedup: Option<f64>,
}

fn time_job(what: String, job: &VerifyJob, repeat: u32) -> anyhow::Result<Timing> {
    let mut samples = Vec::new();
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let verdict = job.run();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        if !verdict.success {
            bail!("{what}: the honest proof did not verify: {}", verdict.notes);
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(Timing {
        what,
        runs: samples.len(),
        min_ms: samples[0],
        p50_ms: quantile(&samples, 0.5),
        max_ms: samples[samples.len() - 1],
    })
}

/// `count` distinct indexes spread over `0..n`, offset so they are not all multiples of a
/// power of two.
fn spread(n: u64, count: u32, offset: u64) -> Vec<u64> {
    let count = u64::from(count).clamp(1, n);
    let mut rows: Vec<u64> = (0..count).map(|i| (i * n / count + offset) % n).collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

fn per_core(args: &VerifyBenchArgs, say: &dyn Fn(String)) -> anyhow::Result<Vec<Timing>> {
    let mut out = Vec::new();
    let seed: [u8; 16] = rand::random();

    say(format!("  CPU proof n = {}, {} rows: building the honest proof ...", args.cpu_size, args.cpu_rows));
    let rows = spread(args.cpu_size, args.cpu_rows, 7);
    let job = synthetic::cpu_job("bench-cpu", seed, args.cpu_size, 1, &rows).context("building the CPU proof")?;
    let timing = time_job(format!("CPU n={} rows={}", args.cpu_size, rows.len()), &job, args.repeat)?;
    say(format!("  {}: p50 {:.1} ms (min {:.1}, max {:.1})", timing.what, timing.p50_ms, timing.min_ms, timing.max_ms));
    out.push(timing);

    if args.full_product {
        say(format!("  the original's approach, the whole n = {} product, in Rust ...", args.cpu_size));
        let started = Instant::now();
        crate::challenge::cpu::cpu_all_row_hashes(&ChallengeSeed::from_bytes(seed), args.cpu_size, 1)
            .context("full product")?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        say(format!("  full product: {ms:.0} ms"));
        out.push(Timing {
            what: format!("CPU n={} full product", args.cpu_size),
            runs: 1,
            min_ms: ms,
            p50_ms: ms,
            max_ms: ms,
        });
    }

    say(format!(
        "  GPU proof n = {}, {} coordinates + {} rows: building the honest proof ...",
        args.gpu_size, args.gpu_coords, args.gpu_rows
    ));
    let coords: Vec<(u64, u64)> = spread(args.gpu_size, args.gpu_coords, 11)
        .into_iter()
        .zip(spread(args.gpu_size, args.gpu_coords, 4099).into_iter().rev())
        .collect();
    let rows = spread(args.gpu_size, args.gpu_rows, 3);
    let job = synthetic::gpu_job("bench-gpu", seed, "GPU-bench-0", args.gpu_size, 1, &coords, &rows)
        .context("building the GPU proof")?;
    let timing =
        time_job(format!("GPU n={} coords={} rows={}", args.gpu_size, coords.len(), rows.len()), &job, args.repeat)?;
    say(format!("  {}: p50 {:.1} ms (min {:.1}, max {:.1})", timing.what, timing.p50_ms, timing.min_ms, timing.max_ms));
    out.push(timing);
    Ok(out)
}

async fn fanout(args: &VerifyBenchArgs, nodes: usize, say: &dyn Fn(String)) -> anyhow::Result<FanoutResult> {
    let root = args.data_dir.join(format!("nodes-{nodes}"));
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    let binary = std::env::current_exe().context("locating the validator binary")?;
    let mut options = ClusterOptions::new(nodes, binary);
    options.profile = RaftProfile::Fast;
    options.log_level = "warn".into();
    options.config_extra = format!("[validation]\nverification_workers = {}\n", args.workers_per_node);
    let mut cluster = LocalCluster::prepare(&root, &options)?;
    cluster.start_all()?;
    let outcome = async {
        let leader = cluster.form(Duration::from_secs(30)).await?;
        let mut client = cluster.client(leader).await?;
        let request =
            pb::VerifyBatchRequest { jobs: args.batch, matrix_size: args.cpu_size, iterations: 1, rows: args.cpu_rows };
        // A small warm-up batch: connections, page cache, allocator.
        client
            .run_verify_batch(pb::VerifyBatchRequest { jobs: nodes as u32, ..request })
            .await
            .context("warm-up batch")?;
        let mut rounds = Vec::new();
        for round in 1..=args.rounds.max(1) {
            let reply = client.run_verify_batch(request).await.context("running the batch")?.into_inner();
            if reply.verified != args.batch {
                bail!(
                    "{} nodes: {} of {} proofs verified ({} failed, {} errors): {}",
                    nodes,
                    reply.verified,
                    args.batch,
                    reply.failed,
                    reply.errors,
                    reply.first_error
                );
            }
            let mut per_member: Vec<(u64, u64)> = reply.per_member.into_iter().collect();
            per_member.sort_unstable();
            say(format!(
                "  {nodes} node(s), round {round}: {} proofs in {:.0} ms ({:.1} ms each on its verifier; by member {:?})",
                args.batch, reply.wall_ms, reply.mean_verification_ms, per_member
            ));
            rounds.push(FanoutRound {
                wall_ms: reply.wall_ms,
                mean_verification_ms: reply.mean_verification_ms,
                verified: reply.verified,
                per_member,
            });
        }
        let mut walls: Vec<f64> = rounds.iter().map(|r| r.wall_ms).collect();
        walls.sort_by(f64::total_cmp);
        let median_wall_ms = quantile(&walls, 0.5);
        Ok(FanoutResult {
            nodes,
            jobs: args.batch,
            workers_per_node: args.workers_per_node,
            rounds,
            median_wall_ms,
            verifications_per_sec: f64::from(args.batch) / (median_wall_ms / 1000.0).max(1e-9),
        })
    }
    .await;
    cluster.stop_all().await;
    outcome
}

pub async fn run(args: VerifyBenchArgs) -> anyhow::Result<()> {
    crate::daemon::init_logging("warn", false);
    let quiet = args.json;
    let say = say_to_stderr(quiet);
    let mut report = Report { machine: machine(), per_core: Vec::new(), fanout: Vec::new(), speedup: None };
    say(format!("bench verify: {}", report.machine));
    say("per core (this thread):".into());
    let cpu_args = args.clone();
    report.per_core = tokio::task::spawn_blocking(move || per_core(&cpu_args, &say_to_stderr(quiet)))
        .await
        .context("per-core measurement")??;

    if args.batch > 0 {
        say(format!(
            "fan-out: {} CPU proofs (n = {}, {} rows), {} verification worker(s) per member:",
            args.batch, args.cpu_size, args.cpu_rows, args.workers_per_node
        ));
        for &nodes in &args.nodes {
            report.fanout.push(fanout(&args, nodes, &say).await?);
        }
        if let (Some(one), Some(most)) =
            (report.fanout.iter().find(|f| f.nodes == 1), report.fanout.iter().max_by_key(|f| f.nodes))
            && most.nodes > 1
        {
            let speedup = one.median_wall_ms / most.median_wall_ms;
            report.speedup = Some(speedup);
            say(format!(
                "fan-out speed-up, 1 → {} nodes: {:.2}× ({:.0} ms → {:.0} ms)",
                most.nodes, speedup, one.median_wall_ms, most.median_wall_ms
            ));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

fn say_to_stderr(quiet: bool) -> impl Fn(String) {
    move |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    }
}
