//! The original validator's scoring, exactly: from verified challenges, heartbeat presence and
//! lease scores to the u16 weights it would put on chain (byteleap-protocol.md §4).
//!
//! A pure library: no database, no clock, no randomness. The caller (the leader's scoring duty)
//! gathers a [`PassInputs`] from the ledger, passes the time and the current [`ScoringParams`]
//! (re-read from the settings for every pass, so weights can be tuned live), and records the
//! [`PassReport`]'s digest and weights as a `ScorePass` in the ledger ([`PassReport::score_pass`]).
//! The report also keeps every factor behind every weight, for `validatorctl explain-weights`.
//!
//! # The pass, step by step (`pass.rs`)
//!
//! 1. Online flags (§4.0): a miner is online iff its last heartbeat is at most 30 min old.
//! 2. Per worker (§4.2): the verified challenges of the ranking window R, minus GPU challenges
//!    whose UUIDs the GPU inventory gives to another hotkey (or to nobody); successes give
//!    `t_norm = computation_time_ms / success_count`; `perf = (1/T) · min(1, AP/BE) · avail`
//!    with `T` the mean `t_norm`, `AP` the successes and `BE = (R·60/I)·P`.
//! 3. Availability (§4.3, `presence.rs`): the share of the `Wh·12` five-minute buckets in which
//!    the worker (CPU) or all the GPUs it committed to (GPU) were seen, capped at 1, halved per
//!    IP change, 0 from the 4th change on.
//! 4. Per miner (§4.4–4.6): `raw` = sum of its top 100 `perf`; `norm = raw / max raw` over every
//!    hotkey with scored workers, registered or not; `avg_norm` over the registered miners;
//!    lease `L` = sum of its (≤ 100) workers' lease scores over their count; `E` = `avg_norm`
//!    for leased miners, else `norm`; `S = cw·E + lw·L`, 0 if offline.
//! 5. Weights (§4.7): `S / ΣS`, clamped and renormalised (uniform if every `S` is 0); the
//!    submitted value is 0 for an offline miner; then the SDK's conversion to u16
//!    ([`convert_weights_and_uids_for_emit`], `emit.rs`).
//!
//! # Matching the original to the last bit
//!
//! Every float operation is the original's, in its order: Python's `sum()` (plain left-to-right
//! additions, as CPython 3.11, which produced the §9 vectors), `min`/`max` with Python's NaN
//! behaviour, `round` half to even, the `T` mean over challenges newest first, the top-100 sum
//! in descending order, the per-miner sums in `miner_info` row order. The tests replay a
//! scenario through the original Python code (`testdata/oracle.py`) and compare every
//! intermediate value bit for bit.
//!
//! Known, documented departures (all from keeping bitmaps instead of heartbeat rows, or from
//! fixing an order the original leaves to the database):
//!
//! * the bucket straddling `now − Wh` is not counted unless `now − Wh` is on a bucket boundary
//!   (`presence.rs` module docs: at most 1/2028 of a ratio below 1);
//! * challenges with equal `created_at` are taken in input order (the original: database order);
//! * where the original's result depends on its database, we follow SQLite, its default: the
//!   registered miners come in hotkey order (its `hotkey IN (…)` query walks the unique hotkey
//!   index, as the oracle run shows; on PostgreSQL it would be the table's physical order), and a
//!   NaN lease score counts as 0 (SQLite stores NaN as NULL; PostgreSQL would sort it first and
//!   make the miner's lease sum NaN, so `L = 0`).
//!
//! Non-finite inputs: a NaN or infinite `computation_time_ms` ends as `perf = 0` for that worker
//! (the original's `1/T` guard); an infinite lease score gives `L = 1` (+∞) or `L = 0` (−∞, or
//! +∞ and −∞ together), as in the original. Parameters must be finite and in range
//! ([`ScoringError::BadParameter`]); the original would score with garbage instead.

mod emit;
mod inputs;
mod ledger_inputs;
mod pass;
mod presence;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use serde::Serialize;

pub use emit::EmitError;
pub use emit::U16_MAX;
pub use emit::convert_weights_and_uids_for_emit;
pub use inputs::ChallengeInput;
pub use inputs::GpuOwner;
pub use inputs::MinerInput;
pub use inputs::PassInputs;
pub use inputs::WorkerInput;
pub use inputs::inputs_digest;
pub use ledger_inputs::inputs_from_ledger;
pub use pass::MinerExplanation;
pub use pass::PassReport;
pub use pass::WorkerExplanation;
pub use pass::run_pass;
pub use presence::BUCKET_MS;
pub use presence::BUCKETS_PER_HOUR;
pub use presence::BucketBitmap;
pub use presence::GpuPresence;
pub use presence::IP_CHANGES_TRACKED;
pub use presence::IpTracker;
pub use presence::WorkerHistory;
pub use presence::bucket_of;
pub use presence::bucket_window;
pub use presence::gpu_uuids_from_gpu_info;

/// Most workers scored, and most workers averaged for the lease score, per miner
/// (`CHALLENGE_SCORE_CAP`, byteleap-protocol.md §4.4 and §4.5).
pub const WORKER_CAP: usize = 100;

/// A miner is offline when its last heartbeat is older than this (§4.0: 30 min).
pub const MINER_OFFLINE_AFTER_MS: u64 = 30 * 60_000;

/// The parameters of one pass, with the original's configuration names (§4 notation). The caller
/// re-reads them from the settings before every pass; nothing here is cached between passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoringParams {
    /// R, `validation.ranking_window_minutes` (§4: 180): the challenges that count.
    pub ranking_window_minutes: u64,
    /// I, `validation.challenge_interval` in seconds (§4: 240).
    pub challenge_interval: u64,
    /// P, `validation.participation_rate_threshold` (§4: 0.80; the original accepts 0.1..=1.0).
    pub participation_rate_threshold: f64,
    /// Wh, `weight_management.availability.window_hours` (§4: 169). The bitmaps are sized for it,
    /// so it is fixed at start, as in the original.
    pub availability_window_hours: u64,
    /// lw, `weight_management.score_weights.lease_weight` (§4.6: 0.70 in the shipped example).
    pub lease_weight: f64,
    /// cw, `weight_management.score_weights.challenge_weight` (§4.6: 0.30). lw and cw need not sum
    /// to 1: the weights are normalised anyway.
    pub challenge_weight: f64,
    /// `CHALLENGE_SCORE_CAP` (§4.4: 100), a constant in the original.
    pub worker_cap: usize,
}

impl Default for ScoringParams {
    fn default() -> ScoringParams {
        ScoringParams {
            ranking_window_minutes: 180,
            challenge_interval: 240,
            participation_rate_threshold: 0.80,
            availability_window_hours: 169,
            lease_weight: 0.70,
            challenge_weight: 0.30,
            worker_cap: WORKER_CAP,
        }
    }
}

impl ScoringParams {
    /// Checks the ranges the original's config getters enforce (`get_positive_number`,
    /// `get_range(0.1, 1.0)`), plus finite weights and bounds that keep the time arithmetic and
    /// the bitmaps sane.
    pub fn validate(&self) -> Result<(), ScoringError> {
        fn bad(key: &'static str, expected: &'static str, got: impl ToString) -> ScoringError {
            ScoringError::BadParameter { key, expected, got: got.to_string() }
        }
        if !(1..=525_600).contains(&self.ranking_window_minutes) {
            return Err(bad("validation.ranking_window_minutes", "1..=525600", self.ranking_window_minutes));
        }
        if !(1..=31_536_000).contains(&self.challenge_interval) {
            return Err(bad("validation.challenge_interval", "1..=31536000", self.challenge_interval));
        }
        if !(0.1..=1.0).contains(&self.participation_rate_threshold) {
            return Err(bad("validation.participation_rate_threshold", "0.1..=1.0", self.participation_rate_threshold));
        }
        if !(1..=8_760).contains(&self.availability_window_hours) {
            return Err(bad("weight_management.availability.window_hours", "1..=8760", self.availability_window_hours));
        }
        if !self.lease_weight.is_finite() {
            return Err(bad("weight_management.score_weights.lease_weight", "a finite number", self.lease_weight));
        }
        if !self.challenge_weight.is_finite() {
            return Err(bad(
                "weight_management.score_weights.challenge_weight",
                "a finite number",
                self.challenge_weight,
            ));
        }
        if self.worker_cap == 0 {
            return Err(bad("worker_cap", "at least 1", self.worker_cap));
        }
        Ok(())
    }

    /// BE, the participation baseline (§4.2): `(R·60 / I) · P`, computed as the original does
    /// (`(minutes * 60) / interval` is a true division of two ints, then a float product).
    pub fn baseline_expected(&self) -> f64 {
        (self.ranking_window_minutes * 60) as f64 / self.challenge_interval as f64 * self.participation_rate_threshold
    }

    /// The denominator of the availability ratio (§4.3 step 6): `max(1, int(Wh·12))`.
    pub fn expected_buckets(&self) -> u64 {
        (self.availability_window_hours * BUCKETS_PER_HOUR).max(1)
    }

    /// `now − R`: challenges (and inventory rows) at or after it count.
    pub fn ranking_window_start(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.ranking_window_minutes.saturating_mul(60_000))
    }

    /// `now − Wh`: heartbeats at or after it count.
    pub fn availability_window_start(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.availability_window_hours.saturating_mul(3_600_000))
    }
}

/// Inputs a pass cannot score.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    #[error("{key} must be {expected}, got {got}")]
    BadParameter { key: &'static str, expected: &'static str, got: String },
    #[error("miner {hotkey} is listed twice")]
    DuplicateMiner { hotkey: String },
    #[error("worker {worker_id} of miner {hotkey} is listed twice")]
    DuplicateWorker { hotkey: String, worker_id: String },
    #[error("GPU {uuid} has two inventory rows")]
    DuplicateGpu { uuid: String },
    #[error("the metagraph lists {count} hotkeys; uids are u16")]
    TooManyNeurons { count: usize },
    /// Bitmaps are made for one window length ([`BucketBitmap::for_window_hours`]); one made for
    /// another cannot be counted or combined with the others.
    #[error("a bucket bitmap of miner {hotkey} holds {capacity} buckets; a {window_hours} h window uses {expected}")]
    BitmapCapacity { hotkey: String, capacity: u64, expected: u64, window_hours: u64 },
    #[error("weight conversion: {0}")]
    Emit(#[from] EmitError),
}
