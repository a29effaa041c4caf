//! `validator bench scoring`: the cost of one scoring pass over a full subnet.
//!
//! Builds, in memory, what the ledger holds for a full subnet (default 256 miners × 100
//! workers): 169 h of 5-minute presence bitmaps per worker with on/off gaps, brand-new workers
//! and IP changes; per GPU worker its GPUs in the hotkey's presence bitmaps and in the
//! inventory (a few owned by another hotkey); about 45 verified challenges per worker inside the
//! 180-minute ranking window; lease scores on some workers. Then times [`run_pass`] on this
//! thread (the pass is single-threaded), digest included, and the digest alone, and reports
//! the peak resident memory the passes add on top of the inputs (VmHWM reset through
//! `/proc/self/clear_refs` before the passes).

use std::time::Instant;

use anyhow::Context;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use super::machine;
use super::quantile;
use crate::scoring::BUCKET_MS;
use crate::scoring::ChallengeInput;
use crate::scoring::GpuOwner;
use crate::scoring::GpuPresence;
use crate::scoring::MinerInput;
use crate::scoring::PassInputs;
use crate::scoring::ScoringParams;
use crate::scoring::WorkerHistory;
use crate::scoring::WorkerInput;
use crate::scoring::inputs_digest;
use crate::scoring::run_pass;

#[derive(Debug, Clone, clap::Args)]
pub struct ScoringBenchArgs {
    /// Miners (hotkeys), all registered.
    #[arg(long, default_value_t = 256)]
    pub miners: usize,
    /// Workers per miner.
    #[arg(long, default_value_t = 100)]
    pub workers: usize,
    /// Verified challenges per worker inside the ranking window (180 min / 240 s = 45).
    #[arg(long, default_value_t = 45)]
    pub challenges: u64,
    /// Share of workers with GPUs (1–8 each).
    #[arg(long, default_value_t = 0.1)]
    pub gpu_share: f64,
    /// Share of workers with a lease score.
    #[arg(long, default_value_t = 0.1)]
    pub lease_share: f64,
    /// Timed passes (the first one is a warm-up and not counted).
    #[arg(long, default_value_t = 20)]
    pub passes: usize,
    /// Seed of the generated subnet.
    #[arg(long, default_value_t = 128)]
    pub seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub miners: usize,
    pub workers: usize,
    pub gpu_workers: usize,
    pub gpus: usize,
    pub challenges: usize,
    pub build_ms: f64,
    /// Resident memory added by building the inputs, MiB.
    pub inputs_mib: f64,
    pub passes: usize,
    pub pass_min_ms: f64,
    pub pass_p50_ms: f64,
    pub pass_p99_ms: f64,
    pub pass_max_ms: f64,
    /// The input digest alone, median.
    pub digest_p50_ms: f64,
    /// Peak resident memory during the passes above what the inputs hold, MiB.
    pub pass_peak_extra_mib: f64,
    /// Non-zero u16 weights of the last pass.
    pub weights: usize,
}

/// 2026-01-01T00:02:03Z: not on a bucket boundary, as a real pass time usually is not.
const NOW: u64 = 1_767_225_600_000 + 123_000;

fn build(args: &ScoringBenchArgs, params: &ScoringParams) -> PassInputs {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let wh = params.availability_window_hours;
    let window_buckets = wh * 12 + 1;
    let last_bucket = NOW / BUCKET_MS;
    let first_bucket = last_bucket - window_buckets + 1;
    let hotkey = |i: usize| format!("5{:047x}", i as u128 * 0x9e37_79b9_7f4a_7c15);
    let mut miners = Vec::with_capacity(args.miners);
    let mut inventory = Vec::new();
    for m in 0..args.miners {
        let hk = hotkey(m);
        let mut presence = GpuPresence::new(wh);
        let mut workers = Vec::with_capacity(args.workers);
        for w in 0..args.workers {
            let worker_id = format!("{:016x}", rng.random::<u64>());
            let gpus: Vec<String> = if rng.random::<f64>() < args.gpu_share {
                (0..rng.random_range(1..=8)).map(|_| format!("GPU-{:032x}", rng.random::<u128>())).collect()
            } else {
                Vec::new()
            };
            for uuid in &gpus {
                // 1 % of GPUs also reported by another hotkey, which then owns them.
                let owner = if rng.random::<f64>() < 0.01 { hotkey((m + 1) % args.miners) } else { hk.clone() };
                inventory.push(GpuOwner { uuid: uuid.clone(), hotkey: owner, last_seen_ms: NOW - 60_000 });
            }

            // Presence: a two-state chain over the window's buckets (long runs online, short gaps
            // offline), 5 % of workers brand new (their first day), 1 % with IP changes.
            let mut history = WorkerHistory::new(wh);
            let start = if rng.random::<f64>() < 0.05 { last_bucket - 288 } else { first_bucket };
            let mut ip = format!("10.{}.{}.{}", m % 256, w % 256, rng.random_range(1..255));
            let changes_ip = rng.random::<f64>() < 0.01;
            let mut online = true;
            for bucket in start..=last_bucket {
                online = if online { rng.random::<f64>() > 0.002 } else { rng.random::<f64>() < 0.05 };
                if !online {
                    continue;
                }
                if changes_ip && rng.random::<f64>() < 0.001 {
                    ip = format!("172.16.{}.{}", rng.random_range(0..255), rng.random_range(1..255));
                }
                let at = bucket * BUCKET_MS + rng.random_range(0..BUCKET_MS);
                if at > NOW {
                    continue;
                }
                history.record(at, Some(&ip));
                if !gpus.is_empty() {
                    presence.record(at, gpus.iter().map(String::as_str));
                }
            }

            // Challenges every ~240 s inside the ranking window, oldest first. A CPU challenge
            // lists no UUID; a GPU worker's challenges share one list of its GPUs.
            let uuids: std::sync::Arc<[String]> = gpus.clone().into();
            let challenges = (0..args.challenges)
                .map(|i| {
                    let success = rng.random::<f64>() < 0.97;
                    ChallengeInput {
                        created_at_ms: NOW - (args.challenges - i) * 240_000 + rng.random_range(0..30_000),
                        computation_time_ms: Some(rng.random_range(70.0..480.0)),
                        gpu_uuids: uuids.clone(),
                        success_count: if success { gpus.len().max(1) as u32 } else { 0 },
                        verified: true,
                        verification_result: success,
                        is_success: success,
                    }
                })
                .collect();
            let lease_score = if rng.random::<f64>() < args.lease_share { rng.random_range(0.1..1.0) } else { 0.0 };
            workers.push(WorkerInput { worker_id, lease_score, history, challenges });
        }
        miners.push(MinerInput {
            hotkey: hk,
            last_heartbeat_ms: Some(NOW - rng.random_range(0..40) * 60_000),
            workers,
            gpu_presence: presence,
        });
    }
    PassInputs { now_ms: NOW, metagraph: (0..args.miners).map(hotkey).collect(), miners, gpu_inventory: inventory }
}

/// `(VmRSS, VmHWM)` of this process in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (super::status_kib(&status, "VmRSS:"), super::status_kib(&status, "VmHWM:"))
}

fn measure(args: &ScoringBenchArgs, say: &dyn Fn(String)) -> anyhow::Result<Report> {
    let params = ScoringParams::default();
    let (rss_before, _) = memory_kib();
    let started = Instant::now();
    say(format!("building {} miners × {} workers ...", args.miners, args.workers));
    let inputs = build(args, &params);
    let build_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (rss_inputs, _) = memory_kib();
    let workers: usize = inputs.miners.iter().map(|m| m.workers.len()).sum();
    let gpu_workers = inputs
        .miners
        .iter()
        .flat_map(|m| &m.workers)
        .filter(|w| w.challenges.first().is_some_and(|c| !c.gpu_uuids.is_empty()))
        .count();
    let challenges: usize = inputs.miners.iter().flat_map(|m| &m.workers).map(|w| w.challenges.len()).sum();
    say(format!(
        "  {workers} workers ({gpu_workers} with GPUs, {} GPUs), {challenges} challenges, built in {build_ms:.0} ms, inputs {:.1} MiB",
        inputs.gpu_inventory.len(),
        mib(rss_inputs.saturating_sub(rss_before))
    ));

    // Reset the peak-RSS mark (`echo 5 > clear_refs`, proc(5)), then a warm-up pass (it
    // allocates what later passes reuse; the peak counts it).
    let (rss_base, _) = memory_kib();
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let report = run_pass(&inputs, &params).context("warm-up pass")?;
    drop(report);
    let mut samples = Vec::with_capacity(args.passes);
    let mut weights = 0;
    for _ in 0..args.passes.max(1) {
        let started = Instant::now();
        let report = run_pass(&inputs, &params).context("scoring pass")?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        weights = report.weights.len();
        drop(report);
    }
    let (_, hwm) = memory_kib();
    let pass_peak_extra_mib = if hwm_reset { mib(hwm.saturating_sub(rss_base)) } else { f64::NAN };
    let mut digests = Vec::new();
    for _ in 0..args.passes.clamp(1, 10) {
        let started = Instant::now();
        std::hint::black_box(inputs_digest(&inputs, &params));
        digests.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    digests.sort_by(f64::total_cmp);
    Ok(Report {
        machine: machine(),
        miners: inputs.miners.len(),
        workers,
        gpu_workers,
        gpus: inputs.gpu_inventory.len(),
        challenges,
        build_ms,
        inputs_mib: mib(rss_inputs.saturating_sub(rss_before)),
        passes: samples.len(),
        pass_min_ms: samples[0],
        pass_p50_ms: quantile(&samples, 0.5),
        pass_p99_ms: quantile(&samples, 0.99),
        pass_max_ms: samples[samples.len() - 1],
        digest_p50_ms: quantile(&digests, 0.5),
        pass_peak_extra_mib,
        weights,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub async fn run(args: ScoringBenchArgs) -> anyhow::Result<()> {
    let quiet = args.json;
    let json = args.json;
    let report = tokio::task::spawn_blocking(move || {
        let say = move |s: String| {
            if !quiet {
                eprintln!("{s}");
            }
        };
        say(format!("bench scoring: {}", machine()));
        measure(&args, &say)
    })
    .await
    .context("scoring bench thread")??;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "scoring pass over {} miners / {} workers / {} challenges: p50 {:.1} ms, p99 {:.1} ms (min {:.1}, max {:.1}; {} passes, one thread), digest alone p50 {:.1} ms",
            report.miners,
            report.workers,
            report.challenges,
            report.pass_p50_ms,
            report.pass_p99_ms,
            report.pass_min_ms,
            report.pass_max_ms,
            report.passes,
            report.digest_p50_ms
        );
        println!(
            "memory: inputs {:.1} MiB resident, a pass adds at most {:.1} MiB; {} weights",
            report.inputs_mib, report.pass_peak_extra_mib, report.weights
        );
    }
    Ok(())
}
