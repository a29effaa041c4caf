//! Tests of the scoring pass. Where a number comes from is said next to it:
//!
//! * byteleap-protocol.md §4.9 (worked example) and §9.6 (conversion vectors);
//! * `testdata/oracle_fixture.json`: scenarios run through the ORIGINAL validator's Python code
//!   (byteleap-Validator 87f9bce, bittensor 9.10.0's conversion, CPython 3.11.7) by
//!   `testdata/oracle.py`; the values are Python's `repr` of its floats, compared bit for bit;
//! * hand arithmetic on the §4 rules, for the small scenario tables.

use serde::Deserialize;

use super::*;

/// 2026-01-01T00:00:00Z: a multiple of 300 s, so `now − Wh` is on a bucket boundary and the
/// bucket window is exactly the original's (presence.rs module docs).
const NOW: u64 = 1_767_225_600_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

fn params() -> ScoringParams {
    ScoringParams::default()
}

/// `n` verified, successful CPU challenges of `ms` each, 4 minutes apart, oldest first.
fn cpu_challenges(n: u64, ms: f64) -> Vec<ChallengeInput> {
    (0..n)
        .map(|i| ChallengeInput {
            created_at_ms: NOW - (n - i) * 4 * MINUTE,
            computation_time_ms: Some(ms),
            gpu_uuids: vec!["-1".to_string()].into(),
            success_count: 1,
            verified: true,
            verification_result: true,
            is_success: true,
        })
        .collect()
}

fn gpu_challenges(n: u64, ms: f64, uuids: &[&str]) -> Vec<ChallengeInput> {
    cpu_challenges(n, ms)
        .into_iter()
        .map(|mut c| {
            c.gpu_uuids = uuids.iter().map(|u| u.to_string()).collect();
            c.success_count = uuids.len() as u32;
            c
        })
        .collect()
}

/// Heartbeats every 5 minutes from `from_ms` to just before `to_ms`.
fn history(from_ms: u64, to_ms: u64, ip: Option<&str>) -> WorkerHistory {
    let mut h = WorkerHistory::new(169);
    let mut t = from_ms;
    while t < to_ms {
        h.record(t, ip);
        t += 5 * MINUTE;
    }
    h
}

/// Present in every bucket of the 169 h window.
fn full_week() -> WorkerHistory {
    history(NOW - 169 * HOUR + 10_000, NOW, Some("203.0.113.1"))
}

fn worker(id: &str, lease: f64, history: WorkerHistory, challenges: Vec<ChallengeInput>) -> WorkerInput {
    WorkerInput { worker_id: id.into(), lease_score: lease, history, challenges }
}

fn miner(hotkey: &str, workers: Vec<WorkerInput>) -> MinerInput {
    MinerInput {
        hotkey: hotkey.into(),
        last_heartbeat_ms: Some(NOW - MINUTE),
        workers,
        gpu_presence: GpuPresence::new(169),
    }
}

fn inputs(miners: Vec<MinerInput>) -> PassInputs {
    PassInputs {
        now_ms: NOW,
        metagraph: miners.iter().map(|m| m.hotkey.clone()).collect(),
        miners,
        gpu_inventory: Vec::new(),
    }
}

fn explain<'a>(report: &'a PassReport, hotkey: &str) -> &'a MinerExplanation {
    report.miners.iter().find(|m| m.hotkey == hotkey).expect("miner in report")
}

fn only_worker<'a>(report: &'a PassReport, hotkey: &str) -> &'a WorkerExplanation {
    let m = explain(report, hotkey);
    assert_eq!(m.workers.len(), 1, "{hotkey}: {:?}", m.workers);
    &m.workers[0]
}

// ---------------------------------------------------------------------------------------------
// §9.6 and §4.9.

#[test]
fn conversion_vectors_of_section_9_6() {
    // §9.6: uids [1, 5, 7, 9], weights [0.5, 0.3, 0.2, 0.0] → uids [1, 5, 7], u16 [65535, 39321, 26214].
    let out = convert_weights_and_uids_for_emit(&[(1, 0.5), (5, 0.3), (7, 0.2), (9, 0.0)]).unwrap();
    assert_eq!(out, vec![(1, 65535), (5, 39321), (7, 26214)]);
    // §9.6: three equal weights → [65535, 65535, 65535].
    let third = 1.0 / 3.0;
    let out = convert_weights_and_uids_for_emit(&[(0, third), (1, third), (2, third)]).unwrap();
    assert_eq!(out, vec![(0, 65535), (1, 65535), (2, 65535)]);
    // §9.6: the worked example's weights (the original's floats, from the oracle run) → [44297, 65535].
    let out =
        convert_weights_and_uids_for_emit(&[(0, 0.40331807780320367), (1, 0.5966819221967964), (2, 0.0)]).unwrap();
    assert_eq!(out, vec![(0, 44297), (1, 65535)]);
}

#[test]
fn conversion_rounds_half_to_even_and_refuses_what_the_sdk_refuses() {
    // 0.5 · 65535 = 32767.5 exactly: Python's round gives the even 32768; 1.5/65535-ish cases
    // likewise. (w / max) · 65535 with max = 1.
    let out = convert_weights_and_uids_for_emit(&[(0, 1.0), (1, 0.5), (2, 0.5 / 65535.0)]).unwrap();
    assert_eq!(out, vec![(0, 65535), (1, 32768)], "0.5 rounds to 0 (even) and is dropped");
    let out = convert_weights_and_uids_for_emit(&[(0, 1.0), (1, 1.5 / 65535.0)]).unwrap();
    assert_eq!(out, vec![(0, 65535), (1, 2)], "1.5 rounds to 2");
    assert_eq!(convert_weights_and_uids_for_emit(&[(0, 0.0), (3, 0.0)]).unwrap(), vec![]);
    assert_eq!(convert_weights_and_uids_for_emit(&[]), Err(EmitError::Empty));
    assert!(matches!(
        convert_weights_and_uids_for_emit(&[(0, 1.0), (1, -0.1)]),
        Err(EmitError::Negative { uid: 1, .. })
    ));
    assert!(matches!(convert_weights_and_uids_for_emit(&[(0, f64::NAN)]), Err(EmitError::NotFinite { uid: 0, .. })));
    assert!(matches!(
        convert_weights_and_uids_for_emit(&[(0, f64::INFINITY), (1, 1.0)]),
        Err(EmitError::NotFinite { uid: 0, .. })
    ));
}

/// §4.9 with a 10 h availability window, so the example's availabilities are bucket counts:
/// 108, 120 and 60 of 120 buckets are exactly 0.9, 1.0 and 0.5.
fn worked_example_inputs() -> (PassInputs, ScoringParams) {
    let params = ScoringParams { availability_window_hours: 10, ..params() };
    let buckets = |n: u64| {
        let mut h = WorkerHistory::new(10);
        for i in 0..n {
            h.record(NOW - 10 * HOUR + i * 5 * MINUTE + 10_000, Some("198.51.100.7"));
        }
        h
    };
    let mut a = miner(
        "A",
        vec![
            worker("A1", 0.0, buckets(108), cpu_challenges(40, 2000.0)),
            worker("A2", 0.0, buckets(120), cpu_challenges(18, 1500.0)),
        ],
    );
    let mut b = miner(
        "B",
        vec![worker("B1", 0.0, buckets(60), cpu_challenges(36, 1000.0)), worker("B2", 0.8, buckets(120), Vec::new())],
    );
    let mut c = miner("C", Vec::new());
    for m in [&mut a, &mut b, &mut c] {
        m.gpu_presence = GpuPresence::new(10);
    }
    (inputs(vec![a, b, c]), params)
}

#[test]
fn worked_example_of_section_4_9() {
    let (inputs, params) = worked_example_inputs();
    let report = run_pass(&inputs, &params).unwrap();
    let (a, b, c) = (explain(&report, "A"), explain(&report, "B"), explain(&report, "C"));

    // Per worker (§4.9): perf = (1/T) · min(1, AP/36) · availability.
    let a1 = a.workers.iter().find(|w| w.worker_id == "A1").unwrap();
    assert_eq!((a1.successes, a1.avg_exec_ms, a1.availability, a1.participation), (40, 2000.0, 0.9, 1.0));
    assert_eq!(a1.perf, 0.00045000000000000004, "the original's float (oracle)");
    let a2 = a.workers.iter().find(|w| w.worker_id == "A2").unwrap();
    assert_eq!((a2.successes, a2.participation, a2.perf), (18, 0.5, 0.0003333333333333333));
    assert_eq!(report.participation_baseline, 36.0);

    // §4.9: raw_A = 0.000783…, raw_B = 0.0005; norm B = 0.6383, avg_norm = 0.5461.
    assert_eq!(a.raw, 0.0007833333333333334);
    assert_eq!(b.raw, 0.0005);
    assert_eq!(report.max_raw, a.raw);
    assert_eq!((a.norm, c.norm), (1.0, 0.0));
    assert_eq!(b.norm, 0.6382978723404256);
    assert_eq!(report.avg_norm, 0.5460992907801419);

    // §4.9: L_B = 0.8 / 2 = 0.4; B is leased so E_B = avg_norm; S_A = 0.3, S_B = 0.44383, S_C = 0.
    assert_eq!((b.lease, b.lease_workers), (0.4, 2));
    assert_eq!(b.effective_challenge, report.avg_norm);
    assert_eq!(a.score, 0.3);
    assert_eq!(b.score, 0.44382978723404254);
    assert_eq!(c.score, 0.0);

    // §4.9: w_A = 0.40332, w_B = 0.59668, w_C = 0; u16 A = 44297, B = 65535, C dropped.
    assert_eq!(a.weight, 0.40331807780320367);
    assert_eq!(b.weight, 0.5966819221967964);
    assert_eq!(c.weight, 0.0);
    assert_eq!(report.weights, vec![(0, 44297), (1, 65535)]);
    assert_eq!((a.u16_weight, b.u16_weight, c.u16_weight), (44297, 65535, 0));
    assert_eq!(a.availability_score, 0.95, "mean of 0.9 and 1.0 (oracle)");

    let pass = report.score_pass();
    assert_eq!(pass.at_ms, NOW);
    assert_eq!(pass.weights, vec![(0, 44297), (1, 65535)]);
    assert_eq!(pass.inputs_digest, inputs_digest(&inputs, &params));
}

// ---------------------------------------------------------------------------------------------
// The oracle: scenarios run through the original Python code.

#[derive(Deserialize)]
struct Fixture {
    scenarios: Vec<Scenario>,
}

#[derive(Deserialize)]
struct Scenario {
    name: String,
    now_ms: u64,
    metagraph: Vec<String>,
    miners: Vec<FxMiner>,
    workers: Vec<FxWorker>,
    heartbeats: Vec<FxHeartbeats>,
    gpu_inventory: Vec<FxGpu>,
    challenges: Vec<FxChallenge>,
    expected: Vec<Expected>,
}

#[derive(Deserialize)]
struct FxMiner {
    hotkey: String,
    last_heartbeat_ms: Option<u64>,
}

#[derive(Deserialize)]
struct FxWorker {
    hotkey: String,
    worker_id: String,
    lease_score: f64,
}

#[derive(Deserialize)]
struct FxHeartbeats {
    hotkey: String,
    worker_id: String,
    segments: Vec<FxSegment>,
}

#[derive(Deserialize)]
struct FxSegment {
    start_ms: u64,
    end_ms: u64,
    every_ms: u64,
    ip: Option<String>,
    gpu_info: serde_json::Value,
}

#[derive(Deserialize)]
struct FxGpu {
    uuid: String,
    hotkey: String,
    last_seen_ms: u64,
}

#[derive(Deserialize)]
struct FxChallenge {
    hotkey: String,
    worker_id: String,
    created_ms: u64,
    status: String,
    verification_result: Option<bool>,
    is_success: Option<bool>,
    computation_time_ms: Option<f64>,
    success_count: Option<u32>,
    uuids: Vec<String>,
}

#[derive(Deserialize)]
struct Expected {
    params: FxParams,
    max_raw: f64,
    avg_norm: f64,
    workers: Vec<FxWorkerScore>,
    raw: std::collections::BTreeMap<String, f64>,
    active_order: Vec<String>,
    miners: Vec<FxMinerScore>,
    submitted: Vec<(u16, u16)>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct FxParams {
    R: u64,
    I: u64,
    P: f64,
    Wh: u64,
    lw: f64,
    cw: f64,
}

#[derive(Deserialize)]
struct FxWorkerScore {
    hotkey: String,
    worker_id: String,
    availability: f64,
    perf: f64,
    avg_exec_ms: f64,
    successes: u32,
    attempts: u32,
    baseline: f64,
    avg_exec_gpus: f64,
}

#[derive(Deserialize)]
struct FxMinerScore {
    hotkey: String,
    score: f64,
    norm: f64,
    challenge_score: f64,
    lease_score: f64,
    availability_score: f64,
    weight: f64,
}

/// Builds the pass inputs the ledger would hold after the scenario's heartbeats, in the
/// original's active-miner order.
fn scenario_inputs(sc: &Scenario, expected: &Expected) -> PassInputs {
    let wh = expected.params.Wh;
    let mut order: Vec<&FxMiner> = Vec::new();
    for hotkey in &expected.active_order {
        order.push(sc.miners.iter().find(|m| &m.hotkey == hotkey).unwrap());
    }
    for m in &sc.miners {
        if !expected.active_order.contains(&m.hotkey) {
            order.push(m);
        }
    }
    let mut miners = Vec::new();
    for m in order {
        // Every heartbeat record of this hotkey, in time order (the original's row order).
        let mut records: Vec<(u64, &str, &FxSegment)> = Vec::new();
        for h in sc.heartbeats.iter().filter(|h| h.hotkey == m.hotkey) {
            for s in &h.segments {
                let mut t = s.start_ms;
                while t < s.end_ms {
                    records.push((t, h.worker_id.as_str(), s));
                    t += s.every_ms;
                }
            }
        }
        records.sort_by_key(|r| r.0);
        let mut presence = GpuPresence::new(wh);
        for (t, _, s) in &records {
            let uuids = gpu_uuids_from_gpu_info(&s.gpu_info);
            presence.record(*t, uuids.iter().map(String::as_str));
        }
        let workers = sc
            .workers
            .iter()
            .filter(|w| w.hotkey == m.hotkey)
            .map(|w| {
                let mut history = WorkerHistory::new(wh);
                for (t, id, s) in &records {
                    if *id == w.worker_id {
                        history.record(*t, s.ip.as_deref());
                    }
                }
                let mut challenges: Vec<ChallengeInput> = sc
                    .challenges
                    .iter()
                    .filter(|c| c.hotkey == w.hotkey && c.worker_id == w.worker_id)
                    .map(|c| ChallengeInput {
                        created_at_ms: c.created_ms,
                        computation_time_ms: c.computation_time_ms,
                        gpu_uuids: c.uuids.clone().into(),
                        success_count: c.success_count.unwrap_or(0),
                        verified: c.status == "verified",
                        verification_result: c.verification_result == Some(true),
                        is_success: c.is_success == Some(true),
                    })
                    .collect();
                challenges.sort_by_key(|c| c.created_at_ms);
                worker(&w.worker_id, w.lease_score, history, challenges)
            })
            .collect();
        miners.push(MinerInput {
            hotkey: m.hotkey.clone(),
            last_heartbeat_ms: m.last_heartbeat_ms,
            workers,
            gpu_presence: presence,
        });
    }
    PassInputs {
        now_ms: sc.now_ms,
        metagraph: sc.metagraph.clone(),
        miners,
        gpu_inventory: sc
            .gpu_inventory
            .iter()
            .map(|g| GpuOwner { uuid: g.uuid.clone(), hotkey: g.hotkey.clone(), last_seen_ms: g.last_seen_ms })
            .collect(),
    }
}

/// Bit-for-bit equality, with a readable failure.
#[track_caller]
fn same(what: &str, ours: f64, theirs: f64) {
    assert!(ours.to_bits() == theirs.to_bits(), "{what}: ours {ours:?}, the original's {theirs:?}");
}

#[test]
fn matches_the_original_python_bit_for_bit() {
    let fixture: Fixture = serde_json::from_str(include_str!("testdata/oracle_fixture.json")).unwrap();
    let mut checked = 0;
    for sc in &fixture.scenarios {
        for expected in &sc.expected {
            let p = &expected.params;
            let params = ScoringParams {
                ranking_window_minutes: p.R,
                challenge_interval: p.I,
                participation_rate_threshold: p.P,
                availability_window_hours: p.Wh,
                lease_weight: p.lw,
                challenge_weight: p.cw,
                worker_cap: WORKER_CAP,
            };
            let inputs = scenario_inputs(sc, expected);
            let report = run_pass(&inputs, &params).unwrap();
            let ctx = format!("{} {:?}", sc.name, (p.R, p.I, p.P, p.Wh, p.lw, p.cw));

            same(&format!("{ctx} max_raw"), report.max_raw, expected.max_raw);
            same(&format!("{ctx} avg_norm"), report.avg_norm, expected.avg_norm);

            let scored: usize = report.miners.iter().map(|m| m.workers.len()).sum();
            assert_eq!(scored, expected.workers.len(), "{ctx}: scored workers");
            for w in &expected.workers {
                let m = explain(&report, &w.hotkey);
                let ours = m
                    .workers
                    .iter()
                    .find(|x| x.worker_id == w.worker_id)
                    .unwrap_or_else(|| panic!("{ctx}: worker {}/{} not scored", w.hotkey, w.worker_id));
                let key = format!("{ctx} {}/{}", w.hotkey, w.worker_id);
                same(&format!("{key} availability"), ours.availability, w.availability);
                same(&format!("{key} avg_exec_ms"), ours.avg_exec_ms, w.avg_exec_ms);
                same(&format!("{key} avg_exec_gpus"), ours.avg_exec_gpus, w.avg_exec_gpus);
                same(&format!("{key} baseline"), ours.participation_baseline, w.baseline);
                same(&format!("{key} perf"), ours.perf, w.perf);
                assert_eq!((ours.successes, ours.attempts), (w.successes, w.attempts), "{key}");
                checked += 1;
            }
            for m in &report.miners {
                match expected.raw.get(&m.hotkey) {
                    Some(raw) => same(&format!("{ctx} {} raw", m.hotkey), m.raw, *raw),
                    None => assert_eq!(m.scored_workers, 0, "{ctx} {}", m.hotkey),
                }
            }
            for e in &expected.miners {
                let m = explain(&report, &e.hotkey);
                let key = format!("{ctx} {}", e.hotkey);
                assert!(m.active, "{key}");
                same(&format!("{key} norm"), m.norm, e.norm);
                same(&format!("{key} E"), m.effective_challenge, e.challenge_score);
                same(&format!("{key} L"), m.lease, e.lease_score);
                same(&format!("{key} S"), m.score, e.score);
                same(&format!("{key} availability_score"), m.availability_score, e.availability_score);
                same(&format!("{key} w"), m.weight, e.weight);
            }
            let active = report.miners.iter().filter(|m| m.active).count();
            assert_eq!(active, expected.miners.len(), "{ctx}: active miners");
            let mut submitted = expected.submitted.clone();
            submitted.sort_unstable();
            assert_eq!(report.weights, submitted, "{ctx}: u16 weights");
        }
    }
    assert!(checked > 200, "the fixture checks {checked} workers");
}

// ---------------------------------------------------------------------------------------------
// Scenario tables.

#[test]
fn ip_changes_halve_availability_and_the_fourth_zeroes_it() {
    // §4.3 step 7: c changes → 0.5^c, and 0 once that is below 0.1 (c ≥ 4).
    for (changes, expected) in [(0u32, 1.0), (1, 0.5), (2, 0.25), (3, 0.125), (4, 0.0), (5, 0.0)] {
        let mut h = full_week();
        for c in 0..changes {
            // Each change inside the window, after the full week of the same IP (whose last
            // heartbeat is at now − 290 s).
            h.record(NOW - 4 * MINUTE + u64::from(c) * 10_000, Some(&format!("198.51.100.{}", c + 10)));
        }
        let report =
            run_pass(&inputs(vec![miner("M", vec![worker("w", 0.0, h, cpu_challenges(36, 500.0))])]), &params())
                .unwrap();
        let w = only_worker(&report, "M");
        assert_eq!(w.ip_changes, changes.min(4));
        assert_eq!(w.availability, expected, "{changes} changes");
    }
}

#[test]
fn ip_walk_skips_missing_ips_and_changes_from_before_the_window() {
    let window_start = NOW - 169 * HOUR;
    let mut ip = IpTracker::default();
    ip.observe(window_start - 1, Some("a")); // before the window
    ip.observe(window_start + 1, Some("b")); // change from a row outside the window: not counted
    ip.observe(window_start + 2, None);
    ip.observe(window_start + 3, Some(""));
    ip.observe(window_start + 4, Some("b")); // same IP: no change
    assert_eq!(ip.changes_since(window_start), 0);
    ip.observe(window_start + 5, Some("c")); // b → c, previous row inside: counted
    ip.observe(window_start + 6, None);
    ip.observe(window_start + 7, Some("b")); // c → b (the None in between is skipped)
    assert_eq!(ip.changes_since(window_start), 2);
    assert_eq!(ip.last_ip(), Some("b"));
    // An hour later the first of them has left a window that started then.
    assert_eq!(ip.changes_since(window_start + 5), 1);
    // Only the last four are remembered: enough, since four already give 0.
    for i in 0..10 {
        ip.observe(window_start + 10 + i, Some(if i % 2 == 0 { "x" } else { "y" }));
    }
    assert_eq!(ip.changes_since(window_start), IP_CHANGES_TRACKED as u32);
}

#[test]
fn a_brand_new_worker_has_288_of_2028_buckets_and_a_silent_one_none() {
    // §4.3: "a worker with 24 h of history has at most 288/2028 ≈ 0.142".
    let day = history(NOW - 24 * HOUR + 7_000, NOW, Some("192.0.2.1"));
    // No heartbeat in the 169 h window (the last one a second before it starts) → 0 (§4.3 step 8).
    let silent = history(NOW - 200 * HOUR, NOW - 169 * HOUR - 1_000, Some("192.0.2.1"));
    let report = run_pass(
        &inputs(vec![
            miner("new", vec![worker("w", 0.0, day, cpu_challenges(36, 500.0))]),
            miner("silent", vec![worker("w", 0.0, silent, cpu_challenges(36, 500.0))]),
        ]),
        &params(),
    )
    .unwrap();
    let w = only_worker(&report, "new");
    assert_eq!(w.online_buckets, 288);
    assert_eq!(w.availability, 288.0 / 2028.0);
    let w = only_worker(&report, "silent");
    assert_eq!((w.availability, w.perf), (0.0, 0.0));
    // The silent worker's perf is 0, so the new one has everything.
    assert_eq!(explain(&report, "new").norm, 1.0);
}

#[test]
fn a_full_week_caps_at_one() {
    let report =
        run_pass(&inputs(vec![miner("M", vec![worker("w", 0.0, full_week(), cpu_challenges(45, 250.0))])]), &params())
            .unwrap();
    let w = only_worker(&report, "M");
    // Aligned now: 2029 buckets touch [now − 169 h, now]; min(1, 2029/2028) = 1.
    assert_eq!(w.online_buckets, 2028);
    assert_eq!(w.availability, 1.0);
    assert_eq!(w.perf, 1.0 / 250.0);
}

#[test]
fn gpu_challenges_need_their_uuids_owned_by_the_hotkey() {
    // §4.2: a GPU challenge is skipped if any UUID maps to another hotkey or is absent (or only
    // in a stale inventory row, older than R).
    let mut inventory = vec![
        GpuOwner { uuid: "GPU-own".into(), hotkey: "M".into(), last_seen_ms: NOW - 10 * MINUTE },
        GpuOwner { uuid: "GPU-theirs".into(), hotkey: "Other".into(), last_seen_ms: NOW - 10 * MINUTE },
        GpuOwner { uuid: "GPU-stale".into(), hotkey: "M".into(), last_seen_ms: NOW - 181 * MINUTE },
    ];
    let mut m = miner(
        "M",
        vec![
            worker("own", 0.0, full_week(), gpu_challenges(36, 800.0, &["GPU-own"])),
            worker("theirs", 0.0, full_week(), gpu_challenges(36, 800.0, &["GPU-own", "GPU-theirs"])),
            worker("absent", 0.0, full_week(), gpu_challenges(36, 800.0, &["GPU-nowhere"])),
            worker("stale", 0.0, full_week(), gpu_challenges(36, 800.0, &["GPU-stale"])),
            worker("cpu", 0.0, full_week(), cpu_challenges(36, 800.0)),
        ],
    );
    // The hotkey's heartbeats list its GPUs in every bucket.
    let mut t = NOW - 169 * HOUR + 10_000;
    while t < NOW {
        m.gpu_presence.record(t, ["GPU-own", "GPU-theirs", "GPU-stale", "GPU-nowhere"]);
        t += 5 * MINUTE;
    }
    let mut pass_inputs = inputs(vec![m, miner("Other", Vec::new())]);
    pass_inputs.gpu_inventory = inventory.clone();
    let report = run_pass(&pass_inputs, &params()).unwrap();
    let m = explain(&report, "M");
    let ids: Vec<&str> = m.workers.iter().map(|w| w.worker_id.as_str()).collect();
    assert_eq!(m.scored_workers, 2, "{ids:?}");
    let own = m.workers.iter().find(|w| w.worker_id == "own").unwrap();
    assert_eq!((own.attempts, own.successes, own.availability), (36, 36, 1.0));
    assert_eq!(own.required_gpus, vec!["GPU-own".to_string()]);
    assert_eq!(own.perf, 1.0 / 800.0, "t_norm = 800 ms / 1 GPU");
    assert!(m.workers.iter().any(|w| w.worker_id == "cpu"));
    // The other three had verified challenges (all skipped), so the original lists and drops them.
    assert_eq!(m.workers_without_success, 3);

    // The same UUID reassigned to "Other" (last writer wins in the inventory): now skipped too.
    inventory[0].hotkey = "Other".into();
    pass_inputs.gpu_inventory = inventory;
    let report = run_pass(&pass_inputs, &params()).unwrap();
    assert_eq!(explain(&report, "M").scored_workers, 1);
    assert_eq!(explain(&report, "M").workers_without_success, 4);
}

#[test]
fn gpu_availability_counts_buckets_with_every_committed_gpu() {
    let mut m = miner("M", vec![worker("g", 0.0, full_week(), gpu_challenges(36, 900.0, &["GPU-1", "GPU-2"]))]);
    // GPU-1 listed in every bucket, GPU-2 only in the last 24 h (by another worker of the
    // hotkey: presence is per hotkey).
    let mut t = NOW - 169 * HOUR + 10_000;
    while t < NOW {
        m.gpu_presence.record(t, ["GPU-1"]);
        if t >= NOW - 24 * HOUR {
            m.gpu_presence.record(t, ["GPU-2"]);
        }
        t += 5 * MINUTE;
    }
    let mut pass_inputs = inputs(vec![m]);
    pass_inputs.gpu_inventory = ["GPU-1", "GPU-2"]
        .iter()
        .map(|u| GpuOwner { uuid: u.to_string(), hotkey: "M".into(), last_seen_ms: NOW })
        .collect();
    let report = run_pass(&pass_inputs, &params()).unwrap();
    let w = only_worker(&report, "M");
    assert_eq!(w.online_buckets, 288);
    assert_eq!(w.availability, 288.0 / 2028.0);
    // t_norm = 900 / 2 GPUs.
    assert_eq!(w.avg_exec_ms, 450.0);
    assert_eq!(w.avg_exec_gpus, 2.0);
}

#[test]
fn leased_miners_use_the_average_norm() {
    // Two miners; L's workers are leased (0.6 and 0.2 → L = 0.4) and it has challenges of its
    // own, yet its E is avg_norm, not its norm.
    let fast = miner("fast", vec![worker("w", 0.0, full_week(), cpu_challenges(36, 100.0))]);
    let leased = miner(
        "leased",
        vec![worker("w1", 0.6, full_week(), cpu_challenges(36, 400.0)), worker("w2", 0.2, full_week(), Vec::new())],
    );
    let report = run_pass(&inputs(vec![fast, leased]), &params()).unwrap();
    let l = explain(&report, "leased");
    assert_eq!(l.norm, 0.25);
    assert_eq!(report.avg_norm, (1.0 + 0.25) / 2.0);
    assert_eq!((l.lease, l.lease_workers), (0.4, 2));
    assert_eq!(l.effective_challenge, report.avg_norm);
    assert_eq!(l.score, 0.625 * 0.3 + 0.4 * 0.7);
    assert_eq!(explain(&report, "fast").score, 0.3);
}

#[test]
fn lease_average_dilutes_over_at_most_100_workers_and_needs_a_positive_sum() {
    // §4.5: the top 100 by lease score, averaged over min(100, count).
    let mut workers: Vec<WorkerInput> =
        (0..150).map(|i| worker(&format!("w{i}"), 0.0, WorkerHistory::new(169), Vec::new())).collect();
    workers[7].lease_score = 50.0;
    workers[8].lease_score = 30.0;
    let report = run_pass(&inputs(vec![miner("M", workers)]), &params()).unwrap();
    let m = explain(&report, "M");
    assert_eq!((m.lease, m.lease_workers), (0.8, 100));

    // Negative and positive cancelling: sum 0 → L = 0; a huge lease caps at 1; NaN is SQLite's
    // NULL (0, still counted); +∞ → 1; +∞ and −∞ → NaN sum → 0.
    for (leases, expected) in [
        (vec![0.5, -0.5], 0.0),
        (vec![7.0, 0.0], 1.0),
        (vec![f64::NAN, 0.9], 0.45),
        (vec![f64::INFINITY, 0.1], 1.0),
        (vec![f64::INFINITY, f64::NEG_INFINITY], 0.0),
    ] {
        let workers: Vec<WorkerInput> = leases
            .iter()
            .enumerate()
            .map(|(i, l)| worker(&format!("w{i}"), *l, WorkerHistory::new(169), Vec::new()))
            .collect();
        let report = run_pass(&inputs(vec![miner("M", workers)]), &params()).unwrap();
        assert_eq!(explain(&report, "M").lease, expected, "{leases:?}");
    }
    // NULL sorts last: with 100 other leased workers the NaN one falls out of the top 100.
    let mut workers: Vec<WorkerInput> =
        (0..100).map(|i| worker(&format!("w{i}"), 0.5, WorkerHistory::new(169), Vec::new())).collect();
    workers.insert(0, worker("nan", f64::NAN, WorkerHistory::new(169), Vec::new()));
    let report = run_pass(&inputs(vec![miner("M", workers)]), &params()).unwrap();
    assert_eq!(explain(&report, "M").lease, 0.5);
}

#[test]
fn offline_miners_score_zero_and_submit_zero() {
    // §4.0 and §4.6: 30 min without a heartbeat → offline → S = 0. Exactly 30 min is online.
    let mut late = miner("late", vec![worker("w", 0.0, full_week(), cpu_challenges(36, 100.0))]);
    late.last_heartbeat_ms = Some(NOW - 30 * MINUTE - 1);
    let mut edge = miner("edge", vec![worker("w", 0.0, full_week(), cpu_challenges(36, 200.0))]);
    edge.last_heartbeat_ms = Some(NOW - 30 * MINUTE);
    let mut never = miner("never", vec![worker("w", 0.9, full_week(), Vec::new())]);
    never.last_heartbeat_ms = None;
    let report = run_pass(&inputs(vec![late, edge, never]), &params()).unwrap();
    let (late, edge, never) = (explain(&report, "late"), explain(&report, "edge"), explain(&report, "never"));
    assert!(!late.online && edge.online && !never.online);
    // The offline miner still sets max_raw and keeps its norm on record.
    assert_eq!((late.norm, late.score, late.lease, late.weight), (1.0, 0.0, 0.0, 0.0));
    assert_eq!(never.lease, 0.0, "lease is not computed for an offline miner");
    assert_eq!(edge.norm, 0.5);
    assert_eq!(edge.weight, 1.0);
    assert_eq!(report.weights, vec![(1, 65535)]);
}

#[test]
fn all_zero_scores_give_uniform_weights_but_offline_miners_submit_zero() {
    // §4.7: max S = 0 → 1/N for every registered miner, including ones without work.
    let mut off = miner("off", Vec::new());
    off.last_heartbeat_ms = Some(NOW - HOUR);
    let report = run_pass(&inputs(vec![miner("a", Vec::new()), miner("b", Vec::new()), off]), &params()).unwrap();
    assert!(report.uniform);
    for m in &report.miners {
        assert_eq!(m.weight, 1.0 / 3.0);
    }
    assert_eq!(explain(&report, "off").submitted_weight, 0.0);
    assert_eq!(report.weights, vec![(0, 65535), (1, 65535)]);

    // Everybody offline: nothing to submit (§4.7 step 3).
    let mut a = miner("a", Vec::new());
    a.last_heartbeat_ms = None;
    let report = run_pass(&inputs(vec![a]), &params()).unwrap();
    assert!(report.uniform);
    assert!(report.weights.is_empty());
}

#[test]
fn only_the_top_100_workers_count() {
    // 101 workers: 100 at 1/100 ms, one at 1/50 ms. raw = the 1/50 one + 99 of the others.
    let mut workers: Vec<WorkerInput> =
        (0..100).map(|i| worker(&format!("w{i}"), 0.0, full_week(), cpu_challenges(36, 100.0))).collect();
    workers.push(worker("fast", 0.0, full_week(), cpu_challenges(36, 50.0)));
    let report = run_pass(&inputs(vec![miner("M", workers)]), &params()).unwrap();
    let m = explain(&report, "M");
    assert_eq!((m.scored_workers, m.counted_workers), (101, 100));
    let expected = std::iter::once(1.0 / 50.0).chain(std::iter::repeat_n(1.0 / 100.0, 99)).fold(0.0, |a, b| a + b);
    assert_eq!(m.raw, expected);
    assert_eq!(m.workers.iter().filter(|w| !w.counted).count(), 1);
}

#[test]
fn unregistered_hotkeys_still_set_max_raw() {
    // §4.4: max_raw over every hotkey with verified challenges, in the metagraph or not.
    let gone = miner("gone", vec![worker("w", 0.0, full_week(), cpu_challenges(36, 100.0))]);
    let here = miner("here", vec![worker("w", 0.0, full_week(), cpu_challenges(36, 400.0))]);
    let mut pass_inputs = inputs(vec![gone, here]);
    pass_inputs.metagraph = vec!["here".into()];
    let report = run_pass(&pass_inputs, &params()).unwrap();
    assert_eq!(report.max_raw, 0.01);
    let here = explain(&report, "here");
    assert_eq!((here.norm, here.uid), (0.25, Some(0)));
    assert_eq!(report.avg_norm, 0.25);
    assert!(!explain(&report, "gone").active);
    assert_eq!(report.weights, vec![(0, 65535)]);
}

#[test]
fn participation_failures_and_success_counts() {
    // §4.2: only verified challenges count; a success needs is_success, verification_result and
    // a time; success_count 0 counts as 1; a worker without successes is dropped.
    let mut challenges = cpu_challenges(20, 600.0);
    challenges[0].verified = false; // failed status: ignored entirely
    challenges[1].is_success = false; // an attempt, not a success
    challenges[2].computation_time_ms = None; // likewise
    challenges[3].success_count = 0; // counts as 1
    challenges[4].created_at_ms = NOW - 181 * MINUTE; // outside R
    let mut failing = cpu_challenges(5, 100.0);
    for c in &mut failing {
        c.is_success = false;
    }
    let report = run_pass(
        &inputs(vec![miner(
            "M",
            vec![worker("w", 0.0, full_week(), challenges), worker("bad", 0.0, full_week(), failing)],
        )]),
        &params(),
    )
    .unwrap();
    let m = explain(&report, "M");
    assert_eq!(m.workers_without_success, 1);
    let w = only_worker(&report, "M");
    assert_eq!((w.attempts, w.successes), (18, 16));
    assert_eq!(w.participation, 16.0 / 36.0);
    assert_eq!(w.avg_exec_ms, 600.0);
}

#[test]
fn non_finite_times_give_zero_perf_not_a_panic() {
    let mut nan = cpu_challenges(36, 500.0);
    nan[3].computation_time_ms = Some(f64::NAN);
    let mut inf = cpu_challenges(36, 500.0);
    inf[3].computation_time_ms = Some(f64::INFINITY);
    let mut neg = cpu_challenges(1, -5.0);
    neg[0].success_count = 1;
    let report = run_pass(
        &inputs(vec![
            miner("nan", vec![worker("w", 0.0, full_week(), nan)]),
            miner("inf", vec![worker("w", 0.0, full_week(), inf)]),
            miner("neg", vec![worker("w", 0.0, full_week(), neg)]),
        ]),
        &params(),
    )
    .unwrap();
    for hotkey in ["nan", "inf", "neg"] {
        assert_eq!(only_worker(&report, hotkey).perf, 0.0, "{hotkey}");
    }
    assert!(report.uniform);
}

#[test]
fn unsorted_challenges_are_read_newest_first() {
    let sorted = cpu_challenges(36, 300.0);
    let mut varied: Vec<ChallengeInput> = sorted
        .iter()
        .enumerate()
        .map(|(i, c)| ChallengeInput { computation_time_ms: Some(300.0 + (i as f64) * 0.1), ..c.clone() })
        .collect();
    let reference =
        run_pass(&inputs(vec![miner("M", vec![worker("w", 0.0, full_week(), varied.clone())])]), &params()).unwrap();
    varied.reverse();
    varied.swap(3, 17);
    let shuffled = run_pass(&inputs(vec![miner("M", vec![worker("w", 0.0, full_week(), varied)])]), &params()).unwrap();
    assert_eq!(only_worker(&reference, "M").avg_exec_ms, only_worker(&shuffled, "M").avg_exec_ms);
    assert_ne!(reference.inputs_digest, shuffled.inputs_digest, "the order given is part of the inputs");
}

#[test]
fn weights_can_be_changed_between_passes() {
    // Hot-reloadable: the parameters are per pass, and lw + cw need not be 1.
    let (inputs, params) = worked_example_inputs();
    let first = run_pass(&inputs, &params).unwrap();
    let tuned = ScoringParams { lease_weight: 0.9, challenge_weight: 0.1, ..params.clone() };
    let second = run_pass(&inputs, &tuned).unwrap();
    assert_ne!(first.weights, second.weights);
    assert_ne!(first.inputs_digest, second.inputs_digest);
    let doubled = ScoringParams { lease_weight: 1.4, challenge_weight: 0.6, ..params };
    let third = run_pass(&inputs, &doubled).unwrap();
    assert_eq!(first.weights, third.weights, "scaling both weights changes nothing after normalisation");
}

#[test]
fn bad_inputs_are_typed_errors() {
    let bad = |p: ScoringParams| run_pass(&inputs(Vec::new()), &p).unwrap_err();
    assert!(matches!(bad(ScoringParams { lease_weight: f64::NAN, ..params() }), ScoringError::BadParameter { .. }));
    assert!(matches!(
        bad(ScoringParams { participation_rate_threshold: 0.05, ..params() }),
        ScoringError::BadParameter { .. }
    ));
    assert!(matches!(bad(ScoringParams { challenge_interval: 0, ..params() }), ScoringError::BadParameter { .. }));
    assert!(matches!(
        bad(ScoringParams { availability_window_hours: 0, ..params() }),
        ScoringError::BadParameter { .. }
    ));

    let twice = inputs(vec![miner("M", Vec::new()), miner("M", Vec::new())]);
    assert!(matches!(run_pass(&twice, &params()), Err(ScoringError::DuplicateMiner { .. })));
    let twice = inputs(vec![miner(
        "M",
        vec![worker("w", 0.0, full_week(), Vec::new()), worker("w", 0.0, full_week(), Vec::new())],
    )]);
    assert!(matches!(run_pass(&twice, &params()), Err(ScoringError::DuplicateWorker { .. })));
    let mut gpus = inputs(Vec::new());
    gpus.gpu_inventory = vec![
        GpuOwner { uuid: "G".into(), hotkey: "a".into(), last_seen_ms: NOW },
        GpuOwner { uuid: "G".into(), hotkey: "b".into(), last_seen_ms: NOW },
    ];
    assert!(matches!(run_pass(&gpus, &params()), Err(ScoringError::DuplicateGpu { .. })));
    let short = inputs(vec![miner("M", vec![worker("w", 0.0, WorkerHistory::new(24), Vec::new())])]);
    assert!(matches!(run_pass(&short, &params()), Err(ScoringError::BitmapCapacity { .. })));
}

// ---------------------------------------------------------------------------------------------
// Bitmaps, digest, helpers.

#[test]
fn bucket_window_is_exact_on_a_boundary_and_drops_the_straddling_bucket_otherwise() {
    let b = NOW / BUCKET_MS;
    assert_eq!(bucket_window(NOW, 169), (b - 2028, b));
    assert_eq!(bucket_window(NOW + 1, 169), (b - 2027, b));
    assert_eq!(bucket_window(NOW + BUCKET_MS - 1, 169), (b - 2027, b));
    assert_eq!(BucketBitmap::for_window_hours(169).capacity(), 2048);
}

#[test]
fn bitmap_rolls_forward_in_fixed_memory() {
    let mut bitmap = BucketBitmap::for_window_hours(169);
    let start = 5_000_000u64;
    // Every third bucket for three weeks: the ring wraps several times.
    for b in (start..start + 3 * 2016).step_by(3) {
        bitmap.mark_bucket(b);
    }
    let newest = bitmap.newest().unwrap();
    assert_eq!(newest, start + 3 * 2016 - 3);
    // The window of the last 2029 buckets holds exactly the marks made in it.
    let first = newest - 2028;
    let expected = (first..=newest).filter(|b| (b - start).is_multiple_of(3)).count() as u32;
    assert_eq!(bitmap.count(first, newest), expected);
    assert!(bitmap.contains(newest) && !bitmap.contains(newest - 1));
    assert!(!bitmap.contains(newest - 2048), "rolled out of the ring");
    // Old marks arriving late are ignored; recent ones are set in place.
    bitmap.mark_bucket(newest - 5000);
    bitmap.mark_bucket(newest - 1);
    assert_eq!(bitmap.count(first, newest), expected + 1);

    // A jump forward by more than the ring clears it; by less, only the rolled-over buckets.
    let mut jump = bitmap.clone();
    jump.mark_bucket(newest + 10_000);
    assert_eq!(jump.count(newest + 10_000 - 2047, newest + 10_000), 1);
    assert_eq!(jump.count(0, newest + 9_999), 0);
    let mut step = bitmap.clone();
    step.mark_bucket(newest + 100);
    assert_eq!(step.count(newest + 100 - 2047, newest + 100), bitmap.count(newest + 100 - 2047, newest) + 1);
    // A window ending in the past of the newest mark counts only what the ring still holds.
    assert_eq!(step.count(newest + 100 - 4000, newest + 99), bitmap.count(newest + 101 - 2048, newest));
}

#[test]
fn the_window_edge_moves_with_now() {
    // A worker seen in exactly one bucket 169 h ago: counted while that bucket starts at or after
    // now − 169 h, dropped one bucket later.
    let mut h = WorkerHistory::new(169);
    let seen = NOW - 169 * HOUR + 1_000;
    h.record(seen, None);
    h.record(NOW - MINUTE, None); // and once recently
    let run = |now: u64, h: &WorkerHistory| {
        let mut p = inputs(vec![miner("M", vec![worker("w", 0.0, h.clone(), cpu_challenges(36, 500.0))])]);
        p.now_ms = now;
        p.miners[0].last_heartbeat_ms = Some(now);
        run_pass(&p, &params()).unwrap().miners[0].workers[0].online_buckets
    };
    assert_eq!(run(NOW, &h), 2);
    assert_eq!(run(NOW + 1, &h), 1, "the old bucket now straddles the window start");
    assert_eq!(run(NOW + BUCKET_MS, &h), 1);
}

#[test]
fn digest_covers_what_the_pass_reads_and_nothing_else() {
    let (inputs, params) = worked_example_inputs();
    let d = inputs_digest(&inputs, &params);
    assert_eq!(d, inputs_digest(&inputs.clone(), &params));
    let mut changed = inputs.clone();
    changed.miners[0].workers[0].challenges[5].computation_time_ms = Some(2001.0);
    assert_ne!(inputs_digest(&changed, &params), d);
    let mut changed = inputs.clone();
    changed.miners[1].last_heartbeat_ms = Some(NOW - 2 * MINUTE);
    assert_ne!(inputs_digest(&changed, &params), d);
    // A challenge older than R, a heartbeat bucket older than Wh, an inventory row older than R:
    // none can change the result, none changes the digest.
    let mut ignored = inputs.clone();
    let mut old = ignored.miners[0].workers[0].challenges[0].clone();
    old.created_at_ms = NOW - 200 * MINUTE;
    ignored.miners[0].workers[0].challenges.insert(0, old);
    ignored.miners[0].workers[1].history.buckets.mark(NOW - 11 * HOUR);
    ignored.gpu_inventory.push(GpuOwner { uuid: "G".into(), hotkey: "A".into(), last_seen_ms: NOW - 4 * HOUR });
    assert_eq!(inputs_digest(&ignored, &params), d);
    assert_eq!(run_pass(&ignored, &params).unwrap().weights, run_pass(&inputs, &params).unwrap().weights);
}

#[test]
fn gpu_uuids_are_read_like_the_original() {
    let info = serde_json::json!([
        {"uuid": "GPU-a"},
        {"uuid": "", "gpu_uuid": "GPU-b"},
        {"uuid": null, "gpu_uuid": null, "id": "GPU-c"},
        {"uuid": 17, "gpu_uuid": "GPU-not-taken"},
        {"uuid": "-1"},
        {"uuid": "GPU-a"},
        "not an object",
        {"name": "no uuid"}
    ]);
    assert_eq!(gpu_uuids_from_gpu_info(&info), vec!["GPU-a", "GPU-b", "GPU-c"]);
    assert!(gpu_uuids_from_gpu_info(&serde_json::json!({"uuid": "x"})).is_empty());
}

#[test]
fn gpu_presence_forgets_uuids_outside_the_window() {
    let mut p = GpuPresence::new(169);
    p.record(NOW - 200 * HOUR, ["old"]);
    p.record(NOW - HOUR, ["new", "-1", ""]);
    assert_eq!(p.len(), 2);
    p.prune(NOW);
    assert_eq!(p.iter().map(|(u, _)| u).collect::<Vec<_>>(), vec!["new"]);
}

#[test]
fn the_report_serialises_for_explain_weights() {
    let (inputs, params) = worked_example_inputs();
    let report = run_pass(&inputs, &params).unwrap();
    let json = serde_json::to_string(&report).unwrap();
    let back: PassReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
}
