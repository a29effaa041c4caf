//! The real bittensor 9.10.0 dendrite against our axon (tests/python/test_axon.py).
//!
//! Needs the Python environment `.ci/run` builds (`.venv-tests`, or `BYTELEAP_PYTHON`). Without
//! it the test says SKIPPED; with `BYTELEAP_REQUIRE_PYTHON=1` (CI) it fails instead.

mod harness;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn python() -> Option<PathBuf> {
    let candidate = match std::env::var_os("BYTELEAP_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-tests/bin/python"),
    };
    let ok = Command::new(&candidate)
        .args(["-c", "import bittensor, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(candidate);
    }
    if std::env::var_os("BYTELEAP_REQUIRE_PYTHON").is_some() {
        panic!("BYTELEAP_REQUIRE_PYTHON is set but {} cannot import bittensor", candidate.display());
    }
    eprintln!(
        "SKIPPED (Python): no bittensor 9.10.0 environment at {} (see tests/python/README.md)",
        candidate.display()
    );
    None
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/test_axon.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_dendrite_gets_the_statuses_and_sessions_the_miner_expects() {
    let Some(python) = python() else { return };
    let (dir, cluster) = harness::start(harness::options(3)).await;
    let wallets = dir.path().join("e2e-wallets");
    let out = Command::new(&python).arg(script()).args(["wallets", "--wallet-path"]).arg(&wallets).output().unwrap();
    assert!(out.status.success(), "wallets: {}", String::from_utf8_lossy(&out.stderr));
    let hotkeys: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("")).unwrap();
    let allowed = hotkeys["allowed"].as_str().unwrap().to_string();
    harness::load_metagraph(&cluster, &[&allowed]).await;

    // Through a follower's axon and the leader's: every node serves miners.
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let follower = harness::all(&cluster).into_iter().find(|i| *i != leader).unwrap();
    for node in [follower, leader] {
        let axon = cluster.nodes[node - 1].axon_addr;
        let out = Command::new(&python)
            .arg(script())
            .args(["run", "--axon", &axon.to_string(), "--validator-hotkey", &cluster.hotkey, "--wallet-path"])
            .arg(&wallets)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "node {node}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(" 0 failed"), "{stdout}");
        eprintln!("node {node}:\n{stdout}");
    }
    // The heartbeat the script sent is in the replicated state of every node.
    for i in harness::all(&cluster) {
        harness::wait_for(Duration::from_secs(10), || async {
            let mut c = cluster.client(i).await.unwrap();
            let s = c.state_hash(validator_node::admin::pb::Empty {}).await.unwrap().into_inner();
            s.rows >= 3 // the neuron, the miner and its worker at least
        })
        .await;
    }
}
