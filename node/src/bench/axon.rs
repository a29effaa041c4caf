//! `validator bench axon`: the miner-facing axon under the traffic of a full subnet.
//!
//! Three real `validator` processes on loopback (one async worker thread each, as in every local
//! cluster) serve one validator hotkey. `--miners` simulated miners ([`SimMiner`], the real axon
//! protocol over HTTP: sr25519-signed requests, X25519/AES-GCM sessions) are registered in the
//! replicated metagraph and spread over the three axons (miner i → node i mod 3). Each one sends
//! a heartbeat listing all `--workers` workers every `--heartbeat-secs` and polls for challenges
//! every `--poll-secs`, opening its session with a handshake on its first request. The first
//! heartbeat and poll of the miners are spread evenly over the first period, so the load is
//! steady from the start instead of a thundering herd.
//!
//! The leader issues challenges at its default cadence (`challenge_interval`, 240 s) with
//! `challenge_type = "cpu_matrix"`, so polls hand out what was issued, as in production; the
//! miners do not compute them (the load generator shares the machine with the nodes), so the
//! handed-out challenges expire and the leader's sweep fails them, which is ledger load too.
//!
//! Every HTTP exchange is timed on the client, from handing the request to the HTTP client to
//! the complete response, per kind (handshake, heartbeat, poll, and polls that handed out
//! challenges) and per axon, with the SDK's default timeout of 12 s; failed and timed-out
//! exchanges count in the quantiles with the time they took. Phases, by send time:
//!
//! * warm-up: the first period (every miner's handshake and first heartbeat and poll);
//! * before the challenges: heartbeats and polls only, up to the steady window;
//! * steady: `--seconds`, placed by default so that it holds one issuing pass of the leader (it
//!   starts `min(poll, seconds/4)` before the pass), the polls that hand its challenges out and
//!   the sweep that expires them. `--no-align` starts it right after the first period.
//!
//! Server side, per node and phase: CPU seconds (from /proc, also by thread name), peak RSS, and
//! the node's own Prometheus histograms (request time per synapse, proposal latency, log commit
//! and apply times, apply lag, refusal counters); a timeline of 10-second slices puts client
//! latency next to the ledger's proposals, challenge events and CPU. Before the cluster starts,
//! two in-process probes split a heartbeat's server time: the axon's CPU steps (signature,
//! session crypto, JSON, model, command encoding) and the SQLite work (applying a heartbeat,
//! the sweep's read of a full cycle of challenges).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::bail;
use serde::Serialize;

use super::machine;
use super::quantile;
use crate::axon::identity::Hotkey;
use crate::config::RaftProfile;
use crate::devnet::ClusterOptions;
use crate::devnet::LocalCluster;
use crate::sim::dendrite::AxonTarget;
use crate::sim::miner::Behaviour;
use crate::sim::miner::Exchange;
use crate::sim::miner::ExchangeKind;
use crate::sim::miner::ExchangeOutcome;
use crate::sim::miner::LatencyLog;
use crate::sim::miner::SimMiner;
use crate::sim::miner::SimStats;

/// The issue's target for the steady state.
const TARGET_P99_MS: f64 = 50.0;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct AxonBenchArgs {
    /// Simulated miners (the subnet has 256 UIDs; the metagraph holds at most 4096 neurons, the
    /// validator included).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4095))]
    pub miners: u32,
    /// Workers announced in every heartbeat of every miner (at most 100, the protocol's limit).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub workers: u32,
    /// GPUs in each worker's inventory (0: CPU workers, matching the CPU challenges issued).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8))]
    pub gpus: u32,
    /// Seconds between two heartbeats of a miner.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_secs: u64,
    /// Seconds between two challenge polls of a miner.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_secs: u64,
    /// Length of the measured steady window, seconds.
    #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// The leader's `validation.challenge_interval` (production default 240).
    #[arg(long, default_value_t = 240, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    pub challenge_interval: u64,
    /// Client timeout of each request, seconds (the SDK dendrite's default is 12).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout_secs: u64,
    /// Start the steady window right after the first period instead of placing an issuing pass
    /// of the leader inside it.
    #[arg(long)]
    pub no_align: bool,
    /// Folder for the cluster (deleted first).
    #[arg(long, default_value = "bench-data/axon")]
    pub data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Client-side latencies of one kind of exchange within a phase.
#[derive(Debug, Serialize)]
pub struct KindStats {
    pub kind: String,
    /// Exchanges sent in the phase (each retry is its own exchange).
    pub requests: u64,
    pub requests_per_sec: f64,
    pub ok: u64,
    pub timeouts: u64,
    /// Failed otherwise (transport error, non-200, plaintext refusal, heartbeat not recorded).
    pub failed: u64,
    /// Quantiles over every exchange, failed ones included (with the time they took).
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct PhaseReport {
    /// Seconds from the miners' start to the phase's start.
    pub starts_at_s: f64,
    pub seconds: f64,
    /// Per kind, then `all`.
    pub kinds: Vec<KindStats>,
    /// All kinds, per node whose axon answered (`kind` holds the node's name).
    pub by_axon: Vec<KindStats>,
}

/// A server-side histogram over the steady window (bucket bounds, so quantiles are upper bounds).
#[derive(Debug, Serialize, Default)]
pub struct ServerHist {
    pub count: u64,
    pub mean_ms: f64,
    /// Upper bound of the bucket holding the quantile; `None` if above the largest bucket (10 s).
    pub p50_le_ms: Option<f64>,
    pub p99_le_ms: Option<f64>,
    /// Total seconds spent (sum of the samples).
    pub total_s: f64,
}

#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub leader: bool,
    pub running_at_end: bool,
    /// CPU seconds (user + system) of the process over the steady window.
    pub cpu_seconds: f64,
    /// The same as a share of one core.
    pub cpu_percent_of_core: f64,
    /// CPU seconds over the steady window by thread name (tokio workers, SQLite, blocking pool...).
    pub cpu_seconds_by_thread: BTreeMap<String, f64>,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub rss_peak_mib: f64,
    pub rss_end_mib: f64,
    /// Server-side handling time per synapse (`axon_request_seconds`; from routing to the answer,
    /// without HTTP parsing).
    pub axon: BTreeMap<String, ServerHist>,
    /// Proposals made by this node, from proposal to applied (`ledger_proposal_seconds`).
    pub proposals: ServerHist,
    /// Log store transactions (append + fsync).
    pub log_commits: ServerHist,
    /// State machine apply batches (SQLite).
    pub apply_batches: ServerHist,
    pub entries_per_apply: f64,
    pub entries_applied: u64,
    /// Largest `raft_apply_lag` seen in the steady window (entries committed, not yet applied).
    pub apply_lag_max: f64,
    pub challenges_issued: u64,
    pub challenges_expired: u64,
    pub sessions_opened: u64,
    /// Server-side refusals and failures in the window, by counter and label.
    pub refusals: BTreeMap<String, u64>,
    /// The same counters since the node started (covers the handshakes of the warm-up).
    pub refusals_since_start: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct MinersReport {
    pub handshakes: u64,
    pub rehandshakes: u64,
    pub failovers: u64,
    /// Challenges handed out by polls over the whole run (not worked on).
    pub challenges_received: u64,
    /// Why exchanges failed over the whole run (client side), with counts.
    pub failures: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct ClientReport {
    /// CPU seconds of the bench process (the simulated miners) over the steady window.
    pub cpu_seconds: f64,
    pub rss_peak_mib: f64,
    /// CPU seconds the whole machine was busy over the steady window (all cores, /proc/stat).
    pub machine_busy_seconds: f64,
    /// Of which neither the nodes nor this process: other work on the machine (noise).
    pub other_processes_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub miners: u32,
    pub workers: u32,
    pub gpus_per_worker: u32,
    pub heartbeat_secs: u64,
    pub poll_secs: u64,
    pub timeout_secs: u64,
    pub challenge_interval: u64,
    pub challenge_type: String,
    /// The offered load in the steady state.
    pub offered_requests_per_sec: f64,
    /// The first period: every miner's handshake and first heartbeat and poll.
    pub warmup: PhaseReport,
    /// From the end of the first period to the steady window (aligned runs): heartbeats and
    /// polls only, no challenge issued yet.
    pub before_challenges: Option<PhaseReport>,
    pub steady: PhaseReport,
    /// Seconds from the miners' start to each issuing pass that issued challenges.
    pub issuing_passes_at_s: Vec<f64>,
    pub challenges_issued: u64,
    pub target_p99_ms: f64,
    /// Steady p99 over all exchanges ≤ target and no timeouts.
    pub target_met: bool,
    pub miners_report: MinersReport,
    /// Server side over `before_challenges` (empty without it).
    pub before_challenges_nodes: Vec<NodeReport>,
    /// Server side over the steady window.
    pub nodes: Vec<NodeReport>,
    pub timeline: Vec<TimelinePoint>,
    /// The axon's CPU work for one heartbeat, step by step, in this process.
    pub heartbeat_cost: Option<HeartbeatCost>,
    /// The SQLite work of applying one heartbeat, in this process.
    pub heartbeat_apply: Option<ApplyCost>,
    pub client: ClientReport,
    pub notes: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Prometheus scraping.

#[derive(Debug, Clone)]
struct Series {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

#[derive(Debug, Clone, Default)]
struct Scrape {
    series: Vec<Series>,
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let Some(open) = after.find('"') else { break };
        let value_start = &after[open + 1..];
        let Some(close) = value_start.find('"') else { break };
        out.push((key, value_start[..close].to_string()));
        rest = &value_start[close + 1..];
    }
    out
}

fn parse_metrics(body: &str) -> Scrape {
    let mut series = Vec::new();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.rfind(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => continue,
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => match v.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        let (name, labels) = match key.find('{') {
            Some(i) => (&key[..i], parse_labels(key[i + 1..].trim_end_matches('}'))),
            None => (key, Vec::new()),
        };
        series.push(Series { name: name.to_string(), labels, value });
    }
    Scrape { series }
}

async fn scrape(addr: SocketAddr) -> Scrape {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await.ok()?;
        Some(body)
    };
    match tokio::time::timeout(Duration::from_secs(5), fetch).await {
        Ok(Some(body)) => parse_metrics(&body),
        _ => Scrape::default(),
    }
}

impl Scrape {
    fn matching<'a>(&'a self, name: &'a str, filter: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a Series> {
        self.series.iter().filter(move |s| {
            s.name == name && filter.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// Sum of the series `name` whose labels include `filter`.
    fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        // Not `sum()`: an empty f64 sum is -0.0.
        self.matching(name, filter).fold(0.0, |acc, s| acc + s.value)
    }

    /// Whether a series `name` exists at all.
    fn has(&self, name: &str) -> bool {
        self.series.iter().any(|s| s.name == name)
    }

    /// Values of `name` by the value of label `label`.
    fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.matching(name, &[]) {
            let key = s.labels.iter().find(|(k, _)| k == label).map(|(_, v)| v.clone()).unwrap_or_default();
            *out.entry(key).or_default() += s.value;
        }
        out
    }

    /// A histogram's count, sum and cumulative buckets.
    fn hist(&self, name: &str, filter: &[(&str, &str)]) -> Hist {
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.matching(&format!("{name}_bucket"), filter) {
            let le = s
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, v)| if v == "+Inf" { f64::INFINITY } else { v.parse().unwrap_or(f64::INFINITY) })
                .unwrap_or(f64::INFINITY);
            let entry = buckets.entry(le.to_bits()).or_insert((le, 0.0));
            entry.1 += s.value;
        }
        let mut buckets: Vec<(f64, f64)> = buckets.into_values().collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Hist {
            count: self.sum(&format!("{name}_count"), filter),
            sum: self.sum(&format!("{name}_sum"), filter),
            buckets,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Hist {
    count: f64,
    sum: f64,
    /// (upper bound, cumulative count), ascending.
    buckets: Vec<(f64, f64)>,
}

impl Hist {
    fn minus(&self, before: &Hist) -> Hist {
        let buckets = self
            .buckets
            .iter()
            .map(|(le, c)| {
                let b = before.buckets.iter().find(|(l, _)| l == le).map(|(_, c)| *c).unwrap_or(0.0);
                (*le, c - b)
            })
            .collect();
        Hist { count: self.count - before.count, sum: self.sum - before.sum, buckets }
    }

    fn quantile_le(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = (q * self.count).ceil().max(1.0);
        self.buckets.iter().find(|(_, c)| *c >= rank).map(|(le, _)| *le).filter(|le| le.is_finite())
    }

    fn report(&self) -> ServerHist {
        ServerHist {
            count: self.count.max(0.0) as u64,
            mean_ms: if self.count > 0.0 { self.sum / self.count * 1000.0 } else { 0.0 },
            p50_le_ms: self.quantile_le(0.5).map(|s| s * 1000.0),
            p99_le_ms: self.quantile_le(0.99).map(|s| s * 1000.0),
            total_s: self.sum,
        }
    }
}

fn hist_delta(after: &Scrape, before: &Scrape, name: &str, filter: &[(&str, &str)]) -> Hist {
    after.hist(name, filter).minus(&before.hist(name, filter))
}

// ---------------------------------------------------------------------------------------------
// /proc sampling.

#[derive(Debug, Clone, Default)]
struct ProcSnap {
    /// user + system, in clock ticks.
    ticks: u64,
    /// Ticks by thread name.
    threads: BTreeMap<String, u64>,
    rss_kib: u64,
    hwm_kib: u64,
}

/// `(comm, utime + stime)` from a /proc stat line.
fn stat_ticks(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // After the comm: state is field 3, utime 14 and stime 15 (1-based, see proc(5)).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Thread names lose their numbers ("tokio-runtime-w", "sqlx-sqlite-wor"...): group by name.
fn proc_snap(pid: &str) -> Option<ProcSnap> {
    let base = format!("/proc/{pid}");
    let (_, ticks) = stat_ticks(&std::fs::read_to_string(format!("{base}/stat")).ok()?)?;
    let mut threads = BTreeMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("{base}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("stat"))
                && let Some((comm, t)) = stat_ticks(&text)
            {
                *threads.entry(comm).or_default() += t;
            }
        }
    }
    let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
    Some(ProcSnap {
        ticks,
        threads,
        rss_kib: super::status_kib(&status, "VmRSS:"),
        hwm_kib: super::status_kib(&status, "VmHWM:"),
    })
}

fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Busy clock ticks of the whole machine (all cores) from /proc/stat: all but idle and iowait.
fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = fields.iter().take(8).sum();
    total.saturating_sub(fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0))
}

/// What the nodes and this process look like at one moment.
struct Snapshot {
    metrics: Vec<Scrape>,
    procs: Vec<Option<ProcSnap>>,
    client: Option<ProcSnap>,
    machine_busy: u64,
}

async fn snapshot(cluster: &LocalCluster, pids: &[Option<u32>]) -> Snapshot {
    let procs = pids.iter().map(|p| p.and_then(|p| proc_snap(&p.to_string()))).collect();
    let client = proc_snap("self");
    let machine_busy = machine_busy_ticks();
    let scrapes = cluster.nodes.iter().map(|n| scrape(n.metrics_addr));
    let metrics = futures::future::join_all(scrapes).await;
    Snapshot { metrics, procs, client, machine_busy }
}

// ---------------------------------------------------------------------------------------------
// Statistics of the client-side samples.

fn kind_stats(name: &str, exchanges: &[&Exchange], seconds: f64) -> KindStats {
    let mut ms: Vec<f64> = exchanges.iter().map(|e| e.seconds * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let count = |o: ExchangeOutcome| exchanges.iter().filter(|e| e.outcome == o).count() as u64;
    KindStats {
        kind: name.to_string(),
        requests: exchanges.len() as u64,
        requests_per_sec: exchanges.len() as f64 / seconds.max(1e-9),
        ok: count(ExchangeOutcome::Ok),
        timeouts: count(ExchangeOutcome::Timeout),
        failed: count(ExchangeOutcome::Failed),
        p50_ms: quantile(&ms, 0.5),
        p90_ms: quantile(&ms, 0.9),
        p99_ms: quantile(&ms, 0.99),
        max_ms: ms.last().copied().unwrap_or(0.0),
    }
}

fn phase_report(
    all: &[Exchange],
    axons: &[(SocketAddr, String)],
    origin: Instant,
    from: Instant,
    to: Instant,
) -> PhaseReport {
    let seconds = to.saturating_duration_since(from).as_secs_f64();
    let within: Vec<&Exchange> = all.iter().filter(|e| e.sent >= from && e.sent < to).collect();
    let mut kinds = Vec::new();
    for kind in ExchangeKind::ALL {
        let of: Vec<&Exchange> = within.iter().copied().filter(|e| e.kind == kind).collect();
        if !of.is_empty() || matches!(kind, ExchangeKind::Heartbeat | ExchangeKind::Poll) {
            // Empty handshake, hand-out, commitment and proof rows are left out.
            kinds.push(kind_stats(kind.name(), &of, seconds));
        }
    }
    kinds.push(kind_stats("all", &within, seconds));
    let by_axon = axons
        .iter()
        .map(|(addr, name)| {
            let of: Vec<&Exchange> = within.iter().copied().filter(|e| e.axon == *addr).collect();
            kind_stats(name, &of, seconds)
        })
        .collect();
    PhaseReport { starts_at_s: from.saturating_duration_since(origin).as_secs_f64(), seconds, kinds, by_axon }
}

fn p99_ms(exchanges: &[Exchange]) -> f64 {
    let mut ms: Vec<f64> = exchanges.iter().map(|e| e.seconds * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    quantile(&ms, 0.99)
}

// ---------------------------------------------------------------------------------------------

fn validation_toml(challenge_interval: u64) -> String {
    // Production values otherwise (challenge_timeout 60 s, CPU matrices of ~2000).
    format!("[validation]\nchallenge_interval = {challenge_interval}\nchallenge_type = \"cpu_matrix\"\n")
}

async fn start_cluster(args: &AxonBenchArgs) -> anyhow::Result<LocalCluster> {
    let root = &args.data_dir;
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    // The cluster's validator hotkey, made here: `validator init` would announce it on stdout,
    // which holds only the report (and the JSON with --json).
    let (_, seed) = Hotkey::generate();
    Hotkey::write_file(&root.join("wallets/validator/hotkeys/default"), &seed)?;
    let binary = std::env::current_exe().context("locating the validator binary")?;
    let mut options = ClusterOptions::new(3, binary);
    options.profile = RaftProfile::Fast;
    options.log_level = "warn".into();
    options.config_extra = validation_toml(args.challenge_interval);
    let mut cluster = LocalCluster::prepare(root, &options)?;
    cluster.start_all()?;
    if let Err(e) = cluster.form(Duration::from_secs(30)).await {
        cluster.stop_all().await;
        return Err(e.context(format!(
            "the 3-node cluster could not be formed (see {}/node-*/node.log)",
            cluster.root.display()
        )));
    }
    Ok(cluster)
}

/// Registers the miners (and the validator) in the metagraph and waits until every axon knows them.
async fn load_metagraph(cluster: &LocalCluster, keys: &[Hotkey]) -> anyhow::Result<()> {
    let hotkeys: Vec<&str> = keys.iter().map(|k| k.ss58.as_str()).collect();
    crate::devnet::load_sim_metagraph(cluster, &hotkeys).await.context("loading the bench metagraph")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = (keys.len() + 1) as f64;
    loop {
        let mut ready = 0;
        for node in &cluster.nodes {
            if scrape(node.metrics_addr).await.sum("axon_registered_hotkeys", &[]) >= want {
                ready += 1;
            }
        }
        if ready == cluster.nodes.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the metagraph did not reach every axon within 30 s ({ready} of {} nodes)", cluster.nodes.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the leader has made its first (empty) issuing pass, so the next one is a whole
/// interval later; returns when it was seen.
async fn first_issuing_pass(cluster: &LocalCluster, leader: usize) -> Option<Instant> {
    let addr = cluster.nodes.iter().find(|n| n.index == leader)?.metrics_addr;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if scrape(addr).await.has("challenges_issued_total") {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| ">10000".into())
}

pub async fn run(args: AxonBenchArgs) -> anyhow::Result<()> {
    crate::daemon::init_logging("warn", false);
    // Progress goes to stderr in both modes: stdout holds only the tables or the JSON.
    let say = |s: String| eprintln!("{s}");
    let m = args.miners as usize;
    let offered = m as f64 / args.heartbeat_secs as f64 + m as f64 / args.poll_secs as f64;
    say(format!(
        "bench axon: {m} miners × {} workers ({} GPUs each), heartbeat every {} s, poll every {} s, timeout {} s, \
         on 3 nodes; {}",
        args.workers,
        args.gpus,
        args.heartbeat_secs,
        args.poll_secs,
        args.timeout_secs,
        machine()
    ));
    say(format!("  offered load: {offered:.1} requests/s (+ one handshake per miner)"));
    let cost = heartbeat_cost(args.workers as usize, args.gpus as usize, 200)?;
    say(format!(
        "  server CPU for one heartbeat of {} workers, in-process: {:.0} µs before the ledger (see the report)",
        args.workers, cost.server_total_micros
    ));

    let apply = heartbeat_apply_cost(
        args.workers as usize,
        args.gpus as usize,
        m.min(256),
        &args.data_dir.with_extension("apply-probe"),
    )
    .await?;
    say(format!(
        "  SQLite apply of one heartbeat of {} workers, in-process: {:.2} ms (insert), {:.2} ms (update); \
         the leader's sweep over {} sent challenges: {:.2} ms with none overdue, {:.1} ms at expiry",
        args.workers, apply.insert_ms, apply.update_ms, apply.challenges, apply.sweep_idle_ms, apply.sweep_expiry_ms
    ));

    let mut cluster = start_cluster(&args).await?;
    let outcome = measure(&args, &mut cluster, &say).await;
    cluster.stop_all().await;
    let mut report = outcome?;
    report.heartbeat_cost = Some(cost);
    report.heartbeat_apply = Some(apply);

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Ledger numbers sampled every [`SAMPLE_EVERY`] during the run (for the timeline).
struct Sample {
    at: Instant,
    /// Per node: entries applied, proposals made, apply lag.
    applied: Vec<f64>,
    proposals: Vec<f64>,
    lag: Vec<f64>,
    /// The leader's issuing and expiry counters.
    issued: f64,
    expired: f64,
    /// CPU ticks per node process, and busy ticks of the whole machine.
    cpu_ticks: Vec<u64>,
    machine_busy: u64,
}

const SAMPLE_EVERY: Duration = Duration::from_secs(2);

async fn sample(cluster: &LocalCluster, leader: usize, pids: &[Option<u32>]) -> Sample {
    let cpu_ticks =
        pids.iter().map(|p| p.and_then(|p| proc_snap(&p.to_string())).map(|s| s.ticks).unwrap_or(0)).collect();
    let machine_busy = machine_busy_ticks();
    let scrapes = futures::future::join_all(cluster.nodes.iter().map(|n| scrape(n.metrics_addr))).await;
    let leader_scrape = cluster.nodes.iter().position(|n| n.index == leader).and_then(|i| scrapes.get(i));
    Sample {
        at: Instant::now(),
        applied: scrapes.iter().map(|s| s.sum("ledger_entries_applied_total", &[])).collect(),
        proposals: scrapes.iter().map(|s| s.sum("ledger_proposal_seconds_count", &[])).collect(),
        lag: scrapes.iter().map(|s| s.sum("raft_apply_lag", &[])).collect(),
        issued: leader_scrape.map(|s| s.sum("challenges_issued_total", &[])).unwrap_or(0.0),
        expired: leader_scrape.map(|s| s.sum("challenges_expired_total", &[])).unwrap_or(0.0),
        cpu_ticks,
        machine_busy,
    }
}

async fn measure(args: &AxonBenchArgs, cluster: &mut LocalCluster, say: &impl Fn(String)) -> anyhow::Result<Report> {
    let m = args.miners as usize;
    let heartbeat_every = Duration::from_secs(args.heartbeat_secs);
    let poll_every = Duration::from_secs(args.poll_secs);
    let period = heartbeat_every.max(poll_every);
    let timeout = Duration::from_secs(args.timeout_secs);
    let ticks_per_sec = clock_ticks_per_sec();
    let mut notes = Vec::new();

    let leader = cluster.wait_leader(Duration::from_secs(10)).await?;
    say(format!("  cluster formed under {}; node-{leader} leads", cluster.root.display()));
    let pass0 = match first_issuing_pass(cluster, leader).await {
        Some(t) => t,
        None => {
            notes.push("the leader's first issuing pass was not seen; issuing times are estimates".into());
            Instant::now()
        }
    };
    let keys: Vec<Hotkey> = (0..m).map(|_| Hotkey::generate().0).collect();
    load_metagraph(cluster, &keys).await?;
    let pids: Vec<Option<u32>> = cluster.nodes.iter().map(|n| n.pid()).collect();

    // The miners.
    let log = Arc::new(LatencyLog::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let n = cluster.nodes.len();
    let mut stats: Vec<Arc<SimStats>> = Vec::with_capacity(m);
    let mut handles = Vec::with_capacity(m);
    let origin = Instant::now();
    for (i, key) in keys.into_iter().enumerate() {
        // Miner i talks to node i mod N and moves to the next one if that node stops answering.
        let axons = (0..n)
            .map(|k| AxonTarget { addr: cluster.nodes[(i + k) % n].axon_addr, hotkey: cluster.hotkey.clone() })
            .collect();
        // Evenly spread over the period; polls half a slot after heartbeats so one miner's two
        // timers never fire together.
        let heartbeat_phase = heartbeat_every.mul_f64(i as f64 / m as f64);
        let poll_phase = poll_every.mul_f64((i as f64 + 0.5) / m as f64);
        let miner = SimMiner::new(key, axons, args.workers as usize, args.gpus as usize, Behaviour::Honest, None)
            .measure_only()
            .with_timeout(timeout)
            .with_latency_log(log.clone())
            .with_phase(heartbeat_phase, poll_phase);
        stats.push(miner.stats.clone());
        handles.push(tokio::spawn(miner.run(heartbeat_every, poll_every, stop_rx.clone())));
    }

    // The steady window: after the first period, and (unless --no-align) starting `lead` before
    // an issuing pass of the leader, so it holds the pass, the polls that hand its challenges
    // out and the sweep that expires them.
    let interval = Duration::from_secs(args.challenge_interval);
    let warm_end = origin + period;
    let window = Duration::from_secs(args.seconds);
    let steady_start = if args.no_align {
        warm_end
    } else {
        let lead = poll_every.min(window / 4);
        let mut k = 1u32;
        while pass0 + interval * k < warm_end + lead {
            k += 1;
        }
        pass0 + interval * k - lead
    };
    let steady_end = steady_start + window;
    say(format!(
        "  {m} miners started; warm-up {:.0} s (handshakes, first rounds{}), then {} s measured",
        steady_start.saturating_duration_since(origin).as_secs_f64(),
        if args.no_align { "" } else { ", up to shortly before the leader's next issuing pass" },
        args.seconds
    ));

    let mut warm_snap: Option<Snapshot> = None;
    let mut start_snap: Option<Snapshot> = None;
    let mut next_progress = origin + PROGRESS_EVERY;
    let mut next_sample = origin;
    let mut samples: Vec<Sample> = Vec::new();
    let mut seen = 0usize;
    let mut deaths: Vec<String> = Vec::new();
    loop {
        let now = Instant::now();
        if warm_snap.is_none() && now >= warm_end && warm_end < steady_start {
            warm_snap = Some(snapshot(cluster, &pids).await);
        }
        if start_snap.is_none() && now >= steady_start {
            start_snap = Some(snapshot(cluster, &pids).await);
        }
        if now >= steady_end {
            break;
        }
        if now >= next_sample {
            next_sample += SAMPLE_EVERY;
            samples.push(sample(cluster, leader, &pids).await);
        }
        if now >= next_progress {
            next_progress += PROGRESS_EVERY;
            let (recent, total) = log.exchanges_since(seen);
            seen = total;
            for node in cluster.nodes.iter_mut() {
                if !node.is_running() && !deaths.contains(&node.name) {
                    deaths.push(node.name.clone());
                    say(format!("  {} exited during the run (see {})", node.name, node.log_path().display()));
                }
            }
            let all = log.exchanges();
            let steady: Vec<Exchange> = all.iter().filter(|e| e.sent >= steady_start).copied().collect();
            let timeouts = all.iter().filter(|e| e.outcome == ExchangeOutcome::Timeout).count();
            let failed = all.iter().filter(|e| e.outcome == ExchangeOutcome::Failed).count();
            let received: u64 = stats.iter().map(|s| s.challenges.load(Ordering::Relaxed)).sum();
            let (issued, expired) = samples.last().map(|s| (s.issued, s.expired)).unwrap_or_default();
            let phase = if start_snap.is_some() { "steady " } else { "warm-up" };
            say(format!(
                "  [{:>4.0} s] {phase} | {total} requests, last 10 s: {} (p99 {:.1} ms) | steady p99 {} | timeouts {timeouts}, \
                 failed {failed} | challenges issued {issued:.0}, handed out {received}, expired {expired:.0}",
                now.saturating_duration_since(origin).as_secs_f64(),
                recent.len(),
                p99_ms(&recent),
                if steady.is_empty() { "-".to_string() } else { format!("{:.1} ms", p99_ms(&steady)) },
            ));
        }
        let mut wake = next_progress.min(next_sample).min(if start_snap.is_none() { steady_start } else { steady_end });
        if warm_snap.is_none() && warm_end < steady_start {
            wake = wake.min(warm_end);
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
    }
    let end_snap = snapshot(cluster, &pids).await;
    samples.push(sample(cluster, leader, &pids).await);
    let start_snap = match start_snap {
        Some(s) => s,
        None => snapshot(cluster, &pids).await,
    };

    // Stop the miners; requests in flight finish (at most one timeout).
    let _ = stop_tx.send(true);
    let wait_all = futures::future::join_all(handles);
    if tokio::time::timeout(timeout + Duration::from_secs(5), wait_all).await.is_err() {
        notes.push("some miners were still busy after the window plus one timeout".into());
    }
    let exchanges = log.exchanges();

    // Client-side phases.
    let axons: Vec<(SocketAddr, String)> = cluster
        .nodes
        .iter()
        .map(|n| {
            let role = if n.index == leader { " (leader)" } else { "" };
            (n.axon_addr, format!("{}{role}", n.name))
        })
        .collect();
    let warm_to = warm_end.min(steady_start);
    let warmup = phase_report(&exchanges, &axons, origin, origin, warm_to);
    let before_challenges =
        (warm_to < steady_start).then(|| phase_report(&exchanges, &axons, origin, warm_to, steady_start));
    let steady = phase_report(&exchanges, &axons, origin, steady_start, steady_end);
    let all_steady = steady.kinds.last().map(|k| (k.p99_ms, k.timeouts)).unwrap_or((0.0, 0));
    let target_met = all_steady.0 <= TARGET_P99_MS && all_steady.1 == 0 && steady.kinds.iter().any(|k| k.requests > 0);

    // Server side.
    let leader_end = cluster.leader().await;
    let lag_in = |from: Instant, to: Instant| -> Vec<f64> {
        (0..n)
            .map(|i| {
                samples
                    .iter()
                    .filter(|s| s.at >= from && s.at <= to)
                    .filter_map(|s| s.lag.get(i).copied())
                    .fold(0.0, f64::max)
            })
            .collect()
    };
    let before_challenges_nodes = match &warm_snap {
        Some(warm_snap) => node_reports(
            cluster,
            warm_snap,
            &start_snap,
            steady_start.saturating_duration_since(warm_to).as_secs_f64(),
            &lag_in(warm_to, steady_start),
            leader_end,
            ticks_per_sec,
        ),
        None => Vec::new(),
    };
    let nodes = node_reports(
        cluster,
        &start_snap,
        &end_snap,
        window.as_secs_f64(),
        &lag_in(steady_start, steady_end + SAMPLE_EVERY),
        leader_end,
        ticks_per_sec,
    );
    if leader_end != Some(leader) {
        notes.push(format!("leadership moved during the run: node-{leader} at the start, {leader_end:?} at the end"));
    }
    for name in deaths {
        notes.push(format!("{name} exited during the run"));
    }
    let client_cpu = match (&start_snap.client, &end_snap.client) {
        (Some(a), Some(b)) => b.ticks.saturating_sub(a.ticks) as f64 / ticks_per_sec,
        _ => 0.0,
    };
    let window_s = window.as_secs_f64();
    let machine_busy = end_snap.machine_busy.saturating_sub(start_snap.machine_busy) as f64 / ticks_per_sec;
    let nodes_cpu: f64 = nodes.iter().map(|n| n.cpu_seconds).sum();
    let other = (machine_busy - nodes_cpu - client_cpu).max(0.0);
    if other > 0.1 * window_s {
        notes.push(format!(
            "other processes used {other:.0} CPU s ({:.0} % of a core) during the steady window: the machine was not quiet",
            other / window_s * 100.0
        ));
    }
    let span = Span { origin, steady_start, end: steady_end };
    let timeline = timeline(&exchanges, &samples, span, leader_end.unwrap_or(leader), cluster, ticks_per_sec);
    let mut issuing_passes_at_s = Vec::new();
    for pair in samples.windows(2) {
        if pair[1].issued > pair[0].issued {
            issuing_passes_at_s.push(pair[1].at.saturating_duration_since(origin).as_secs_f64());
        }
    }
    let challenges_issued = samples.last().map(|s| s.issued).unwrap_or(0.0).max(0.0) as u64;
    if !args.no_align && challenges_issued == 0 {
        notes.push("no challenges were issued during the run".into());
    }
    let sum = |f: fn(&SimStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    Ok(Report {
        machine: machine(),
        miners: args.miners,
        workers: args.workers,
        gpus_per_worker: args.gpus,
        heartbeat_secs: args.heartbeat_secs,
        poll_secs: args.poll_secs,
        timeout_secs: args.timeout_secs,
        challenge_interval: args.challenge_interval,
        challenge_type: "cpu_matrix".into(),
        offered_requests_per_sec: m as f64 / args.heartbeat_secs as f64 + m as f64 / args.poll_secs as f64,
        warmup,
        before_challenges,
        steady,
        issuing_passes_at_s,
        challenges_issued,
        target_p99_ms: TARGET_P99_MS,
        target_met,
        miners_report: MinersReport {
            handshakes: sum(|s| s.handshakes.load(Ordering::Relaxed)),
            rehandshakes: sum(|s| s.rehandshakes.load(Ordering::Relaxed)),
            failovers: sum(|s| s.failovers.load(Ordering::Relaxed)),
            challenges_received: sum(|s| s.challenges.load(Ordering::Relaxed)),
            failures: log.failures(),
        },
        before_challenges_nodes,
        nodes,
        timeline,
        heartbeat_cost: None,
        heartbeat_apply: None,
        client: ClientReport {
            cpu_seconds: client_cpu,
            rss_peak_mib: end_snap.client.as_ref().map(|p| mib(p.hwm_kib)).unwrap_or(0.0),
            machine_busy_seconds: machine_busy,
            other_processes_seconds: other,
        },
        notes,
    })
}

/// Each node's numbers between two snapshots.
fn node_reports(
    cluster: &mut LocalCluster,
    before_snap: &Snapshot,
    after_snap: &Snapshot,
    seconds: f64,
    lag_max: &[f64],
    leader: Option<usize>,
    ticks_per_sec: f64,
) -> Vec<NodeReport> {
    let mut nodes = Vec::new();
    let empty = Scrape::default();
    for (i, node) in cluster.nodes.iter_mut().enumerate() {
        let before = before_snap.metrics.get(i).unwrap_or(&empty);
        let after = after_snap.metrics.get(i).unwrap_or(&empty);
        let counter = |name: &str| (after.sum(name, &[]) - before.sum(name, &[])).max(0.0) as u64;
        let mut axon = BTreeMap::new();
        for synapse in
            ["SessionInitSynapse", "HeartbeatSynapse", "TaskSynapse", "ChallengeSynapse", "ChallengeProofSynapse"]
        {
            let h = hist_delta(after, before, "axon_request_seconds", &[("synapse", synapse)]);
            if h.count > 0.0 {
                axon.insert(synapse.to_string(), h.report());
            }
        }
        let mut refusals = BTreeMap::new();
        let mut refusals_since_start = BTreeMap::new();
        for (name, label) in [
            ("axon_requests_refused_total", "status"),
            ("axon_session_errors_total", "code"),
            ("ledger_proposals_failed_total", "reason"),
            ("axon_rate_limited_total", ""),
            ("axon_heartbeat_workers_dropped_total", ""),
        ] {
            let a = after.by_label(name, label);
            let b = before.by_label(name, label);
            for (value, count) in a {
                let key = if label.is_empty() { name.to_string() } else { format!("{name}{{{label}=\"{value}\"}}") };
                let delta = count - b.get(&value).copied().unwrap_or(0.0);
                if delta > 0.0 {
                    refusals.insert(key.clone(), delta as u64);
                }
                if count > 0.0 {
                    refusals_since_start.insert(key, count as u64);
                }
            }
        }
        let apply = hist_delta(after, before, "ledger_apply_batch_seconds", &[]);
        let entries = hist_delta(after, before, "ledger_apply_batch_entries", &[]);
        let (p0, p1) = (before_snap.procs.get(i).cloned().flatten(), after_snap.procs.get(i).cloned().flatten());
        let (cpu_seconds, threads) = match (&p0, &p1) {
            (Some(a), Some(b)) => {
                let mut threads = BTreeMap::new();
                for (name, t) in &b.threads {
                    let before = a.threads.get(name).copied().unwrap_or(0);
                    let secs = t.saturating_sub(before) as f64 / ticks_per_sec;
                    if secs >= 0.01 {
                        threads.insert(name.clone(), secs);
                    }
                }
                (b.ticks.saturating_sub(a.ticks) as f64 / ticks_per_sec, threads)
            }
            _ => (0.0, BTreeMap::new()),
        };
        nodes.push(NodeReport {
            node: node.name.clone(),
            leader: leader == Some(node.index),
            running_at_end: node.is_running(),
            cpu_seconds,
            cpu_percent_of_core: cpu_seconds / seconds.max(1e-9) * 100.0,
            cpu_seconds_by_thread: threads,
            rss_peak_mib: p1.as_ref().map(|p| mib(p.hwm_kib)).unwrap_or(0.0),
            rss_end_mib: p1.as_ref().map(|p| mib(p.rss_kib)).unwrap_or(0.0),
            axon,
            proposals: hist_delta(after, before, "ledger_proposal_seconds", &[]).report(),
            log_commits: hist_delta(after, before, "ledger_log_commit_seconds", &[]).report(),
            apply_batches: apply.report(),
            entries_per_apply: if entries.count > 0.0 { entries.sum / entries.count } else { 0.0 },
            entries_applied: counter("ledger_entries_applied_total"),
            apply_lag_max: lag_max.get(i).copied().unwrap_or(0.0),
            challenges_issued: counter("challenges_issued_total"),
            challenges_expired: counter("challenges_expired_total"),
            sessions_opened: counter("axon_sessions_opened_total"),
            refusals,
            refusals_since_start,
        });
    }
    nodes
}

/// One 10-second slice of the run.
#[derive(Debug, Serialize)]
pub struct TimelinePoint {
    /// Seconds from the miners' start to the end of the slice.
    pub until_s: f64,
    pub steady: bool,
    /// Exchanges sent in the slice and their latency.
    pub requests: u64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub timeouts: u64,
    /// Ledger entries the leader applied in the slice.
    pub leader_entries_applied: u64,
    /// Proposals made by all nodes in the slice (heartbeats, challenge transitions...).
    pub proposals: u64,
    pub apply_lag_max: f64,
    pub challenges_issued: u64,
    pub challenges_expired: u64,
    /// CPU of the leader's process, of all three nodes, and of the whole machine (all
    /// processes, all cores) over the slice, in % of one core.
    pub leader_cpu_percent: f64,
    pub nodes_cpu_percent: f64,
    pub machine_cpu_percent: f64,
}

struct Span {
    origin: Instant,
    steady_start: Instant,
    end: Instant,
}

fn timeline(
    exchanges: &[Exchange],
    samples: &[Sample],
    span: Span,
    leader: usize,
    cluster: &LocalCluster,
    ticks_per_sec: f64,
) -> Vec<TimelinePoint> {
    let Span { origin, steady_start, end } = span;
    let li = cluster.nodes.iter().position(|n| n.index == leader).unwrap_or(0);
    // The last sample at or before `t`.
    let at = |t: Instant| samples.iter().rev().find(|s| s.at <= t + Duration::from_millis(500));
    // Slice boundaries: every 10 s, with one at the start of the steady window.
    let mut bounds = vec![steady_start];
    while let Some(b) = bounds.last().and_then(|b| b.checked_sub(PROGRESS_EVERY)).filter(|b| *b > origin) {
        bounds.push(b);
    }
    bounds.push(origin);
    bounds.reverse();
    let mut b = steady_start + PROGRESS_EVERY;
    while b < end {
        bounds.push(b);
        b += PROGRESS_EVERY;
    }
    bounds.push(end);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        if to <= from {
            continue;
        }
        let slice: Vec<Exchange> = exchanges.iter().filter(|e| e.sent >= from && e.sent < to).copied().collect();
        let (a, b) = (at(from), at(to));
        // % of one core between the samples bounding the slice.
        let cpu = |f: &dyn Fn(&Sample) -> u64| match (a, b) {
            (Some(a), Some(b)) if b.at > a.at => {
                f(b).saturating_sub(f(a)) as f64 / ticks_per_sec / (b.at - a.at).as_secs_f64() * 100.0
            }
            _ => 0.0,
        };
        let delta = |f: &dyn Fn(&Sample) -> f64| match (a, b) {
            (Some(a), Some(b)) => (f(b) - f(a)).max(0.0) as u64,
            (None, Some(b)) => f(b).max(0.0) as u64,
            _ => 0,
        };
        out.push(TimelinePoint {
            until_s: to.saturating_duration_since(origin).as_secs_f64(),
            steady: from >= steady_start,
            requests: slice.len() as u64,
            p99_ms: p99_ms(&slice),
            max_ms: slice.iter().map(|e| e.seconds * 1000.0).fold(0.0, f64::max),
            timeouts: slice.iter().filter(|e| e.outcome == ExchangeOutcome::Timeout).count() as u64,
            leader_entries_applied: delta(&|s| s.applied.get(li).copied().unwrap_or(0.0)),
            proposals: delta(&|s| s.proposals.iter().sum()),
            apply_lag_max: samples
                .iter()
                .filter(|s| s.at > from && s.at <= to)
                .flat_map(|s| s.lag.iter().copied())
                .fold(0.0, f64::max),
            challenges_issued: delta(&|s| s.issued),
            challenges_expired: delta(&|s| s.expired),
            leader_cpu_percent: cpu(&|s| s.cpu_ticks.get(li).copied().unwrap_or(0)),
            nodes_cpu_percent: cpu(&|s| s.cpu_ticks.iter().sum()),
            machine_cpu_percent: cpu(&|s| s.machine_busy),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The server's CPU work for one heartbeat, step by step, in this process.

#[derive(Debug, Serialize)]
pub struct StepCost {
    pub step: String,
    pub micros: f64,
}

/// What the axon does for one heartbeat before and after the ledger, timed in-process on one
/// core with this binary (mean of `iterations`), and the sizes involved.
#[derive(Debug, Serialize)]
pub struct HeartbeatCost {
    pub workers: usize,
    /// The decrypted `HeartbeatData` JSON.
    pub plaintext_bytes: usize,
    /// The encrypted package (the synapse's `request` string).
    pub package_bytes: usize,
    /// The HTTP body.
    pub body_bytes: usize,
    /// The `RecordHeartbeat` command as replicated (postcard).
    pub command_bytes: usize,
    pub server_steps: Vec<StepCost>,
    pub server_total_micros: f64,
    /// The miner's side (sealing, signing): not server time, for comparison.
    pub client_steps: Vec<StepCost>,
}

fn time_it<T>(iterations: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    // One warm-up round, then the mean.
    std::hint::black_box(f(0));
    let started = Instant::now();
    for i in 0..iterations {
        std::hint::black_box(f(i + 1));
    }
    started.elapsed().as_secs_f64() * 1e6 / iterations.max(1) as f64
}

fn heartbeat_command(hotkey: &str, data: crate::axon::messages::HeartbeatData) -> ledger::command::Command {
    // As the axon builds it.
    crate::axon::miners::heartbeat_command(hotkey, 1_700_000_000_000, 1, data)
}

pub fn heartbeat_cost(workers: usize, gpus: usize, iterations: usize) -> anyhow::Result<HeartbeatCost> {
    use aes_gcm::Aes256Gcm;
    use aes_gcm::aead::Aead;
    use aes_gcm::aead::KeyInit;
    use aes_gcm::aead::Payload;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use crate::axon::http::EMPTY_BODY_HASH;
    use crate::axon::http::Synapse;
    use crate::axon::session::Package;
    use crate::axon::session::SessionStore;
    use crate::axon::session::SessionStoreConfig;
    use crate::axon::session::pyjson;
    use crate::sim::session::MinerSession;

    let validator = Hotkey::generate().0;
    let miner = Hotkey::generate().0;
    let target = AxonTarget { addr: SocketAddr::from(([127, 0, 0, 1], 1)), hotkey: validator.ss58.clone() };
    let sim = SimMiner::new(Hotkey::generate().0, vec![target], workers, gpus, Behaviour::Honest, None);
    let payload = sim.heartbeat_payload();
    let protocol = Synapse::Heartbeat.protocol_type();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();

    let store = SessionStore::new(validator.ss58.clone(), SessionStoreConfig::default());
    let mut session = MinerSession::new(&miner.ss58, &validator.ss58);
    let init = session.handshake_request();
    let reply = store.handshake(&miner.ss58, &init, now()).map_err(|e| anyhow::anyhow!("handshake: {e:?}"))?;
    session.complete_handshake(&reply).map_err(|e| anyhow::anyhow!("handshake: {e}"))?;

    // Packages sealed ahead (each needs a fresh seq), so the server steps are timed alone.
    let client_seal = time_it(iterations, |_| session.seal(protocol, &payload));
    let packages: Vec<String> = (0..=iterations + 1)
        .map(|_| session.seal(protocol, &payload).map_err(|e| anyhow::anyhow!("seal: {e}")))
        .collect::<anyhow::Result<_>>()?;
    let package = packages[0].clone();
    let body = serde_json::json!({
        "name": Synapse::Heartbeat.route(), "timeout": 12.0, "request": package, "response": null,
        "computed_body_hash": "", "protocol_version": 1,
    })
    .to_string();
    let message = format!("1700000000000000000.{}.{}.uuid.{EMPTY_BODY_HASH}", miner.ss58, validator.ss58);
    let client_sign = time_it(iterations, |_| miner.sign(message.as_bytes()));
    let signature = miner.sign(message.as_bytes());
    let client_body = time_it(iterations, |_| {
        serde_json::json!({"name": "HeartbeatSynapse", "timeout": 12.0, "request": &package, "response": null})
            .to_string()
    });

    let verify = time_it(iterations, |_| crate::axon::identity::verify(&miner.ss58, message.as_bytes(), &signature));
    let body_json = time_it(iterations, |_| crate::axon::http::parse_request_field(body.as_bytes()));
    let package_json = time_it(iterations, |_| Package::parse(&package));
    // The crypto of a package of this size, with a key of our own (the store's are private).
    let plaintext = pyjson::dumps_plaintext(&payload);
    let key: &[u8; 32] = &[7u8; 32];
    let cipher = Aes256Gcm::new(key.into());
    let iv = [1u8; 12];
    let aad = b"leap-comm|a|b|HEARTBEAT_V1|session_x|seq_1";
    let sealed = cipher
        .encrypt(&iv.into(), Payload { msg: plaintext.as_bytes(), aad })
        .map_err(|_| anyhow::anyhow!("sealing failed"))?;
    let b64 = BASE64.encode(&sealed);
    let base64_decode = time_it(iterations, |_| BASE64.decode(&b64));
    let aes = time_it(iterations, |_| cipher.decrypt(&iv.into(), Payload { msg: &sealed, aad }));
    let payload_json = time_it(iterations, |_| pyjson::loads(&plaintext));
    let t = now();
    let decrypt = time_it(iterations, |i| store.decrypt_request(&miner.ss58, protocol, &packages[i], t));
    let data = crate::axon::messages::HeartbeatData::parse(&payload).map_err(|e| anyhow::anyhow!("parse: {}", e.0))?;
    let model = time_it(iterations, |_| crate::axon::messages::HeartbeatData::parse(&payload));
    let mut copies: Vec<Option<_>> = (0..=iterations).map(|_| Some(data.clone())).collect();
    let encode = time_it(iterations, |i| {
        copies[i].take().map(|d| ledger::command::Proposal::encode(&heartbeat_command(&miner.ss58, d)))
    });
    let proposal = ledger::command::Proposal::encode(&heartbeat_command(&miner.ss58, data.clone()));
    let decode = time_it(iterations, |_| proposal.decode());
    let (handle, _) = store
        .decrypt_request(&miner.ss58, protocol, &packages[iterations + 1], t)
        .map_err(|e| anyhow::anyhow!("decrypt: {e:?}"))?;
    let answer = serde_json::json!({
        "error_code": 0, "message": format!("Processed heartbeat for {workers} workers"),
        "workers_processed": workers, "timestamp": t, "request_id": null, "schema_version": 1,
    });
    let respond = time_it(iterations, |_| {
        let sealed = store.encrypt_response(&handle, &answer).unwrap_or_default();
        serde_json::json!({ "response": sealed }).to_string()
    });

    let step = |step: &str, micros: f64| StepCost { step: step.to_string(), micros };
    let server_steps = vec![
        step("sr25519 verify of the dendrite signature", verify),
        step("HTTP body JSON (serde_json, `request` field)", body_json),
        step("session decrypt_request, total (package JSON + base64 + AES-256-GCM + payload JSON + replay)", decrypt),
        step("  of which: package JSON (pyjson)", package_json),
        step("  of which: base64 decode", base64_decode),
        step("  of which: AES-256-GCM decrypt", aes),
        step("  of which: payload JSON (pyjson)", payload_json),
        step("HeartbeatData model (validation, copies)", model),
        step("RecordHeartbeat command + postcard encode", encode),
        step("response: seal + body JSON", respond),
        step("postcard decode (on each member at apply)", decode),
    ];
    let server_total_micros = verify + body_json + decrypt + model + encode + respond + decode;
    Ok(HeartbeatCost {
        workers,
        plaintext_bytes: plaintext.len(),
        package_bytes: package.len(),
        body_bytes: body.len(),
        command_bytes: proposal.body.len(),
        server_steps,
        server_total_micros,
        client_steps: vec![
            step("seal (payload JSON + AES-256-GCM + base64)", client_seal),
            step("sr25519 sign", client_sign),
            step("body JSON", client_body),
        ],
    })
}

/// The SQLite work of applying heartbeats, in this process, on a ledger database of our own
/// (the state machine's writer: `synchronous=NORMAL`, one transaction per heartbeat, as an
/// apply batch of one entry). Without Raft, the log's fsync, or waiting for the writer.
#[derive(Debug, Serialize)]
pub struct ApplyCost {
    pub miners: usize,
    pub workers: usize,
    /// First heartbeat of each miner (inserts), mean ms.
    pub insert_ms: f64,
    /// Later heartbeats (upserts of existing rows, the steady case), mean and max ms.
    pub update_ms: f64,
    pub update_max_ms: f64,
    /// Challenges in the probe's ledger for the reads below (miners × workers, all `sent`).
    pub challenges: usize,
    /// The leader's sweep of `sent` challenges every 2 s when none is overdue (the filter runs
    /// in SQL on the `(status, deadline_ms)` index): ms per read.
    pub sweep_idle_ms: f64,
    /// The same read when every challenge is overdue (the expiry moment): at most the sweep's
    /// limit of rows, ms per read with row decoding.
    pub sweep_expiry_ms: f64,
    /// Rows that read returned (the sweep's per-status limit).
    pub sweep_expiry_rows: usize,
    /// A poll's read of one miner's `created` challenges (`challenges_of`), ms.
    pub poll_read_ms: f64,
    /// Applying 100 `AdvanceChallenge` (created → sent) in one transaction, ms per entry.
    pub advance_apply_ms_per_entry: f64,
}

pub async fn heartbeat_apply_cost(
    workers: usize,
    gpus: usize,
    miners: usize,
    dir: &std::path::Path,
) -> anyhow::Result<ApplyCost> {
    use ledger::state::apply::Plan;
    use ledger::store::script::run_in_transaction;

    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let db = ledger::store::Database::open("sqlite://apply-probe.db", dir).await?;
    let writer = db.apply_writer().await?;
    let target = AxonTarget { addr: SocketAddr::from(([127, 0, 0, 1], 1)), hotkey: String::new() };
    let sim = SimMiner::new(Hotkey::generate().0, vec![target], workers, gpus, Behaviour::Honest, None);
    let data = crate::axon::messages::HeartbeatData::parse(&sim.heartbeat_payload())
        .map_err(|e| anyhow::anyhow!("heartbeat model: {}", e.0))?;
    let mut rounds = Vec::new();
    for round in 0..3u64 {
        let mut times = Vec::with_capacity(miners);
        for m in 0..miners {
            let mut command = heartbeat_command(&format!("bench-miner-{m:04}"), data.clone());
            if let ledger::command::Command::RecordHeartbeat(hb) = &mut command {
                hb.at_ms += round * 60_000;
            }
            let Plan::Run(stmts) = ledger::state::apply::plan(&command) else {
                bail!("the ledger refused the probe heartbeat");
            };
            let started = Instant::now();
            let mut guard = writer.lock().await?;
            run_in_transaction(guard.conn(), &stmts).await?;
            drop(guard);
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        rounds.push(times);
    }

    // A full cycle of challenges, issued and then marked sent, 100 per transaction as in an
    // apply batch, then the reads the sweep and the polls make of them.
    use ledger::command::ChallengeKind;
    use ledger::command::ChallengeStatus;
    use ledger::command::ChallengeStep;
    use ledger::command::ChallengeTransition;
    use ledger::command::Command;
    use ledger::command::IssuedChallenge;
    let plan = |command: &Command| match ledger::state::apply::plan(command) {
        Plan::Run(stmts) => Ok(stmts),
        Plan::Refuse(reason) => Err(anyhow::anyhow!("the ledger refused a probe command: {reason}")),
    };
    let mut advance_ms = Vec::new();
    for m in 0..miners {
        let hotkey = format!("bench-miner-{m:04}");
        let ids: Vec<String> = (0..workers).map(|w| format!("probe-{m:04}-{w:03}")).collect();
        let mut issue = Vec::new();
        let mut advance = Vec::new();
        for (w, id) in ids.iter().enumerate() {
            issue.extend(plan(&Command::IssueChallenge(IssuedChallenge {
                id: id.clone(),
                hotkey: hotkey.clone(),
                worker_id: format!("w{w:03}"),
                kind: ChallengeKind::CpuMatrix,
                seed: rand::random(),
                matrix_size: 2000,
                iterations: 1,
                issued_at_ms: 1_700_000_000_000,
            }))?);
            advance.extend(plan(&Command::AdvanceChallenge(ChallengeTransition {
                id: id.clone(),
                from: ChallengeStatus::Created,
                step: ChallengeStep::Sent { at_ms: 1_700_000_001_000, deadline_ms: 1_700_000_061_000 },
            }))?);
        }
        let mut guard = writer.lock().await?;
        run_in_transaction(guard.conn(), &issue).await?;
        let started = Instant::now();
        run_in_transaction(guard.conn(), &advance).await?;
        advance_ms.push(started.elapsed().as_secs_f64() * 1000.0 / workers.max(1) as f64);
    }
    let machine = ledger::state::StateMachine::open(&db, dir.join("snapshots")).await?;
    let reader = machine.reader();
    // The sweep's read before the deadlines (nothing overdue) and after them (all overdue).
    let sweep_read = |now_ms: i64| {
        let reader = &reader;
        async move {
            let started = Instant::now();
            let rows = reader
                .overdue_challenges_limited(ChallengeStatus::Sent, now_ms, crate::duties::challenges::SWEEP_LIMIT)
                .await?;
            anyhow::Ok((started.elapsed().as_secs_f64() * 1000.0, rows.len()))
        }
    };
    let mut idle_ms = Vec::new();
    let mut expiry_ms = Vec::new();
    let mut expiry_rows = 0;
    for _ in 0..5 {
        idle_ms.push(sweep_read(1_700_000_030_000).await?.0);
        let (ms, rows) = sweep_read(1_700_000_100_000).await?;
        expiry_ms.push(ms);
        expiry_rows = rows;
    }
    let mut poll_ms = Vec::new();
    for m in 0..miners.min(50) {
        let started = Instant::now();
        let rows = reader.challenges_of(&format!("bench-miner-{m:04}"), ChallengeStatus::Created).await?;
        poll_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(rows);
    }
    drop(reader);
    drop(machine);
    db.close().await;
    let _ = std::fs::remove_dir_all(dir);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let updates: Vec<f64> = rounds[1..].concat();
    Ok(ApplyCost {
        miners,
        workers,
        insert_ms: mean(&rounds[0]),
        update_ms: mean(&updates),
        update_max_ms: updates.iter().copied().fold(0.0, f64::max),
        challenges: miners * workers,
        sweep_idle_ms: mean(&idle_ms),
        sweep_expiry_ms: mean(&expiry_ms),
        sweep_expiry_rows: expiry_rows,
        poll_read_ms: mean(&poll_ms),
        advance_apply_ms_per_entry: mean(&advance_ms),
    })
}

// ---------------------------------------------------------------------------------------------
// Output.

fn print_phase(title: &str, phase: &PhaseReport) {
    println!("{title} ({:.0} s from +{:.0} s):", phase.seconds, phase.starts_at_s);
    println!("| kind | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | timeouts | failed |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for k in &phase.kinds {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            k.kind, k.requests, k.requests_per_sec, k.p50_ms, k.p90_ms, k.p99_ms, k.max_ms, k.timeouts, k.failed
        );
    }
    for k in &phase.by_axon {
        println!(
            "| all via {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            k.kind, k.requests, k.requests_per_sec, k.p50_ms, k.p90_ms, k.p99_ms, k.max_ms, k.timeouts, k.failed
        );
    }
    println!();
}

fn print_nodes(title: &str, nodes: &[NodeReport]) {
    println!("{title}:");
    println!(
        "| node | CPU s | % of a core | RSS peak MiB | heartbeat server mean / p99≤ ms | poll server mean / p99≤ ms | \
         proposals: n (mean / p99≤ ms) | log commits: n (mean ms) | apply batches: n (mean ms, entries) | apply lag max |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in nodes {
        let server = |s: &str| {
            n.axon.get(s).map(|h| format!("{:.1} / {}", h.mean_ms, fmt_opt(h.p99_le_ms))).unwrap_or_else(|| "-".into())
        };
        println!(
            "| {}{} | {:.1} | {:.0} | {:.0} | {} | {} | {} ({:.1} / {}) | {} ({:.2}) | {} ({:.2}, {:.1}) | {:.0} |",
            n.node,
            if n.leader { " (leader)" } else { "" },
            n.cpu_seconds,
            n.cpu_percent_of_core,
            n.rss_peak_mib,
            server("HeartbeatSynapse"),
            server("TaskSynapse"),
            n.proposals.count,
            n.proposals.mean_ms,
            fmt_opt(n.proposals.p99_le_ms),
            n.log_commits.count,
            n.log_commits.mean_ms,
            n.apply_batches.count,
            n.apply_batches.mean_ms,
            n.entries_per_apply,
            n.apply_lag_max
        );
    }
    for n in nodes {
        let mut threads: Vec<(&String, &f64)> = n.cpu_seconds_by_thread.iter().collect();
        threads.sort_by(|a, b| b.1.total_cmp(a.1));
        let list: Vec<String> = threads.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
        println!("  {} CPU s by thread: {}", n.node, list.join(", "));
    }
    println!();
}

fn print_report(r: &Report) {
    println!("machine: {}", r.machine);
    println!(
        "load: {} miners × {} workers ({} GPUs/worker), heartbeat {} s, poll {} s, timeout {} s; {} challenges every {} s; \
         offered {:.1} requests/s",
        r.miners,
        r.workers,
        r.gpus_per_worker,
        r.heartbeat_secs,
        r.poll_secs,
        r.timeout_secs,
        r.challenge_type,
        r.challenge_interval,
        r.offered_requests_per_sec
    );
    println!();
    print_phase("warm-up (first period: handshakes)", &r.warmup);
    if let Some(p) = &r.before_challenges {
        print_phase("heartbeats and polls before the first challenges", p);
    }
    print_phase("steady (measured window)", &r.steady);
    let all = r.steady.kinds.last();
    println!(
        "target (steady p99 ≤ {:.0} ms, no timeouts): {} (p99 {:.2} ms, {} timeouts)",
        r.target_p99_ms,
        if r.target_met { "met" } else { "MISSED" },
        all.map(|k| k.p99_ms).unwrap_or(0.0),
        all.map(|k| k.timeouts).unwrap_or(0)
    );
    println!(
        "challenges: {} issued (passes seen at {:?} s), {} handed out to miners (not worked on)",
        r.challenges_issued,
        r.issuing_passes_at_s.iter().map(|s| s.round() as i64).collect::<Vec<_>>(),
        r.miners_report.challenges_received
    );
    println!(
        "miners: {} handshakes, {} re-handshakes, {} failovers",
        r.miners_report.handshakes, r.miners_report.rehandshakes, r.miners_report.failovers
    );
    println!();
    if !r.before_challenges_nodes.is_empty() {
        print_nodes("nodes before the first challenges", &r.before_challenges_nodes);
    }
    print_nodes("nodes over the steady window", &r.nodes);
    println!("timeline (10 s slices; latency by send time; ledger counters sampled every 2 s):");
    println!(
        "| until s | requests | p99 ms | max ms | timeouts | proposals | leader applied | apply lag max | issued | expired \
         | leader CPU % | nodes CPU % | machine CPU % |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for t in &r.timeline {
        println!(
            "| {:.0}{} | {} | {:.1} | {:.1} | {} | {} | {} | {:.0} | {} | {} | {:.0} | {:.0} | {:.0} |",
            t.until_s,
            if t.steady { "" } else { " (warm-up)" },
            t.requests,
            t.p99_ms,
            t.max_ms,
            t.timeouts,
            t.proposals,
            t.leader_entries_applied,
            t.apply_lag_max,
            t.challenges_issued,
            t.challenges_expired,
            t.leader_cpu_percent,
            t.nodes_cpu_percent,
            t.machine_cpu_percent
        );
    }
    println!();
    if let Some(c) = &r.heartbeat_cost {
        println!(
            "server CPU per heartbeat of {} workers, in-process (plaintext {} B, package {} B, body {} B, command {} B):",
            c.workers, c.plaintext_bytes, c.package_bytes, c.body_bytes, c.command_bytes
        );
        for s in &c.server_steps {
            println!("  {:>8.1} µs  {}", s.micros, s.step);
        }
        println!("  {:>8.1} µs  total before and after the ledger", c.server_total_micros);
        let client: Vec<String> = c.client_steps.iter().map(|s| format!("{} {:.1} µs", s.step, s.micros)).collect();
        println!("  (miner side: {})", client.join(", "));
        println!();
    }
    if let Some(a) = &r.heartbeat_apply {
        println!(
            "SQLite apply of one heartbeat of {} workers, in-process ({} miners' rows, synchronous=NORMAL, no Raft): \
             insert {:.2} ms, update {:.2} ms (max {:.2} ms)",
            a.workers, a.miners, a.insert_ms, a.update_ms, a.update_max_ms
        );
        println!(
            "ledger reads and challenge applies, in-process, with {} sent challenges: the sweep's read (every 2 s \
             on the leader) {:.2} ms when none is overdue, {:.1} ms for {} rows when all are, a poll's read of its \
             created ones {:.2} ms, created → sent apply {:.3} ms per entry (100 per transaction)",
            a.challenges,
            a.sweep_idle_ms,
            a.sweep_expiry_ms,
            a.sweep_expiry_rows,
            a.poll_read_ms,
            a.advance_apply_ms_per_entry
        );
        println!();
    }
    println!(
        "bench process (the {} miners): {:.1} CPU s over the steady window, RSS peak {:.0} MiB; machine busy {:.1} CPU s \
         of {:.0} available, other processes {:.1} CPU s",
        r.miners,
        r.client.cpu_seconds,
        r.client.rss_peak_mib,
        r.client.machine_busy_seconds,
        r.steady.seconds * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64,
        r.client.other_processes_seconds
    );
    let refusals: Vec<String> = r
        .before_challenges_nodes
        .iter()
        .flat_map(|n| n.refusals.iter().map(move |(k, v)| format!("before challenges {}: {k} = {v}", n.node)))
        .chain(
            r.nodes.iter().flat_map(|n| n.refusals.iter().map(move |(k, v)| format!("steady {}: {k} = {v}", n.node))),
        )
        .collect();
    println!("server refusals: {}", if refusals.is_empty() { "none".into() } else { refusals.join("; ") });
    let since_start: Vec<String> = r
        .nodes
        .iter()
        .flat_map(|n| n.refusals_since_start.iter().map(move |(k, v)| format!("{}: {k} = {v}", n.node)))
        .collect();
    println!(
        "server refusals since the nodes started: {}",
        if since_start.is_empty() { "none".into() } else { since_start.join("; ") }
    );
    let failures: Vec<String> = r.miners_report.failures.iter().map(|(k, v)| format!("{k} × {v}")).collect();
    println!("client failures (whole run): {}", if failures.is_empty() { "none".into() } else { failures.join("; ") });
    for note in &r.notes {
        println!("note: {note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# TYPE axon_request_seconds histogram\n\
        axon_request_seconds_bucket{synapse=\"TaskSynapse\",le=\"0.005\"} 10\n\
        axon_request_seconds_bucket{synapse=\"TaskSynapse\",le=\"0.05\"} 10\n\
        axon_request_seconds_bucket{synapse=\"TaskSynapse\",le=\"+Inf\"} 10\n\
        axon_request_seconds_sum{synapse=\"TaskSynapse\"} 0.02\n\
        axon_request_seconds_count{synapse=\"TaskSynapse\"} 10\n\
        axon_session_errors_total{code=\"4012\"} 1\n";
    const AFTER: &str = "axon_request_seconds_bucket{synapse=\"TaskSynapse\",le=\"0.005\"} 108\n\
        axon_request_seconds_bucket{synapse=\"TaskSynapse\",le=\"0.05\"} 109\n\
        axon_request_seconds_bucket{synapse=\"TaskSynapse\",le=\"+Inf\"} 110\n\
        axon_request_seconds_sum{synapse=\"TaskSynapse\"} 20.22\n\
        axon_request_seconds_count{synapse=\"TaskSynapse\"} 110\n\
        axon_request_seconds_count{synapse=\"HeartbeatSynapse\"} 7\n\
        axon_session_errors_total{code=\"4012\"} 3\n\
        axon_session_errors_total{code=\"4020\"} 2\n\
        raft_apply_lag 4\n";

    #[test]
    fn histograms_and_counters_are_read_between_two_scrapes() {
        let (before, after) = (parse_metrics(BEFORE), parse_metrics(AFTER));
        let h = hist_delta(&after, &before, "axon_request_seconds", &[("synapse", "TaskSynapse")]);
        assert_eq!(h.count, 100.0);
        assert!((h.sum - 20.2).abs() < 1e-9);
        assert_eq!(h.quantile_le(0.5), Some(0.005));
        assert_eq!(h.quantile_le(0.99), Some(0.05));
        assert_eq!(h.quantile_le(1.0), None, "above the largest finite bucket");
        assert_eq!(after.sum("axon_request_seconds_count", &[]), 117.0);
        assert_eq!(after.sum("raft_apply_lag", &[]), 4.0);
        assert_eq!(before.sum("raft_apply_lag", &[]).to_string(), "0", "an absent series is +0");
        let codes = after.by_label("axon_session_errors_total", "code");
        assert_eq!(codes.get("4020"), Some(&2.0));
    }

    #[test]
    fn proc_stat_lines_give_cpu_ticks() {
        let line = "1234 (tokio-rt-worker) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 0 0";
        assert_eq!(stat_ticks(line), Some(("tokio-rt-worker".to_string(), 300)));
        let spaced = "1 (a (b) c) R 0 0 0 0 0 0 0 0 0 0 7 8 0 0";
        assert_eq!(stat_ticks(spaced), Some(("a (b) c".to_string(), 15)));
    }

    #[test]
    fn phases_split_by_send_time() {
        let origin = Instant::now();
        let at = |s: u64| origin + Duration::from_secs(s);
        let axon = SocketAddr::from(([127, 0, 0, 1], 9));
        let exchange = |s: u64, ms: f64, outcome| Exchange {
            kind: ExchangeKind::Heartbeat,
            axon,
            sent: at(s),
            seconds: ms / 1000.0,
            outcome,
        };
        let all = vec![
            exchange(1, 10.0, ExchangeOutcome::Ok),
            exchange(11, 20.0, ExchangeOutcome::Ok),
            exchange(12, 12_000.0, ExchangeOutcome::Timeout),
        ];
        let phase = phase_report(&all, &[(axon, "node-1".into())], origin, at(10), at(20));
        assert_eq!(phase.by_axon[0].requests, 2);
        let heartbeat = &phase.kinds[0];
        assert_eq!((heartbeat.kind.as_str(), heartbeat.requests, heartbeat.timeouts), ("heartbeat", 2, 1));
        assert_eq!(heartbeat.max_ms, 12_000.0, "timeouts count in the latency");
        assert_eq!(phase.kinds.last().map(|k| k.kind.as_str()), Some("all"));
    }

    #[test]
    fn the_heartbeat_cost_probe_runs() {
        let cost = heartbeat_cost(3, 1, 3).unwrap();
        assert!(cost.server_total_micros > 0.0);
        assert!(cost.command_bytes > 0 && cost.package_bytes > cost.plaintext_bytes);
    }
}
