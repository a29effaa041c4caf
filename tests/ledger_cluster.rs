//! The replicated ledger on real processes: forwarding, crash recovery, wiped members, mixed
//! backends and leadership transfer.

mod harness;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use validator_node::admin::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_follower_is_forwarded_committed_and_visible_on_all_nodes() {
    let (_dir, cluster) = harness::start(harness::options(3)).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let follower = harness::all(&cluster).into_iter().find(|i| *i != leader).unwrap();

    let reply = harness::put(&cluster, follower, "greeting", "hello").await.unwrap();
    assert_eq!(reply.outcome, "done");
    assert_eq!(reply.leader, harness::id_of(&cluster, leader).await, "the leader committed it");

    for i in harness::all(&cluster) {
        harness::wait_applied(&cluster, i, reply.index, Duration::from_secs(10)).await;
        assert_eq!(harness::get(&cluster, i, "greeting").await.unwrap().as_deref(), Some("hello"), "node {i}");
    }
    harness::wait_converged(&cluster, &harness::all(&cluster), Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_committed_write_and_it_catches_up_after_restart() {
    let (_dir, mut cluster) = harness::start(harness::options(3)).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let old_id = harness::id_of(&cluster, leader).await;
    for n in 0..50 {
        harness::put(&cluster, leader, &format!("before/{n}"), &n.to_string()).await.unwrap();
    }

    cluster.kill(leader).unwrap();
    let survivors: Vec<usize> = harness::all(&cluster).into_iter().filter(|i| *i != leader).collect();
    let started = Instant::now();
    // A write through a survivor succeeds once a new leader is elected.
    let reply = harness::put(&cluster, survivors[0], "after", "kill").await.unwrap();
    assert_ne!(reply.leader, old_id, "a new leader committed the write");
    eprintln!("write accepted {:?} after the kill", started.elapsed());

    for &i in &survivors {
        for n in [0, 25, 49] {
            assert_eq!(harness::get(&cluster, i, &format!("before/{n}")).await.unwrap(), Some(n.to_string()));
        }
    }

    cluster.start(leader).unwrap();
    cluster.wait_ready(leader, Duration::from_secs(30)).await.unwrap();
    harness::wait_applied(&cluster, leader, reply.index, Duration::from_secs(30)).await;
    assert_eq!(harness::get(&cluster, leader, "after").await.unwrap().as_deref(), Some("kill"));
    let (_, hash) = harness::wait_converged(&cluster, &harness::all(&cluster), Duration::from_secs(30)).await;
    assert_eq!(hash.len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_rejoins_under_a_new_id_through_a_snapshot() {
    // Snapshot often and keep no log behind it, so a new member can only catch up by snapshot.
    let mut options = harness::options(3);
    options.raft_extra = "snapshot_every_entries = 20\nkeep_entries_after_snapshot = 0".into();
    let (_dir, mut cluster) = harness::start(options).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let victim = harness::all(&cluster).into_iter().find(|i| *i != leader).unwrap();
    let old_id = harness::id_of(&cluster, victim).await;
    for n in 0..60 {
        harness::put(&cluster, leader, &format!("k{n}"), &format!("v{n}")).await.unwrap();
    }

    cluster.stop(victim).await.unwrap();
    cluster.wipe(victim).unwrap();
    // More writes while it is gone, then a fresh snapshot on the leader.
    for n in 60..100 {
        harness::put(&cluster, leader, &format!("k{n}"), &format!("v{n}")).await.unwrap();
    }
    let mut client = cluster.client(leader).await.unwrap();
    let snap = client.snapshot(pb::Empty {}).await.unwrap().into_inner();
    assert!(snap.index.unwrap_or(0) >= 100, "snapshot covers the writes: {snap:?}");

    cluster.start(victim).unwrap();
    let info = cluster.wait_ready(victim, Duration::from_secs(30)).await.unwrap();
    assert_ne!(info.id, old_id, "a wiped node must not come back under its old id");
    let status = cluster.status(victim).await.unwrap();
    assert!(!status.initialized, "the wiped node does not think it belongs to a cluster");

    // The operator's replacement: remove the old id, add the new one, promote it.
    let mut leader_client = cluster.client(leader).await.unwrap();
    leader_client.remove(pb::NodeIds { ids: vec![old_id] }).await.unwrap();
    leader_client.add_learner(info.clone()).await.unwrap();
    let leader_status = cluster.status(leader).await.unwrap();
    harness::wait_applied(&cluster, victim, leader_status.committed.unwrap(), Duration::from_secs(30)).await;
    leader_client.promote(pb::NodeIds { ids: vec![info.id] }).await.unwrap();

    let status = cluster.status(victim).await.unwrap();
    assert!(status.snapshot.unwrap_or(0) >= 100, "it caught up by installing a snapshot: {status:?}");
    assert_eq!(harness::get(&cluster, victim, "k0").await.unwrap().as_deref(), Some("v0"));
    assert_eq!(harness::get(&cluster, victim, "k99").await.unwrap().as_deref(), Some("v99"));
    let voters = cluster.status(leader).await.unwrap().members.iter().filter(|m| m.voter).count();
    assert_eq!(voters, 3);
    harness::put(&cluster, victim, "after-rejoin", "yes").await.unwrap();
    harness::wait_converged(&cluster, &harness::all(&cluster), Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_sqlite_and_postgres_cluster_converges_to_one_state_hash() {
    let Some(pg) = harness::fresh_pg().await else {
        return;
    };
    let mut options = harness::options(3);
    options.databases.insert(3, pg.url.clone());
    options.raft_extra = "snapshot_every_entries = 30\nkeep_entries_after_snapshot = 0".into();
    let (_dir, mut cluster) = harness::start(options).await;
    assert_eq!(cluster.status(3).await.unwrap().backend, "postgres");
    assert_eq!(cluster.status(1).await.unwrap().backend, "sqlite");
    for n in 0..80 {
        harness::put(&cluster, 1 + n % 3, &format!("mixed/{n}"), &"x".repeat(n)).await.unwrap();
    }
    let (applied, hash) = harness::wait_converged(&cluster, &[1, 2, 3], Duration::from_secs(30)).await;
    eprintln!("converged at {applied}: {hash}");

    // A SQLite node rebuilt from a snapshot (possibly the PostgreSQL node's) keeps the hash.
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    if leader != 1 {
        let mut c = cluster.client(leader).await.unwrap();
        c.snapshot(pb::Empty {}).await.unwrap();
    }
    cluster.stop(1).await.unwrap();
    let old_id = {
        let s = cluster.status(2).await.unwrap();
        s.members.iter().filter_map(|m| m.member.clone()).find(|m| m.name == "node-1").unwrap().id
    };
    cluster.wipe(1).unwrap();
    cluster.start(1).unwrap();
    let info = cluster.wait_ready(1, Duration::from_secs(30)).await.unwrap();
    let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
    let mut c = cluster.client(leader).await.unwrap();
    c.remove(pb::NodeIds { ids: vec![old_id] }).await.unwrap();
    c.add_learner(info.clone()).await.unwrap();
    c.promote(pb::NodeIds { ids: vec![info.id] }).await.unwrap();
    let (_, rebuilt) = harness::wait_converged(&cluster, &[1, 2, 3], Duration::from_secs(30)).await;
    assert_eq!(rebuilt, hash, "no new writes: the rebuilt node must hold the same state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_leader_moves_leadership_and_no_write_in_flight_waits_over_a_second() {
    let (_dir, cluster) = harness::start(harness::options(3)).await;
    let cluster = Arc::new(cluster);
    let stop = Arc::new(AtomicBool::new(false));
    // Writers through every node, timing each write.
    let mut writers = Vec::new();
    for w in 0..6usize {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let via = 1 + w % 3;
            let mut client = cluster.client(via).await.unwrap();
            let (mut worst, mut count) = (Duration::ZERO, 0u64);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let t = Instant::now();
                let r = client
                    .put_setting(pb::PutSettingRequest {
                        key: format!("transfer/w{w}"),
                        value: n.to_string(),
                        timeout_ms: 5_000,
                    })
                    .await;
                assert!(r.is_ok(), "write failed during transfers: {r:?}");
                worst = worst.max(t.elapsed());
                count += 1;
            }
            (worst, count)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for round in 0..6 {
        let leader = cluster.wait_leader(Duration::from_secs(10)).await.unwrap();
        let target = 1 + (leader % 3);
        let target_id = harness::id_of(&cluster, target).await;
        let mut c = cluster.client(leader).await.unwrap();
        let reply = c.transfer_leader(pb::TransferLeaderRequest { to: target_id }).await.unwrap().into_inner();
        assert_eq!(reply.new_leader, target_id, "round {round}");
        eprintln!("round {round}: node-{leader} -> node-{target} in {} ms", reply.elapsed_ms);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut worst = Duration::ZERO;
    let mut total = 0;
    for w in writers {
        let (wst, count) = w.await.unwrap();
        worst = worst.max(wst);
        total += count;
    }
    eprintln!("{total} writes during 6 transfers, slowest {worst:?}");
    assert!(total > 50, "writes kept flowing: {total}");
    assert!(worst <= Duration::from_secs(1), "a write waited {worst:?} during a transfer");
}
