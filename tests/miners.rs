//! Simulated miners speaking the ByteLeap protocol to a 3-node cluster: challenges issued by the
//! leader, committed, proven, verified on some member; cheats caught; a miner that loses its
//! node carries on with one re-handshake.

mod harness;

use std::sync::atomic::Ordering;
use std::time::Duration;

use validator_node::admin::pb;
use validator_node::axon::identity::Hotkey;
use validator_node::sim::dendrite::AxonTarget;
use validator_node::sim::miner::Behaviour;
use validator_node::sim::miner::SimMiner;

const FAST_CHALLENGES: &str = r#"
[validation]
challenge_interval = 5
challenge_timeout = 30
challenge_type = "cpu_matrix"
[validation.cpu]
matrix_size = 128
size_variance = 0.1
"#;

fn axons(cluster: &validator_node::devnet::LocalCluster, first: usize) -> Vec<AxonTarget> {
    let n = cluster.nodes.len();
    (0..n)
        .map(|k| {
            let node = &cluster.nodes[(first - 1 + k) % n];
            AxonTarget { addr: node.axon_addr, hotkey: cluster.hotkey.clone() }
        })
        .collect()
}

async fn counts(cluster: &validator_node::devnet::LocalCluster, node: usize) -> (u64, u64) {
    let s = cluster.status(node).await.unwrap();
    (s.challenges_verified, s.challenges_failed)
}

/// Registers one miner per behaviour (2 workers each, miner i on node 1 + i mod 3), sends their
/// heartbeats, and lets them poll and work until every worker got a challenge. Returns the
/// miners' hotkeys (ss58, in uid order) and the miners.
async fn miners_at_work(
    cluster: &validator_node::devnet::LocalCluster,
    behaviours: &[Behaviour],
) -> (Vec<String>, Vec<SimMiner>) {
    let keys: Vec<Hotkey> = behaviours.iter().map(|_| Hotkey::generate().0).collect();
    let ss58: Vec<String> = keys.iter().map(|k| k.ss58.clone()).collect();
    let refs: Vec<&str> = ss58.iter().map(String::as_str).collect();
    harness::load_metagraph(cluster, &refs).await;
    let mut miners: Vec<SimMiner> = keys
        .into_iter()
        .zip(behaviours.iter().copied())
        .enumerate()
        .map(|(i, (key, b))| SimMiner::new(key, axons(cluster, 1 + i % 3), 2, 0, b, None))
        .collect();
    for m in &mut miners {
        m.heartbeat().await.unwrap();
    }
    // Wait for the leader's issuing pass, then let every miner work.
    let wanted = 2 * behaviours.len();
    let mut got = 0;
    for _ in 0..40 {
        for m in &mut miners {
            got += m.poll_and_work().await.unwrap();
        }
        if got >= wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(got >= wanted, "every worker got a challenge: {got}");
    (ss58, miners)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_miners_are_verified_and_cheats_fail_on_any_member() {
    let mut options = harness::options(3);
    options.config_extra = FAST_CHALLENGES.into();
    let (_dir, cluster) = harness::start(options).await;
    let behaviours = [Behaviour::Honest, Behaviour::WrongRows, Behaviour::BadProofs, Behaviour::Honest];
    let (_, miners) = miners_at_work(&cluster, &behaviours).await;
    // Verdicts are replicated: every node reports them.
    harness::wait_for(Duration::from_secs(20), || async {
        let (verified, failed) = counts(&cluster, 2).await;
        verified >= 4 && failed >= 4
    })
    .await;
    let (verified, failed) = counts(&cluster, 3).await;
    assert_eq!((verified, failed), (4, 4), "honest workers verified, cheats failed");
    for m in &miners {
        assert_eq!(m.stats.rehandshakes.load(Ordering::Relaxed), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_keeps_working_across_a_leader_kill_with_at_most_one_rehandshake() {
    let mut options = harness::options(3);
    options.config_extra = FAST_CHALLENGES.into();
    let (_dir, mut cluster) = harness::start(options).await;
    let key = Hotkey::generate().0;
    harness::load_metagraph(&cluster, &[&key.ss58]).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    // The miner talks to the leader's axon first: the harder case (sessions, leadership and
    // the axon all move at once).
    let mut miner = SimMiner::new(key, axons(&cluster, leader), 1, 0, Behaviour::Honest, None);
    miner.heartbeat().await.unwrap();
    let mut worked = 0;
    for _ in 0..40 {
        worked += miner.poll_and_work().await.unwrap();
        if worked > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(worked > 0);
    let survivor = harness::all(&cluster).into_iter().find(|i| *i != leader).unwrap();
    let verified_before = counts(&cluster, survivor).await.0;
    cluster.kill(leader).unwrap();
    // Keep going: heartbeats and polls continue on the next node with one re-handshake.
    miner.heartbeat().await.expect("heartbeat after the kill");
    let mut after = 0;
    for _ in 0..60 {
        after += miner.poll_and_work().await.expect("poll after the kill");
        if after > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(after > 0, "challenges keep coming after the failover");
    assert!(miner.stats.failovers.load(Ordering::Relaxed) >= 1);
    assert_eq!(miner.stats.rehandshakes.load(Ordering::Relaxed), 1, "exactly one re-handshake");
    // The challenge worked after the failover is verified by the surviving members.
    harness::wait_for(Duration::from_secs(20), || async { counts(&cluster, survivor).await.0 > verified_before }).await;
    let mut c = cluster.client(survivor).await.unwrap();
    assert!(c.status(pb::Empty {}).await.is_ok());
}

/// The fan-out spreads a batch of proofs over every member, each verdict is committed, and the
/// ledger counts them on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_proofs_is_verified_across_all_members() {
    let mut options = harness::options(3);
    options.config_extra = "[validation]\nverification_workers = 1\n".into();
    let (_dir, cluster) = harness::start(options).await;
    // Dispatch from a follower: the spread must not depend on who leads.
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let from = if leader == 1 { 2 } else { 1 };
    let mut client = cluster.client(from).await.unwrap();
    let reply = client
        .run_verify_batch(pb::VerifyBatchRequest { jobs: 12, matrix_size: 128, iterations: 1, rows: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.verified, reply.failed, reply.errors), (12, 0, 0), "{}", reply.first_error);
    assert_eq!(reply.per_member.len(), 3, "every member verified some: {:?}", reply.per_member);
    assert_eq!(reply.per_member.values().sum::<u64>(), 12);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for node in 1..=3 {
        while counts(&cluster, node).await.0 < 12 {
            assert!(std::time::Instant::now() < deadline, "node-{node} never applied the 12 verdicts");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Nonsense is refused with the limit, not run.
    let err = client
        .run_verify_batch(pb::VerifyBatchRequest { jobs: 0, matrix_size: 128, iterations: 1, rows: 10 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .run_verify_batch(pb::VerifyBatchRequest { jobs: 1, matrix_size: 50, iterations: 1, rows: 10 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
}

/// The leader's scoring pass reads the replicated ledger (presence bitmaps, verified
/// challenges), records its weights and digest, and every member shows the same pass: honest
/// miners get weight, cheats none; any member explains each factor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_passes_weigh_honest_miners_and_every_member_shows_them() {
    let mut options = harness::options(3);
    options.config_extra = FAST_CHALLENGES.into();
    let (_dir, cluster) = harness::start(options).await;
    let behaviours = [Behaviour::Honest, Behaviour::BadProofs, Behaviour::Honest];
    let (ss58, _miners) = miners_at_work(&cluster, &behaviours).await;
    harness::wait_for(Duration::from_secs(20), || async {
        let (verified, failed) = counts(&cluster, 1).await;
        verified >= 4 && failed >= 2
    })
    .await;

    // Passes every second from now on (a hot setting), through a follower.
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let follower = harness::all(&cluster).into_iter().find(|i| *i != leader).unwrap();
    let mut c = cluster.client(follower).await.unwrap();
    c.put_setting(pb::PutSettingRequest { key: "scoring.interval_secs".into(), value: "1".into(), timeout_ms: 5000 })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let last = loop {
        let mut c = cluster.client(follower).await.unwrap();
        let reply = c.weights(pb::Empty {}).await.unwrap().into_inner();
        if reply.seq.is_some() && !reply.weights.is_empty() {
            break reply;
        }
        assert!(std::time::Instant::now() < deadline, "no scoring pass with weights within 30 s: {reply:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let weighted: Vec<&str> = last.weights.iter().map(|w| w.hotkey.as_str()).collect();
    assert_eq!(weighted, [ss58[0].as_str(), ss58[2].as_str()], "honest miners weighted, the cheat not: {last:?}");
    assert!(last.weights.iter().any(|w| w.weight == 65535), "the top miner gets u16::MAX: {last:?}");

    // Every member shows the same pass once it has applied it.
    let seq = last.seq;
    for node in harness::all(&cluster) {
        harness::wait_for(Duration::from_secs(10), || async {
            let mut c = cluster.client(node).await.unwrap();
            let r = c.weights(pb::Empty {}).await.unwrap().into_inner();
            r.seq >= seq
        })
        .await;
    }

    // Any member explains a miner's weight down to its workers.
    let mut c = cluster.client(follower).await.unwrap();
    let reply =
        c.explain_weights(pb::ExplainWeightsRequest { miner: Some(ss58[0].clone()) }).await.unwrap().into_inner();
    let report: serde_json::Value = serde_json::from_str(&reply.report_json).unwrap();
    let miner = &report["miners"][0];
    assert_eq!(miner["hotkey"], ss58[0].as_str());
    assert!(miner["workers"].as_array().is_some_and(|w| !w.is_empty()), "{miner}");
    assert!(miner["weight"].as_f64().is_some_and(|w| w > 0.0), "{miner}");
    let unknown = c.explain_weights(pb::ExplainWeightsRequest { miner: Some("5Nobody".into()) }).await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
}
