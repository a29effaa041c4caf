//! `validator bench raft`: throughput and commit latency of the replicated ledger, and leader
//! failover time, on three real node processes on loopback with durable (fsync'd) logs.
//!
//! * Throughput/latency: N writer tasks run inside the leader (see `admin::load`) for a fixed
//!   time; each write is one `PutSetting` proposed, replicated to a quorum, fsync'd, committed
//!   and applied before the next starts.
//! * Failover: the leader is killed with SIGKILL; the time until a surviving node accepts a
//!   write (forwarded to the new leader, committed and applied) is one sample. The killed node
//!   restarts and catches up before the next kill.

use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::bail;
use serde::Serialize;

use super::machine;
use super::quantile;
use crate::admin::pb;
use crate::config::RaftProfile;
use crate::devnet::ClusterOptions;
use crate::devnet::LocalCluster;

#[derive(Debug, clap::Args)]
pub struct RaftBenchArgs {
    /// Writer counts to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub writers: Vec<u32>,
    /// Seconds per writer count.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Leader kills with the fast profile.
    #[arg(long, default_value_t = 30)]
    pub kills: u32,
    /// Leader kills with the production profile.
    #[arg(long, default_value_t = 10)]
    pub production_kills: u32,
    /// Bytes in each written value.
    #[arg(long, default_value_t = 64)]
    pub value_bytes: u32,
    /// Folder for the clusters (deleted first).
    #[arg(long, default_value = "bench-data")]
    pub data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Mean of node-side histograms over one load run, per node (diagnostics of where time goes).
#[derive(Debug, Serialize, Default)]
pub struct NodeBreakdown {
    pub node: String,
    /// Mean log-store transaction (append + fsync) time, ms.
    pub log_commit_ms: f64,
    /// Mean write ops per log transaction (group commit factor).
    pub ops_per_log_commit: f64,
    /// Mean apply-batch time, ms.
    pub apply_batch_ms: f64,
    /// Mean entries per apply batch.
    pub entries_per_apply: f64,
}

#[derive(Debug, Serialize)]
pub struct LoadResult {
    pub writers: u32,
    pub seconds: f64,
    pub writes: u64,
    pub errors: u64,
    pub commits_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub nodes: Vec<NodeBreakdown>,
}

#[derive(Debug, Serialize)]
pub struct FailoverResult {
    pub profile: String,
    pub kills: usize,
    pub samples_ms: Vec<f64>,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub load: Vec<LoadResult>,
    pub failover: Vec<FailoverResult>,
}

async fn start_cluster(root: &std::path::Path, profile: RaftProfile) -> anyhow::Result<LocalCluster> {
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    let binary = std::env::current_exe().context("locating the validator binary")?;
    let mut options = ClusterOptions::new(3, binary);
    options.profile = profile;
    options.log_level = "warn".into();
    let mut cluster = LocalCluster::prepare(root, &options)?;
    cluster.start_all()?;
    cluster.form(Duration::from_secs(30)).await?;
    Ok(cluster)
}

type Scraped = std::collections::HashMap<String, f64>;

/// `name_sum` and `name_count` of every unlabelled histogram in a node's /metrics.
async fn scrape(addr: std::net::SocketAddr) -> Scraped {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let mut out = Scraped::new();
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else { return out };
    if stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.is_err() {
        return out;
    }
    let mut body = String::new();
    if stream.read_to_string(&mut body).await.is_err() {
        return out;
    }
    for line in body.lines() {
        if line.starts_with('#') || line.contains('{') {
            continue;
        }
        if let Some((name, value)) = line.split_once(' ')
            && (name.ends_with("_sum") || name.ends_with("_count"))
            && let Ok(v) = value.trim().parse::<f64>()
        {
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// Mean of histogram `name` between two scrapes.
fn mean(after: &Scraped, before: &Scraped, name: &str) -> f64 {
    let get = |m: &Scraped, k: &str| m.get(k).copied().unwrap_or(0.0);
    let sum = get(after, &format!("{name}_sum")) - get(before, &format!("{name}_sum"));
    let count = get(after, &format!("{name}_count")) - get(before, &format!("{name}_count"));
    if count > 0.0 { sum / count } else { 0.0 }
}

async fn load(cluster: &LocalCluster, writers: u32, seconds: u32, value_bytes: u32) -> anyhow::Result<LoadResult> {
    let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
    let mut before = Vec::new();
    for node in &cluster.nodes {
        before.push(scrape(node.metrics_addr).await);
    }

    let mut client = cluster.client(leader).await?;
    let reply = client
        .run_load(pb::RunLoadRequest { writers, duration_ms: seconds * 1000, value_bytes })
        .await
        .context("running load on the leader")?
        .into_inner();
    let secs = reply.elapsed_us as f64 / 1e6;
    let mut nodes = Vec::new();
    for (node, before) in cluster.nodes.iter().zip(&before) {
        let after = scrape(node.metrics_addr).await;
        let role = if node.index == leader { " (leader)" } else { "" };
        nodes.push(NodeBreakdown {
            node: format!("{}{role}", node.name),
            log_commit_ms: mean(&after, before, "ledger_log_commit_seconds") * 1000.0,
            ops_per_log_commit: mean(&after, before, "ledger_log_commit_ops"),
            apply_batch_ms: mean(&after, before, "ledger_apply_batch_seconds") * 1000.0,
            entries_per_apply: mean(&after, before, "ledger_apply_batch_entries"),
        });
    }
    Ok(LoadResult {
        nodes,
        writers,
        seconds: secs,
        writes: reply.writes,
        errors: reply.errors,
        commits_per_sec: reply.writes as f64 / secs.max(1e-9),
        p50_ms: reply.p50_us as f64 / 1000.0,
        p90_ms: reply.p90_us as f64 / 1000.0,
        p99_ms: reply.p99_us as f64 / 1000.0,
        max_ms: reply.max_us as f64 / 1000.0,
    })
}

/// Waits until every node has applied what the leader committed.
async fn settle(cluster: &LocalCluster, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut statuses = Vec::new();
        for node in &cluster.nodes {
            statuses.push(cluster.status(node.index).await.ok());
        }
        let leader_commit = statuses.iter().flatten().find(|s| s.state == "leader").and_then(|s| s.committed);
        if leader_commit.is_some()
            && statuses.iter().all(|s| s.as_ref().is_some_and(|s| s.applied >= leader_commit && s.running == "running"))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the cluster did not settle within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the leader `kills` times and measures kill → first accepted write.
async fn failover(
    cluster: &mut LocalCluster,
    kills: u32,
    profile: &str,
    quiet: bool,
) -> anyhow::Result<FailoverResult> {
    let mut samples = Vec::new();
    for k in 0..kills {
        settle(cluster, Duration::from_secs(30)).await?;
        let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
        let survivors: Vec<usize> = cluster.nodes.iter().map(|n| n.index).filter(|i| *i != leader).collect();
        // Connect before the kill, so TLS setup is not part of the sample.
        let mut clients = Vec::new();
        for i in &survivors {
            clients.push(cluster.client(*i).await?);
        }
        // Let a few heartbeats pass so the kill lands at a random point of the cycle.
        tokio::time::sleep(Duration::from_millis(100 + (k as u64 * 37) % 200)).await;
        let killed_at = Instant::now();
        cluster.kill(leader)?;
        let mut accepted = None;
        let mut attempt = 0u64;
        while killed_at.elapsed() < Duration::from_secs(30) {
            attempt += 1;
            let n = clients.len();
            let client = &mut clients[(attempt as usize) % n];
            let reply = client
                .put_setting(pb::PutSettingRequest {
                    key: "bench/failover".into(),
                    value: format!("{k}-{attempt}"),
                    timeout_ms: 10_000,
                })
                .await;
            if reply.is_ok() {
                accepted = Some(killed_at.elapsed());
                break;
            }
        }
        let elapsed = accepted.with_context(|| format!("no write accepted within 30 s after kill {k}"))?;
        samples.push(elapsed.as_secs_f64() * 1000.0);
        if !quiet {
            eprintln!(
                "  {profile} kill {}/{}: node-{leader} killed, writes accepted after {:.0} ms",
                k + 1,
                kills,
                elapsed.as_secs_f64() * 1000.0
            );
        }
        cluster.start(leader)?;
        cluster.wait_ready(leader, Duration::from_secs(30)).await?;
    }
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(FailoverResult {
        profile: profile.into(),
        kills: samples.len(),
        median_ms: quantile(&sorted, 0.5),
        p99_ms: quantile(&sorted, 0.99),
        max_ms: sorted.last().copied().unwrap_or(0.0),
        samples_ms: samples,
    })
}

pub async fn run(args: RaftBenchArgs) -> anyhow::Result<()> {
    crate::daemon::init_logging("warn", false);
    let mut report = Report { machine: machine(), load: Vec::new(), failover: Vec::new() };
    let quiet = args.json;
    let say = |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };

    say(format!("bench raft: 3 nodes on loopback, SQLite with fsync, {}", report.machine));
    let mut cluster = start_cluster(&args.data_dir.join("fast"), RaftProfile::Fast).await?;
    // Warm up connections, caches and the first snapshot.
    load(&cluster, 8, 2, args.value_bytes).await?;
    for &writers in &args.writers {
        say(format!("  load: {writers} writers for {} s ...", args.seconds));
        let result = load(&cluster, writers, args.seconds, args.value_bytes).await?;
        say(format!(
            "  load: {writers} writers: {:.0} commits/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors",
            result.commits_per_sec, result.p50_ms, result.p99_ms, result.max_ms, result.errors
        ));
        for n in &result.nodes {
            say(format!(
                "    {}: log commit {:.3} ms for {:.1} ops, apply {:.3} ms for {:.1} entries",
                n.node, n.log_commit_ms, n.ops_per_log_commit, n.apply_batch_ms, n.entries_per_apply
            ));
        }
        report.load.push(result);
    }
    if args.kills > 0 {
        say(format!("  failover (fast profile: heartbeat 50 ms, election 150-300 ms): {} kills", args.kills));
        report.failover.push(failover(&mut cluster, args.kills, "fast", quiet).await?);
    }
    cluster.stop_all().await;
    drop(cluster);
    if args.production_kills > 0 {
        let mut cluster = start_cluster(&args.data_dir.join("production"), RaftProfile::Production).await?;
        say(format!(
            "  failover (production profile: heartbeat 100 ms, election 500-1000 ms): {} kills",
            args.production_kills
        ));
        report.failover.push(failover(&mut cluster, args.production_kills, "production", quiet).await?);
        cluster.stop_all().await;
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("machine: {}", report.machine);
        println!("| writers | commits/s | p50 ms | p90 ms | p99 ms | max ms | errors |");
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        for l in &report.load {
            println!(
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                l.writers, l.commits_per_sec, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.errors
            );
        }
        println!();
        println!("| profile | kills | median ms | p99 ms | max ms |");
        println!("|---|---:|---:|---:|---:|");
        for f in &report.failover {
            println!("| {} | {} | {:.0} | {:.0} | {:.0} |", f.profile, f.kills, f.median_ms, f.p99_ms, f.max_ms);
        }
    }
    Ok(())
}
