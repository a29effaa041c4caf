//! One scoring pass (byteleap-protocol.md §4.0–§4.7): inputs in, weights and their explanation
//! out. See the module docs of [`crate::scoring`] for the steps and the float rules.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::HashSet;

use serde::Deserialize;
use serde::Serialize;

use super::MINER_OFFLINE_AFTER_MS;
use super::ScoringError;
use super::ScoringParams;
use super::emit::convert_weights_and_uids_for_emit;
use super::emit::py_max;
use super::emit::py_max_of;
use super::emit::py_min;
use super::emit::py_sum;
use super::inputs::ChallengeInput;
use super::inputs::DigestStream;
use super::inputs::MinerInput;
use super::inputs::PassInputs;
use super::inputs::WorkerInput;
use super::inputs::is_gpu_uuid;
use super::presence::BucketBitmap;
use super::presence::Window;
use super::presence::bucket_window;

/// The result of one pass: the weights as they would be submitted, the digest of the inputs,
/// and every factor behind every weight.
///
/// Serialisable for `validatorctl explain-weights`. Floats echo the inputs where the original
/// does (`lease_score`, `avg_exec_ms`), so they can be NaN or infinite when the inputs are:
/// carry it with postcard, or a JSON writer that does not turn NaN into `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassReport {
    pub at_ms: u64,
    /// [`super::inputs_digest`] of the inputs and parameters.
    pub inputs_digest: [u8; 32],
    pub params: ScoringParams,
    /// BE (§4.2).
    pub participation_baseline: f64,
    /// The availability denominator, `Wh·12` (§4.3 step 6).
    pub expected_buckets: u64,
    /// The largest `raw` over every hotkey with scored workers, registered or not (§4.4).
    pub max_raw: f64,
    /// Mean `norm` over the registered miners (§4.4); what leased miners get as `E`.
    pub avg_norm: f64,
    /// Largest worker `perf`, the denominator of the per-worker `score` of the MeshHub report
    /// (§4.8).
    pub max_worker_perf: f64,
    /// Every registered miner's `S` was 0, so each got `1/N` (§4.7).
    pub uniform: bool,
    /// Every miner of the inputs, in input order (unregistered ones too: they can set
    /// `max_raw`).
    pub miners: Vec<MinerExplanation>,
    /// `(uid, u16)` as they would be submitted, in uid order; empty when no weight is > 0.
    pub weights: Vec<(u16, u16)>,
}

impl PassReport {
    /// The ledger record of this pass.
    pub fn score_pass(&self) -> ledger::command::ScorePass {
        ledger::command::ScorePass {
            at_ms: self.at_ms,
            inputs_digest: self.inputs_digest,
            weights: self.weights.clone(),
        }
    }
}

/// Every factor of one miner's weight (§4.4–§4.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerExplanation {
    pub hotkey: String,
    /// The miner's uid, if registered.
    pub uid: Option<u16>,
    /// Registered in the metagraph: only these get a weight.
    pub active: bool,
    /// Last heartbeat at most 30 minutes old (§4.0).
    pub online: bool,
    /// Sum of the top `worker_cap` worker `perf` values (§4.4); 0 without scored workers.
    pub raw: f64,
    /// Workers with at least one success in the window.
    pub scored_workers: u32,
    /// Workers whose `perf` entered `raw` (at most `worker_cap`).
    pub counted_workers: u32,
    /// Workers with verified challenges in the window but no success (dropped, §4.2), including
    /// those whose challenges the ownership filter skipped.
    pub workers_without_success: u32,
    /// `raw / max_raw` clamped to [0, 1] (registered miners only).
    pub norm: f64,
    /// L (§4.5); 0 for an offline or unregistered miner.
    pub lease: f64,
    /// Workers the lease average is taken over (≤ `worker_cap`).
    pub lease_workers: u32,
    /// E (§4.6): `avg_norm` when `L > 0`, else `norm`; 0 when offline.
    pub effective_challenge: f64,
    /// S = cw·E + lw·L (§4.6); 0 when offline or when both parts are 0.
    pub score: f64,
    /// w, the normalised weight (§4.7), stored by the original as `weight_value`.
    pub weight: f64,
    /// What is submitted: w, or 0 for an offline miner (§4.7 step 2).
    pub submitted_weight: f64,
    /// The on-chain value; 0 when dropped or when nothing is submitted.
    pub u16_weight: u16,
    /// Mean availability of the scored workers (the original stores it, for reporting only).
    pub availability_score: f64,
    /// Scored workers, in the original's ranking order (participation, then speed).
    pub workers: Vec<WorkerExplanation>,
}

/// Every factor of one worker's `perf` (§4.2, §4.3; the `factors` of §4.8 and more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerExplanation {
    pub worker_id: String,
    pub lease_score: f64,
    /// Verified challenges in the window that passed the ownership filter.
    pub attempts: u32,
    /// GPU challenges skipped because a UUID belongs to another hotkey or to nobody.
    pub skipped_gpu_ownership: u32,
    /// AP, `participationCount`.
    pub successes: u32,
    /// BE, `participationBaseline`.
    pub participation_baseline: f64,
    /// T, `avgExecMs`: mean of `computation_time_ms / success_count`.
    pub avg_exec_ms: f64,
    /// `avgExecGpus`: mean `success_count` (0 counted as 1).
    pub avg_exec_gpus: f64,
    /// 1/T (0 if T ≤ 0 or not finite).
    pub base: f64,
    /// min(1, AP/BE).
    pub participation: f64,
    /// `availability` in [0, 1] (§4.3).
    pub availability: f64,
    /// Buckets counted as online (the worker's own for a CPU worker, those with all its GPUs for
    /// a GPU worker).
    pub online_buckets: u32,
    /// IP changes in the availability window (counted up to 4).
    pub ip_changes: u32,
    /// The GPU UUIDs committed by its challenges with a true verification result (§4.3 step 4;
    /// empty: a CPU worker, counted on its own heartbeats).
    pub required_gpus: Vec<String>,
    /// `perf` = base · participation · availability (`rawPerfScore`).
    pub perf: f64,
    /// `perf / max_worker_perf` (the report's `score`/`perfScore`, before rounding to 6 dp).
    pub score: f64,
    /// Among the top `worker_cap` of its miner.
    pub counted: bool,
}

/// A worker that survived §4.2, with what its miner-level steps need.
struct ScoredWorker {
    explanation: WorkerExplanation,
    /// `min(BE, AP)`, the first ranking key.
    participation_score: f64,
    /// Its newest verified challenge in the window: the original's tie-break for the ranking
    /// order (its first appearance in the newest-first challenge list).
    newest_ms: u64,
    index: usize,
}

/// Per-pass constants.
struct Frame<'a> {
    ranking_start: u64,
    availability_start: u64,
    window: Window,
    baseline: f64,
    expected_buckets: u64,
    owners: HashMap<&'a str, &'a str>,
}

/// Runs one pass. Pure: the same inputs and parameters always give the same report.
pub fn run_pass(inputs: &PassInputs, params: &ScoringParams) -> Result<PassReport, ScoringError> {
    params.validate()?;
    let now = inputs.now_ms;

    if inputs.metagraph.len() > usize::from(u16::MAX) + 1 {
        return Err(ScoringError::TooManyNeurons { count: inputs.metagraph.len() });
    }
    // `metagraph.hotkeys.index(hotkey)`: the first uid holding the hotkey.
    let mut uid_of: HashMap<&str, u16> = HashMap::with_capacity(inputs.metagraph.len());
    for (uid, hotkey) in inputs.metagraph.iter().enumerate() {
        uid_of.entry(hotkey.as_str()).or_insert(uid as u16);
    }

    let (first_bucket, last_bucket) = bucket_window(now, params.availability_window_hours);
    let ranking_start = params.ranking_window_start(now);
    let mut owners: HashMap<&str, &str> = HashMap::with_capacity(inputs.gpu_inventory.len());
    let mut seen_gpus: HashSet<&str> = HashSet::with_capacity(inputs.gpu_inventory.len());
    for gpu in &inputs.gpu_inventory {
        if !seen_gpus.insert(gpu.uuid.as_str()) {
            return Err(ScoringError::DuplicateGpu { uuid: gpu.uuid.clone() });
        }
        if gpu.last_seen_ms >= ranking_start && !gpu.uuid.is_empty() {
            owners.insert(gpu.uuid.as_str(), gpu.hotkey.as_str());
        }
    }
    let capacity = BucketBitmap::for_window_hours(params.availability_window_hours).capacity();
    let frame = Frame {
        ranking_start,
        availability_start: params.availability_window_start(now),
        window: Window::new(first_bucket, last_bucket, capacity),
        baseline: params.baseline_expected(),
        expected_buckets: params.expected_buckets(),
        owners,
    };

    // §4.2–§4.4 for every miner, registered or not.
    let mut seen_miners: HashSet<&str> = HashSet::with_capacity(inputs.miners.len());
    let mut scratch = Scratch::new(capacity);
    let mut per_miner: Vec<MinerWork> = Vec::with_capacity(inputs.miners.len());
    let mut digest = DigestStream::start(inputs, params);
    for miner in &inputs.miners {
        if !seen_miners.insert(miner.hotkey.as_str()) {
            return Err(ScoringError::DuplicateMiner { hotkey: miner.hotkey.clone() });
        }
        check_capacities(miner, capacity, params.availability_window_hours)?;
        digest.miner(miner);
        per_miner.push(score_miner_workers(miner, &frame, params, &mut scratch, &mut digest)?);
        digest.miner_end(miner);
    }
    let inputs_digest = digest.finish();

    // `max(miner_challenge_scores.values())` over the hotkeys with scored workers.
    let max_raw = py_max_of(per_miner.iter().filter_map(|m| m.raw)).unwrap_or(0.0);
    let max_worker_perf =
        py_max_of(per_miner.iter().flat_map(|m| m.workers.iter().map(|w| w.explanation.perf))).unwrap_or(0.0);

    // Registered miners, in input (row) order.
    let active: Vec<usize> =
        (0..inputs.miners.len()).filter(|&i| uid_of.contains_key(inputs.miners[i].hotkey.as_str())).collect();
    let norm_of = |raw: Option<f64>| {
        let raw = raw.unwrap_or(0.0);
        if max_raw > 0.0 { py_min(1.0, py_max(0.0, raw / max_raw)) } else { 0.0 }
    };
    let avg_norm = if active.is_empty() {
        0.0
    } else {
        py_sum(active.iter().map(|&i| norm_of(per_miner[i].raw))) / active.len() as f64
    };

    // §4.5, §4.6.
    let offline_before = now.saturating_sub(MINER_OFFLINE_AFTER_MS);
    let mut explanations: Vec<MinerExplanation> = Vec::with_capacity(inputs.miners.len());
    for (miner, work) in inputs.miners.iter().zip(per_miner) {
        let uid = uid_of.get(miner.hotkey.as_str()).copied();
        let online = miner.last_heartbeat_ms.is_some_and(|t| t >= offline_before);
        let mut e = MinerExplanation {
            hotkey: miner.hotkey.clone(),
            uid,
            active: uid.is_some(),
            online,
            raw: work.raw.unwrap_or(0.0),
            scored_workers: work.workers.len() as u32,
            counted_workers: work.counted,
            workers_without_success: work.without_success,
            norm: 0.0,
            lease: 0.0,
            lease_workers: 0,
            effective_challenge: 0.0,
            score: 0.0,
            weight: 0.0,
            submitted_weight: 0.0,
            u16_weight: 0,
            availability_score: 0.0,
            workers: Vec::new(),
        };
        let availability_mean = work.availability_mean;
        e.workers = work.workers.into_iter().map(|w| w.explanation).collect();
        for w in &mut e.workers {
            w.score = if max_worker_perf > 0.0 { w.perf / max_worker_perf } else { 0.0 };
        }
        if e.active {
            e.norm = norm_of(work.raw);
            if online {
                let (lease, lease_workers) = lease_score(&miner.workers, params.worker_cap);
                e.lease = lease;
                e.lease_workers = lease_workers;
                e.effective_challenge = if lease > 0.0 { avg_norm } else { e.norm };
                if !(lease <= 0.0 && e.effective_challenge <= 0.0) {
                    e.score = e.effective_challenge * params.challenge_weight + lease * params.lease_weight;
                    e.availability_score = availability_mean.unwrap_or(0.0);
                }
            }
        }
        explanations.push(e);
    }

    // §4.7 normalisation over the registered miners, in row order.
    let scores: Vec<f64> = active.iter().map(|&i| explanations[i].score).collect();
    let mut uniform = false;
    if !scores.is_empty() {
        let n = scores.len() as f64;
        let weights: Vec<f64> = if py_max_of(scores.iter().copied()) == Some(0.0) {
            uniform = true;
            vec![1.0 / n; scores.len()]
        } else {
            let total = py_sum(scores.iter().copied());
            let mut w: Vec<f64> = scores
                .iter()
                .map(|&s| {
                    let w = if total > 0.0 { s / total } else { 1.0 / n };
                    py_max(0.0, py_min(1.0, w))
                })
                .collect();
            let total_weight = py_sum(w.iter().copied());
            if total_weight > 0.0 {
                for x in &mut w {
                    *x /= total_weight;
                }
            }
            w
        };
        for (&i, w) in active.iter().zip(weights) {
            let e = &mut explanations[i];
            e.weight = w;
            e.submitted_weight = if e.online { w } else { 0.0 };
        }
    }

    // §4.7 submission: registered miners by uid, offline ones at 0, nothing if no weight > 0.
    let mut by_uid: Vec<usize> = active.clone();
    by_uid.sort_by_key(|&i| explanations[i].uid);
    let submitted: Vec<(u16, f64)> =
        by_uid.iter().filter_map(|&i| explanations[i].uid.map(|uid| (uid, explanations[i].submitted_weight))).collect();
    let weights = if submitted.iter().any(|(_, w)| *w > 0.0) {
        convert_weights_and_uids_for_emit(&submitted)?
    } else {
        Vec::new()
    };
    let u16_by_uid: HashMap<u16, u16> = weights.iter().copied().collect();
    for &i in &active {
        let e = &mut explanations[i];
        e.u16_weight = e.uid.and_then(|uid| u16_by_uid.get(&uid).copied()).unwrap_or(0);
    }

    Ok(PassReport {
        at_ms: now,
        inputs_digest,
        params: params.clone(),
        participation_baseline: frame.baseline,
        expected_buckets: frame.expected_buckets,
        max_raw,
        avg_norm,
        max_worker_perf,
        uniform,
        miners: explanations,
        weights,
    })
}

/// The §4.2–§4.4 results of one miner.
struct MinerWork {
    /// Scored workers in ranking order.
    workers: Vec<ScoredWorker>,
    /// Σ top-cap perf, `None` without scored workers (absent from the original's map).
    raw: Option<f64>,
    counted: u32,
    without_success: u32,
    /// Mean availability of the scored workers, in ranking order.
    availability_mean: Option<f64>,
}

/// Reusable buffers, so a pass allocates little per worker.
struct Scratch<'a> {
    words: Vec<u64>,
    acc: Vec<u64>,
    required: Vec<&'a str>,
    ownership: Vec<(&'a str, bool)>,
    order: Vec<&'a ChallengeInput>,
}

impl<'a> Scratch<'a> {
    fn new(capacity: u64) -> Scratch<'a> {
        let words = capacity.div_ceil(64) as usize;
        Scratch {
            words: vec![0; words],
            acc: vec![0; words],
            required: Vec::new(),
            ownership: Vec::new(),
            order: Vec::new(),
        }
    }
}

fn check_capacities(miner: &MinerInput, capacity: u64, window_hours: u64) -> Result<(), ScoringError> {
    let bad = |have: u64| ScoringError::BitmapCapacity {
        hotkey: miner.hotkey.clone(),
        capacity: have,
        expected: capacity,
        window_hours,
    };
    for worker in &miner.workers {
        if worker.history.buckets.capacity() != capacity {
            return Err(bad(worker.history.buckets.capacity()));
        }
    }
    for (_, bitmap) in miner.gpu_presence.iter() {
        if bitmap.capacity() != capacity {
            return Err(bad(bitmap.capacity()));
        }
    }
    Ok(())
}

/// §4.2 and §4.3 for each worker of one miner, then its `raw` (§4.4).
fn score_miner_workers<'a>(
    miner: &'a MinerInput,
    frame: &Frame<'a>,
    params: &ScoringParams,
    scratch: &mut Scratch<'a>,
    digest: &mut DigestStream<'a>,
) -> Result<MinerWork, ScoringError> {
    let mut seen_workers: HashSet<&str> = HashSet::with_capacity(miner.workers.len());
    let mut scored: Vec<ScoredWorker> = Vec::new();
    let mut without_success = 0u32;
    for (index, worker) in miner.workers.iter().enumerate() {
        if !seen_workers.insert(worker.worker_id.as_str()) {
            return Err(ScoringError::DuplicateWorker {
                hotkey: miner.hotkey.clone(),
                worker_id: worker.worker_id.clone(),
            });
        }
        match score_worker(miner, worker, index, frame, scratch) {
            WorkerOutcome::Scored(w) => scored.push(*w),
            WorkerOutcome::NoSuccess => without_success += 1,
            WorkerOutcome::Absent => {}
        }
        // While its challenges are in cache.
        digest.worker(worker);
    }

    // The original's ranking order (logging, and the order of the availability mean):
    // participation desc, mean time asc, then first appearance in the newest-first list.
    scored.sort_by(|a, b| {
        b.participation_score
            .total_cmp(&a.participation_score)
            .then(a.explanation.avg_exec_ms.total_cmp(&b.explanation.avg_exec_ms))
            .then(b.newest_ms.cmp(&a.newest_ms))
            .then(a.index.cmp(&b.index))
    });
    let availability_mean = if scored.is_empty() {
        None
    } else {
        Some(py_sum(scored.iter().map(|w| w.explanation.availability)) / scored.len() as f64)
    };

    // `sorted(worker_scores, reverse=True)[:100]`, summed in that order.
    let mut perfs: Vec<(f64, usize)> = scored.iter().enumerate().map(|(i, w)| (w.explanation.perf, i)).collect();
    perfs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    perfs.truncate(params.worker_cap);
    for &(_, i) in &perfs {
        scored[i].explanation.counted = true;
    }
    let raw = if scored.is_empty() { None } else { Some(py_sum(perfs.iter().map(|p| p.0))) };
    Ok(MinerWork { raw, counted: perfs.len() as u32, without_success, availability_mean, workers: scored })
}

enum WorkerOutcome {
    /// Not in the original's worker list: no verified challenge in the window.
    Absent,
    /// Verified challenges, but no success (dropped).
    NoSuccess,
    Scored(Box<ScoredWorker>),
}

/// String equality that skips the bytes when both are the same allocation.
fn same_str(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

fn score_worker<'a>(
    miner: &'a MinerInput,
    worker: &'a WorkerInput,
    index: usize,
    frame: &Frame<'a>,
    scratch: &mut Scratch<'a>,
) -> WorkerOutcome {
    scratch.required.clear();
    scratch.ownership.clear();
    scratch.order.clear();

    // Newest first, as `ORDER BY created_at DESC`.
    let challenges: &'a [ChallengeInput] = &worker.challenges;
    let sorted = challenges.is_sorted_by_key(|c| c.created_at_ms);
    if !sorted {
        scratch.order.extend(challenges.iter());
        scratch.order.sort_by_key(|c| c.created_at_ms);
    }
    let mut newest_ms: Option<u64> = None;
    let mut attempts = 0u32;
    let mut skipped = 0u32;
    let mut successes = 0u32;
    let mut sum_t = 0.0f64;
    let mut total_success_count = 0u64;
    // A GPU worker commits the same set again and again, usually the very same allocation: the
    // last set seen, whether it is owned, and whether it is already in `required`.
    let mut last_set: Option<(&'a [String], bool)> = None;
    let mut last_required: Option<&'a [String]> = None;
    {
        let mut visit = |c: &'a ChallengeInput| -> bool {
            if c.created_at_ms < frame.ranking_start {
                return false; // older than the window, and so is everything after it
            }
            let set: &'a [String] = &c.gpu_uuids;
            // §4.3 step 4: committed GPUs of challenges with a true verification result, any
            // status, no ownership filter.
            if c.verification_result && !set.is_empty() && !last_required.is_some_and(|l| std::ptr::eq(l, set)) {
                for uuid in set.iter().filter(|u| is_gpu_uuid(u)) {
                    if !scratch.required.iter().any(|r| same_str(r, uuid)) {
                        scratch.required.push(uuid.as_str());
                    }
                }
                last_required = Some(set);
            }
            if !c.verified {
                return true;
            }
            newest_ms.get_or_insert(c.created_at_ms);
            // Ownership filter: every committed GPU must belong to this hotkey.
            let foreign = if set.is_empty() {
                false
            } else if let Some((_, owned)) = last_set.filter(|(l, _)| std::ptr::eq(*l, set)) {
                !owned
            } else {
                let mut foreign = false;
                for uuid in set.iter().filter(|u| is_gpu_uuid(u)) {
                    let uuid = uuid.as_str();
                    let owned = match scratch.ownership.iter().find(|(u, _)| same_str(u, uuid)) {
                        Some(&(_, owned)) => owned,
                        None => {
                            let owned = frame.owners.get(uuid).is_some_and(|owner| *owner == miner.hotkey);
                            scratch.ownership.push((uuid, owned));
                            owned
                        }
                    };
                    if !owned {
                        foreign = true;
                        break;
                    }
                }
                last_set = Some((set, !foreign));
                foreign
            };
            if foreign {
                skipped += 1;
                return true;
            }
            attempts += 1;
            if c.is_success
                && c.verification_result
                && let Some(time) = c.computation_time_ms
            {
                successes += 1;
                let count = if c.success_count == 0 { 1 } else { c.success_count };
                sum_t += time / f64::from(count);
                total_success_count += u64::from(count);
            }
            true
        };
        if sorted {
            for c in challenges.iter().rev() {
                if !visit(c) {
                    break;
                }
            }
        } else {
            let order = std::mem::take(&mut scratch.order);
            for &c in order.iter().rev() {
                if !visit(c) {
                    break;
                }
            }
            scratch.order = order;
        }
    }
    let Some(newest_ms) = newest_ms else { return WorkerOutcome::Absent };
    if successes == 0 {
        return WorkerOutcome::NoSuccess;
    }

    let avg_exec_ms = sum_t / f64::from(successes);
    // `1/T`, 0 for T ≤ 0, infinite or NaN.
    let base = if avg_exec_ms > 0.0 && avg_exec_ms.is_finite() { 1.0 / avg_exec_ms } else { 0.0 };
    let participation = if frame.baseline <= 0.0 { 1.0 } else { py_min(1.0, f64::from(successes) / frame.baseline) };
    let (availability, online_buckets, ip_changes) = availability(miner, worker, frame, scratch);
    let availability = py_max(0.0, py_min(1.0, availability));
    let perf = base * participation * availability;

    WorkerOutcome::Scored(Box::new(ScoredWorker {
        participation_score: py_min(frame.baseline, f64::from(successes)),
        newest_ms,
        index,
        explanation: WorkerExplanation {
            worker_id: worker.worker_id.clone(),
            lease_score: worker.lease_score,
            attempts,
            skipped_gpu_ownership: skipped,
            successes,
            participation_baseline: frame.baseline,
            avg_exec_ms,
            avg_exec_gpus: total_success_count as f64 / f64::from(successes),
            base,
            participation,
            availability,
            online_buckets,
            ip_changes,
            required_gpus: scratch.required.iter().map(|u| u.to_string()).collect(),
            perf,
            score: 0.0,
            counted: false,
        },
    }))
}

/// §4.3 for one worker: `(availability, online buckets, IP changes)`.
fn availability(
    miner: &MinerInput,
    worker: &WorkerInput,
    frame: &Frame<'_>,
    scratch: &mut Scratch<'_>,
) -> (f64, u32, u32) {
    let history = &worker.history;
    // Step 8: no heartbeat in the window → 0.
    if history.last_heartbeat_ms.is_none_or(|t| t < frame.availability_start) {
        return (0.0, 0, 0);
    }
    let online = if scratch.required.is_empty() {
        history.buckets.window_words(&frame.window, &mut scratch.words);
        scratch.words.iter().map(|w| w.count_ones()).sum::<u32>()
    } else {
        // Buckets in which the hotkey's heartbeats listed every required GPU.
        scratch.acc.fill(u64::MAX);
        for uuid in &scratch.required {
            match miner.gpu_presence.get(uuid) {
                Some(bitmap) => {
                    bitmap.window_words(&frame.window, &mut scratch.words);
                    for (a, w) in scratch.acc.iter_mut().zip(&scratch.words) {
                        *a &= *w;
                    }
                }
                None => scratch.acc.fill(0),
            }
        }
        scratch.acc.iter().map(|w| w.count_ones()).sum::<u32>()
    };
    let mut ratio = py_min(1.0, f64::from(online) / frame.expected_buckets as f64);
    let changes = history.ip.changes_since(frame.availability_start);
    if changes > 0 {
        let mut penalty = 0.5f64.powi(changes as i32);
        if penalty < 0.1 {
            penalty = 0.0;
        }
        ratio *= penalty;
    }
    (py_max(0.0, py_min(1.0, ratio)), online, changes)
}

/// §4.5: `(L, workers averaged)`. The miner's workers by lease score descending, at most `cap`;
/// `min(1, Σ / count)` if the sum is > 0, else 0.
///
/// A NaN lease score is read as SQLite, the original's default database, stores it: as NULL,
/// which sorts below every number and which `lease_score or 0.0` turns into 0.
fn lease_score(workers: &[WorkerInput], cap: usize) -> (f64, u32) {
    if workers.is_empty() {
        return (0.0, 0);
    }
    let mut leases: Vec<f64> = workers.iter().map(|w| w.lease_score).collect();
    leases.sort_by(|a, b| sqlite_order(*b, *a));
    leases.truncate(cap);
    let total = py_sum(leases.iter().map(|l| if l.is_nan() { 0.0 } else { *l }));
    let count = leases.len() as u32;
    if total > 0.0 { (py_min(1.0, total / f64::from(count)), count) } else { (0.0, count) }
}

/// SQLite's order of a REAL column where NaN was stored as NULL: NULL below every number, −0
/// equal to 0.
fn sqlite_order(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}
