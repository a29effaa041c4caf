//! Bad input against a running node's axon: every kind gets its documented answer, nothing
//! panics, and memory stays bounded under a flood of junk (byteleap-protocol.md §2.9, §8.4).

mod harness;

use std::time::Duration;

use serde_json::json;
use validator_node::axon::http::Synapse;
use validator_node::axon::identity::Hotkey;
use validator_node::sim::dendrite::AxonTarget;
use validator_node::sim::dendrite::CallOptions;
use validator_node::sim::dendrite::Dendrite;
use validator_node::sim::miner::Behaviour;
use validator_node::sim::miner::SimMiner;
use validator_node::sim::session::MinerSession;
use validator_node::sim::session::Outcome;

const T: Duration = Duration::from_secs(10);

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn open_session(d: &Dendrite, target: &AxonTarget) -> MinerSession {
    let mut session = MinerSession::new(&d.hotkey.ss58, &target.hotkey);
    let request = session.handshake_request();
    let reply = d.call(target, Synapse::SessionInit, Some(&request), T, &CallOptions::default()).await.unwrap();
    session.complete_handshake(reply.response.as_deref().unwrap()).unwrap();
    session
}

async fn encrypted(d: &Dendrite, target: &AxonTarget, synapse: Synapse, package: &str) -> String {
    let reply = d.call(target, synapse, Some(package), T, &CallOptions::default()).await.unwrap();
    assert_eq!(reply.status, 200, "{:?}", reply.message);
    reply.response.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_gets_its_answer_and_memory_stays_bounded() {
    let (_dir, mut cluster) = harness::start(harness::options(3)).await;
    let alice = Hotkey::generate().0;
    let bob = Hotkey::generate().0;
    // A registered hotkey that floods: its junk passes the allow-list and the signature check
    // and reaches the sessions, where it is refused.
    let (flooder, flooder_seed) = Hotkey::generate();
    harness::load_metagraph(&cluster, &[&alice.ss58, &bob.ss58, &flooder.ss58]).await;
    let node = &cluster.nodes[1];
    let target = AxonTarget { addr: node.axon_addr, hotkey: cluster.hotkey.clone() };
    let pid = node.pid().unwrap();
    let d = Dendrite::new(alice);
    let ok = CallOptions::default();

    // Bodies: truncated, not UTF-8, deeply nested, not an object, `request` not a string.
    for body in [
        br#"{"request": "abc"#.to_vec(),
        vec![0xff, 0xfe, 0x00, 0x9f],
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        b"42".to_vec(),
        br#"{"request": {"nested": true}}"#.to_vec(),
    ] {
        let reply =
            d.call(&target, Synapse::Task, None, T, &CallOptions { raw_body: Some(body), ..ok.clone() }).await.unwrap();
        assert_eq!(reply.status, 400, "{:?}", reply.message);
    }
    // Timeouts that are not numbers a Duration can hold (a NaN once panicked the handler; found by
    // fuzz/axon_request): answered, not dropped.
    for timeout in ["NaN", "inf", "-inf", "-1", "1e400", "twelve"] {
        let options = CallOptions {
            raw_body: Some(br#"{"request": ""}"#.to_vec()),
            timeout_header: Some(timeout.into()),
            ..ok.clone()
        };
        let reply = d.call(&target, Synapse::Task, None, T, &options).await;
        let reply = reply.unwrap_or_else(|e| panic!("timeout {timeout:?}: no answer: {e}"));
        assert!(matches!(reply.status, 200 | 400), "timeout {timeout:?}: {} {:?}", reply.status, reply.message);
    }
    // Oversized.
    // (On its own client: the server answers 413 and closes the connection mid-upload.)
    let big = CallOptions { raw_body: Some(vec![b'x'; 9 << 20]), ..ok.clone() };
    let uploader = Dendrite::new(Hotkey::generate().0);
    match uploader.call(&target, Synapse::Heartbeat, None, T, &big).await {
        Ok(reply) => assert!(reply.status == 413 || reply.status == 403, "{}", reply.status),
        Err(e) => assert!(e.to_string().contains("SendRequest") || e.to_string().contains("closed"), "{e}"),
    }

    let mut session = open_session(&d, &target).await;
    // NaN-laden payload (Python's json.dumps writes NaN/Infinity): handled, not a crash.
    let nan_heartbeat = json!({"workers": [{"worker_id": "w1", "system_info": {"cpu_usage": 1.0}}]});
    let package = session.seal("HEARTBEAT_V1", &nan_heartbeat).unwrap().replace("1.0", "NaN");
    let answer = encrypted(&d, &target, Synapse::Heartbeat, &package).await;
    assert!(!answer.is_empty());
    // A garbage package.
    let answer = encrypted(&d, &target, Synapse::Heartbeat, "{\"ver\": \"v1\", \"session_id\": 5}").await;
    assert!(
        matches!(session.open("HEARTBEAT_V1", &answer), Outcome::PlainError { code: 4011 | 4012 | 4015, .. }),
        "{answer}"
    );
    // Wrong synapse type: sealed for HEARTBEAT_V1, sent to TaskSynapse.
    let package = session.seal("HEARTBEAT_V1", &json!({"workers": []})).unwrap();
    let answer = encrypted(&d, &target, Synapse::Task, &package).await;
    assert!(matches!(session.open("TASK_V1", &answer), Outcome::PlainError { code: 4011, .. }), "{answer}");
    // A replayed sequence number.
    let package = session.seal("TASK_V1", &json!({"request_type": "challenge"})).unwrap();
    encrypted(&d, &target, Synapse::Task, &package).await;
    let answer = encrypted(&d, &target, Synapse::Task, &package).await;
    assert!(matches!(session.open("TASK_V1", &answer), Outcome::PlainError { code: 4020, .. }), "{answer}");
    // The session of another hotkey: Bob presents Alice's session.
    let bob_d = Dendrite::new(bob);
    let package = session.seal("TASK_V1", &json!({"request_type": "challenge"})).unwrap();
    let answer = encrypted(&bob_d, &target, Synapse::Task, &package).await;
    assert!(answer.contains("4012") || answer.contains("4011"), "{answer}");
    // Proofs for someone else's (here: nobody's) challenge.
    let package =
        session.seal("CHALLENGE_PROOF_V1", &json!({"challenge_id": "not-yours", "proofs": [{"uuid": "-1"}]})).unwrap();
    let answer = encrypted(&d, &target, Synapse::ChallengeProof, &package).await;
    match session.open("CHALLENGE_PROOF_V1", &answer) {
        Outcome::Payload(v) => {
            assert!(v["error"].as_str().unwrap_or("").contains("not found or not accessible"), "{v}")
        }
        other => panic!("{other:?}"),
    }

    // A flood of junk: 100k requests of assorted kinds; memory must stay bounded.
    let before = rss_kib(pid);
    let junk = Dendrite::new(Hotkey::generate().0); // not registered: refused before any work
    let mut handles = Vec::new();
    for worker in 0..16 {
        let target = target.clone();
        let junk_key = if worker % 4 == 0 { Hotkey::from_seed(&flooder_seed).unwrap() } else { Hotkey::generate().0 };
        handles.push(tokio::spawn(async move {
            let junk = Dendrite::new(junk_key);
            let mut codes = std::collections::BTreeMap::new();
            for i in 0..6250u32 {
                let options = match i % 4 {
                    0 => CallOptions { uuid: Some(format!("u{worker}-{i}")), ..Default::default() },
                    1 => CallOptions { raw_body: Some(vec![b'{'; (i % 2048) as usize]), ..Default::default() },
                    2 => CallOptions { route: Some(format!("Junk{i}Synapse")), ..Default::default() },
                    _ => CallOptions { unsigned: true, ..Default::default() },
                };
                if let Ok(reply) = junk.call(&target, Synapse::Task, Some("x"), Duration::from_secs(10), &options).await
                {
                    *codes.entry(reply.status).or_insert(0u32) += 1;
                }
            }
            codes
        }));
    }
    let mut total = std::collections::BTreeMap::new();
    for h in handles {
        for (code, n) in h.await.unwrap() {
            *total.entry(code).or_insert(0u32) += n;
        }
    }
    let after = rss_kib(pid);
    eprintln!("junk answers {total:?}; RSS {before} KiB -> {after} KiB");
    assert_eq!(total.values().sum::<u32>(), 100_000, "every junk request answered");
    assert!(total.keys().all(|c| [200, 400, 401, 403, 404].contains(c)), "{total:?}");
    assert!(total.get(&200).copied().unwrap_or(0) > 0, "the registered flooder reached the sessions: {total:?}");
    assert!(after < before + 64 * 1024, "RSS grew from {before} to {after} KiB");
    let _ = junk;

    // The node still serves honest miners.
    let mut honest = SimMiner::new(Hotkey::generate().0, vec![target.clone()], 1, 0, Behaviour::Honest, None);
    let _ = &mut honest;
    assert!(cluster.nodes[1].is_running());
    let mut session = open_session(&d, &target).await;
    let package = session.seal("TASK_V1", &json!({"request_type": "challenge"})).unwrap();
    let answer = encrypted(&d, &target, Synapse::Task, &package).await;
    assert!(matches!(session.open("TASK_V1", &answer), Outcome::Payload(_)), "{answer}");
}
