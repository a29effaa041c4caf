//! Shared helpers of the black-box tests: real `validator` processes on loopback.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;
use std::time::Instant;

use validator_node::admin::pb;
use validator_node::devnet::ClusterOptions;
use validator_node::devnet::LocalCluster;

/// The `validator` binary cargo built for these tests.
pub fn binary() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_validator"))
}

/// Options for an N-node cluster with the fast Raft profile.
pub fn options(nodes: usize) -> ClusterOptions {
    validator_node::install_crypto();
    ClusterOptions::new(nodes, binary())
}

/// Starts and forms a cluster in a fresh temp folder.
pub async fn start(options: ClusterOptions) -> (tempfile::TempDir, LocalCluster) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = LocalCluster::prepare(dir.path(), &options).expect("prepare cluster");
    cluster.start_all().expect("start nodes");
    cluster.form(Duration::from_secs(30)).await.expect("form cluster");
    (dir, cluster)
}

/// Writes a setting through node `via`.
pub async fn put(cluster: &LocalCluster, via: usize, key: &str, value: &str) -> anyhow::Result<pb::ProposeReply> {
    let mut client = cluster.client(via).await?;
    Ok(client
        .put_setting(pb::PutSettingRequest { key: key.into(), value: value.into(), timeout_ms: 10_000 })
        .await?
        .into_inner())
}

/// Reads a setting from node `via`'s local state.
pub async fn get(cluster: &LocalCluster, via: usize, key: &str) -> anyhow::Result<Option<String>> {
    let mut client = cluster.client(via).await?;
    Ok(client.get_setting(pb::GetSettingRequest { key: key.into(), linearizable: false }).await?.into_inner().value)
}

/// Waits until node `via` has applied at least `index`.
pub async fn wait_applied(cluster: &LocalCluster, via: usize, index: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = cluster.status(via).await
            && s.applied.unwrap_or(0) >= index
        {
            return;
        }
        assert!(Instant::now() < deadline, "node {via} did not apply index {index} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until every listed node reports the same applied index and state hash; returns it.
pub async fn wait_converged(cluster: &LocalCluster, nodes: &[usize], timeout: Duration) -> (u64, String) {
    let deadline = Instant::now() + timeout;
    let mut last = BTreeMap::new();
    loop {
        last.clear();
        for &i in nodes {
            if let Ok(mut c) = cluster.client(i).await
                && let Ok(h) = c.state_hash(pb::Empty {}).await
            {
                let h = h.into_inner();
                last.insert(i, (h.applied.unwrap_or(0), h.hash));
            }
        }
        let distinct: std::collections::BTreeSet<_> = last.values().collect();
        if last.len() == nodes.len() && distinct.len() == 1 {
            let (applied, hash) = last.values().next().cloned().unwrap_or_default();
            return (applied, hash);
        }
        assert!(Instant::now() < deadline, "nodes did not converge within {timeout:?}: {last:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Loads a metagraph of `hotkeys` (uids 0..) through node 1.
pub async fn load_metagraph(cluster: &LocalCluster, hotkeys: &[&str]) {
    let mut client = cluster.client(1).await.expect("admin client");
    let neurons = hotkeys
        .iter()
        .enumerate()
        .map(|(uid, hk)| pb::Neuron {
            uid: uid as u32,
            hotkey: hk.to_string(),
            coldkey: String::new(),
            stake_rao: 0,
            validator_permit: false,
            axon: None,
        })
        .collect();
    client.load_metagraph(pb::MetagraphRequest { netuid: 128, block: 1, neurons }).await.expect("load metagraph");
    // Every node's axon follows the replicated metagraph.
    for node in &cluster.nodes {
        wait_for(Duration::from_secs(10), || async {
            let mut c = cluster.client(node.index).await.expect("client");
            let list = c.list_neurons(pb::Empty {}).await.expect("list").into_inner();
            list.neurons.len() == hotkeys.len()
        })
        .await;
    }
}

/// Polls `check` until it holds or `timeout` passes (then panics).
pub async fn wait_for<F, Fut>(timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "condition not met within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every node index of the cluster.
pub fn all(cluster: &LocalCluster) -> Vec<usize> {
    cluster.nodes.iter().map(|n| n.index).collect()
}

/// The Raft id of node `i`.
pub async fn id_of(cluster: &LocalCluster, i: usize) -> u64 {
    cluster.status(i).await.expect("status").id
}

#[allow(unused_imports)]
pub use ledger::testing::fresh_pg;
