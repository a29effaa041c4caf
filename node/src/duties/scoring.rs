//! The scoring pass (byteleap-protocol.md §4): every `scoring.interval_secs` (default 420 s, the
//! original's `WEIGHT_CALCULATION_INTERVAL`) the leader reads the pass's inputs from the ledger,
//! runs [`crate::scoring::run_pass`] off the async threads and records the result as one
//! `RecordScorePass` command: the digest of the inputs and the `(uid, u16)` weights. Every
//! member can then show the weights (`validatorctl weights`) and, holding the same ledger,
//! recompute and explain them (`validatorctl explain-weights`).
//!
//! The parameters are cluster settings, read afresh on every pass (hot-reloadable with
//! `validatorctl set`, the same on every member): `scoring.lease_weight` (§4.6 lw, 0.70),
//! `scoring.challenge_weight` (cw, 0.30), `scoring.ranking_window_minutes` (R, 180),
//! `scoring.participation_rate_threshold` (P, 0.80). The availability window (169 h) is fixed,
//! as in the original; the challenge interval comes from `validation.challenge_interval`.

use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use ledger::command::Command;

use crate::cluster::LedgerNode;
use crate::config::ValidationSection;
use crate::scoring::PassReport;
use crate::scoring::ScoringParams;
use crate::scoring::inputs_from_ledger;
use crate::scoring::run_pass;

/// Seconds between passes (§4: `WEIGHT_CALCULATION_INTERVAL` = 420 s).
pub const DEFAULT_INTERVAL_SECS: u64 = 420;
/// Seconds before retrying after a failed pass (§4: 60 s after an exception).
const RETRY_SECS: u64 = 60;
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Delay of the first pass after this member becomes leader.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(5);
/// Shortest interval a setting may ask for.
const MIN_INTERVAL_SECS: u64 = 1;

/// Setting keys.
pub const INTERVAL_KEY: &str = "scoring.interval_secs";
pub const LEASE_WEIGHT_KEY: &str = "scoring.lease_weight";
pub const CHALLENGE_WEIGHT_KEY: &str = "scoring.challenge_weight";
pub const RANKING_WINDOW_KEY: &str = "scoring.ranking_window_minutes";
pub const PARTICIPATION_KEY: &str = "scoring.participation_rate_threshold";

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

async fn setting<T: std::str::FromStr>(node: &LedgerNode, key: &str) -> anyhow::Result<Option<T>> {
    match node.state.setting(key).await? {
        None => Ok(None),
        Some(text) => {
            text.trim().parse().map(Some).map_err(|_| anyhow::anyhow!("setting {key} = {text:?} is not a valid value"))
        }
    }
}

/// The parameters of a pass as the settings say now (defaults of §4 where unset).
pub async fn params(node: &LedgerNode, validation: &ValidationSection) -> anyhow::Result<ScoringParams> {
    let mut params = ScoringParams { challenge_interval: validation.challenge_interval, ..ScoringParams::default() };
    if let Some(v) = setting(node, LEASE_WEIGHT_KEY).await? {
        params.lease_weight = v;
    }
    if let Some(v) = setting(node, CHALLENGE_WEIGHT_KEY).await? {
        params.challenge_weight = v;
    }
    if let Some(v) = setting(node, RANKING_WINDOW_KEY).await? {
        params.ranking_window_minutes = v;
    }
    if let Some(v) = setting(node, PARTICIPATION_KEY).await? {
        params.participation_rate_threshold = v;
    }
    params.validate()?;
    Ok(params)
}

/// Computes a pass over this member's ledger as of `now_ms` (any member; nothing is written).
pub async fn compute(node: &LedgerNode, validation: &ValidationSection, now_ms: u64) -> anyhow::Result<PassReport> {
    let params = params(node, validation).await?;
    let inputs = inputs_from_ledger(&node.state, now_ms, &params).await?;
    let report = tokio::task::spawn_blocking(move || run_pass(&inputs, &params)).await??;
    Ok(report)
}

/// One pass, recorded; returns the report.
pub async fn pass(node: &LedgerNode, validation: &ValidationSection) -> anyhow::Result<PassReport> {
    let started = std::time::Instant::now();
    let report = compute(node, validation, now_ms()).await?;
    node.propose(&Command::RecordScorePass(report.score_pass()), PROPOSE_TIMEOUT).await?;
    metrics::histogram!("scoring_pass_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("scoring_passes_total").increment(1);
    Ok(report)
}

/// Runs the passes while this member leads. The interval is read every second, so a changed
/// `scoring.interval_secs` takes effect at once.
pub async fn run(node: Arc<LedgerNode>, validation: ValidationSection) {
    // The first pass comes a few seconds after leadership, once the ledger is current.
    let mut last: Option<tokio::time::Instant> = None;
    let mut led_since: Option<tokio::time::Instant> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if node.metrics().running_state.is_err() {
            return;
        }
        if !node.is_leader() {
            led_since = None;
            continue;
        }
        let now = tokio::time::Instant::now();
        let since = *led_since.get_or_insert(now);
        let interval = match setting::<u64>(&node, INTERVAL_KEY).await {
            Ok(v) => Duration::from_secs(v.unwrap_or(DEFAULT_INTERVAL_SECS).max(MIN_INTERVAL_SECS)),
            Err(e) => {
                tracing::warn!(error = %e, "scoring interval");
                Duration::from_secs(DEFAULT_INTERVAL_SECS)
            }
        };
        let due = match (retry_at, last) {
            (Some(at), _) => now >= at,
            (None, Some(at)) => now >= at + interval,
            (None, None) => now >= since + FIRST_PASS_AFTER,
        };
        if !due {
            continue;
        }
        match pass(&node, &validation).await {
            Ok(report) => {
                tracing::info!(
                    miners = report.miners.len(),
                    weights = report.weights.len(),
                    digest = %hex::encode(report.inputs_digest),
                    "scoring pass recorded"
                );
                last = Some(tokio::time::Instant::now());
                retry_at = None;
            }
            Err(e) => {
                metrics::counter!("scoring_passes_failed_total").increment(1);
                tracing::warn!(error = %e, "scoring pass failed; retrying in {RETRY_SECS} s");
                retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(RETRY_SECS).min(interval));
            }
        }
    }
}
