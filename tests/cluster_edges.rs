//! The edges of a running node: who may talk to it, what bad input does, and the operator CLI.

mod harness;

use std::time::Duration;

use ledger::command::Command;
use ledger::command::CommandError;
use ledger::command::LEDGER_FORMAT;
use ledger::command::Proposal;
use ledger::command::ProposeError;
use ledger::command::ProposeRequest;
use ledger::command::Proposed;
use transport::Endpoint;
use transport::Limits;
use transport::TransportError;
use transport::frame;
use transport::frame::Fault;
use transport::frame::Header;
use transport::frame::Kind;
use transport::pki::ClusterCa;
use transport::pki::TlsIdentity;
use validator_node::admin::pb;

fn operator_identity(cluster: &validator_node::devnet::LocalCluster) -> TlsIdentity {
    TlsIdentity::load(
        &cluster.ca_dir.join("ca.crt"),
        &cluster.ca_dir.join("admin.crt"),
        &cluster.ca_dir.join("admin.key"),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_the_cluster_ca_and_malformed_frames_are_refused() {
    let (_dir, cluster) = harness::start(harness::options(3)).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let node = &cluster.nodes[leader - 1];
    let addr = node.raft_addr.to_string();

    // A certificate from another CA: refused during the handshake, before any Raft message.
    let other = ClusterCa::generate("intruder").unwrap();
    let forged = other.issue("node-9", &[]).unwrap();
    let intruder = TlsIdentity::from_pem(
        &std::fs::read_to_string(cluster.ca_dir.join("ca.crt")).unwrap(),
        &forged.cert_pem,
        &forged.key_pem,
    )
    .unwrap();
    let client = Endpoint::client(&intruder, Limits::default()).unwrap();
    let vote: Result<Vec<u8>, TransportError> = client
        .unary(&addr, &node.name, Header::new(Kind::Request("x".into()), 0), &Vec::<u8>::new(), Duration::from_secs(3))
        .await;
    assert!(vote.is_err(), "a peer with a foreign certificate was served: {vote:?}");

    // A member certificate but a malformed frame: that stream is refused, the node carries on.
    let member = Endpoint::client(&operator_identity(&cluster), Limits::default()).unwrap();
    let conn = member.connection(&addr, &node.name).await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    frame::write_frame(&mut send, b"\xff\xfe garbage").await.unwrap();
    let reply: Result<(), Fault> = frame::read_value(&mut recv, 1 << 20).await.unwrap();
    assert!(matches!(reply, Err(Fault::Malformed(_))), "{reply:?}");

    // A well-formed header with a garbage AppendEntries body.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    frame::write_value(&mut send, &Header::new(Kind::Append, 0)).await.unwrap();
    frame::write_frame(&mut send, &[7u8; 33]).await.unwrap();
    let reply: Result<(), Fault> = frame::read_value(&mut recv, 1 << 20).await.unwrap();
    assert!(matches!(reply, Err(Fault::Malformed(_))), "{reply:?}");

    // A stream addressed to another member id is refused.
    let wrong: Result<Result<Proposed, ProposeError>, TransportError> = member
        .unary(
            &addr,
            &node.name,
            Header::new(Kind::Forward, 12345),
            &ProposeRequest {
                proposal: Proposal::encode(&Command::DeleteSetting { key: "x".into() }),
                expect_leader: None,
            },
            Duration::from_secs(3),
        )
        .await;
    assert!(matches!(wrong, Err(TransportError::Remote(Fault::WrongMember { .. }))), "{wrong:?}");

    // Still healthy: a write through the same node commits.
    harness::put(&cluster, leader, "still", "alive").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_from_a_newer_node_is_refused_cleanly_and_nothing_is_written() {
    let (_dir, cluster) = harness::start(harness::options(3)).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let node = &cluster.nodes[leader - 1];
    let before = cluster.status(leader).await.unwrap().last_log_index;
    let member = Endpoint::client(&operator_identity(&cluster), Limits::default()).unwrap();
    let forward = |proposal: Proposal| {
        let member = member.clone();
        let addr = node.raft_addr.to_string();
        let name = node.name.clone();
        async move {
            member
                .unary::<_, Result<Proposed, ProposeError>>(
                    &addr,
                    &name,
                    Header::new(Kind::Forward, 0),
                    &ProposeRequest { proposal, expect_leader: None },
                    Duration::from_secs(5),
                )
                .await
                .unwrap()
        }
    };

    // A format this build does not know.
    let mut newer = Proposal::encode(&Command::PutSetting { key: "k".into(), value: "v".into() });
    newer.format = LEDGER_FORMAT + 1;
    let refused = forward(newer).await;
    assert_eq!(
        refused,
        Err(ProposeError::Command(CommandError::UnsupportedFormat {
            needed: LEDGER_FORMAT + 1,
            supported: LEDGER_FORMAT
        }))
    );
    // A variant this build does not know, mislabelled with the current format.
    let refused = forward(Proposal { format: LEDGER_FORMAT, body: vec![250, 1, 2, 3] }).await;
    assert!(matches!(refused, Err(ProposeError::Command(CommandError::Malformed(_)))), "{refused:?}");

    let after = cluster.status(leader).await.unwrap().last_log_index;
    assert_eq!(before, after, "a refused command must not reach the log");
    assert_eq!(harness::get(&cluster, leader, "k").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validatorctl_prints_a_table_for_people_and_json_for_scripts() {
    let (_dir, cluster) = harness::start(harness::options(3)).await;
    let ctl = env!("CARGO_BIN_EXE_validatorctl");
    let base = |args: &[&str]| {
        let mut cmd = std::process::Command::new(ctl);
        cmd.arg("--tls-dir").arg(&cluster.ca_dir).arg("--addr").arg(cluster.admin_addr(2));
        cmd.args(args);
        cmd.output().unwrap()
    };

    let out = base(&["status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("leader") && text.contains("follower") && text.contains("committed"), "{text}");

    let out = base(&["--json", "status"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members = json["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["reachable"] == true));
    let leaders = members.iter().filter(|m| m["status"]["state"] == "leader").count();
    assert_eq!(leaders, 1);

    let out = base(&["setting", "put", "operator.note", "hello"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = base(&["--json", "setting", "get", "operator.note", "--linearizable"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["value"], "hello");

    // Weights: the leader's first scoring pass (an empty metagraph: no weights) shows on a
    // follower, as a table and as JSON; explain-weights recomputes it there.
    let mut recorded = serde_json::Value::Null;
    for _ in 0..100 {
        let out = base(&["--json", "weights"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        recorded = serde_json::from_slice(&out.stdout).unwrap();
        if recorded["seq"].is_u64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recorded["seq"].is_u64(), "a scoring pass within 20 s: {recorded}");
    assert_eq!(recorded["weights"], serde_json::json!([]));
    assert_eq!(recorded["inputs_digest"].as_str().map(str::len), Some(64));
    let out = base(&["weights"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("scoring pass") && text.contains("nothing would be submitted"), "{text}");
    let out = base(&["--json", "explain-weights"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report"]["miners"], serde_json::json!([]));
    let out = base(&["explain-weights", "--miner", "5Nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not known"), "{}", String::from_utf8_lossy(&out.stderr));

    // step-down moves leadership away, via a redirect from a follower if needed.
    let before = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let out = base(&["--json", "step-down"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    assert_ne!(before, after);

    // A bad address is a clear error, not a panic.
    let out = std::process::Command::new(ctl)
        .args(["--tls-dir"])
        .arg(&cluster.ca_dir)
        .args(["--addr", "127.0.0.1:1", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"), "{}", String::from_utf8_lossy(&out.stderr));

    let mut c = cluster.client(1).await.unwrap();
    assert!(c.status(pb::Empty {}).await.is_ok());
}
