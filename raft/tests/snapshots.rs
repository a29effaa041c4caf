//! Snapshots on real databases: built while apply goes on, installed across backends with the
//! same state hash, refused when corrupted.

mod common;

use futures::stream;
use ledger::Storage;
use ledger::command::Command;
use ledger::command::Proposal;
use ledger::snapshot;
use ledger::state::StateMachine;
use ledger::types::Entry;
use ledger::types::EntryPayload;
use ledger::types::LogId;
use openraft::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;

fn log_id(index: u64) -> LogId {
    LogId::new(openraft::impls::leader_id_adv::LeaderId { term: 1, node_id: 1 }, index)
}

async fn apply_settings(sm: &mut StateMachine, from: u64, count: u64) {
    let entries: Vec<_> = (from..from + count)
        .map(|i| {
            let command = Command::PutSetting { key: format!("k{i}"), value: format!("v{i}") };
            let entry = Entry { log_id: log_id(i), payload: EntryPayload::Normal(Proposal::encode(&command)) };
            Ok((entry, None))
        })
        .collect();
    sm.apply(stream::iter(entries)).await.unwrap();
}

#[tokio::test]
async fn apply_goes_on_while_a_snapshot_reads_and_the_snapshot_sees_one_moment() {
    let (_guard, dir) = common::temp_dir();
    let (db, mut storage) = Storage::open("sqlite://ledger.db", &dir).await.unwrap();
    apply_settings(&mut storage.state_machine, 1, 100).await;

    // A snapshot build holds a read transaction for its whole run; open one the same way.
    let mut reader = db.readers().begin_read().await.unwrap();
    let mut before = ledger::tables::HashSink::default();
    ledger::tables::export(&mut reader, &mut before).await.unwrap();

    // Apply is not blocked by it.
    let applied =
        tokio::time::timeout(std::time::Duration::from_secs(5), apply_settings(&mut storage.state_machine, 101, 50))
            .await;
    assert!(applied.is_ok(), "apply waited for the reader");

    // The reader still sees the state of the moment it started.
    let mut again = ledger::tables::HashSink::default();
    let rows = ledger::tables::export(&mut reader, &mut again).await.unwrap();
    assert_eq!(rows, 100);
    assert_eq!(before.0.finalize(), again.0.finalize());
    drop(reader);
    assert_eq!(storage.reader.state_hash().await.unwrap().rows, 150);
}

#[tokio::test]
async fn a_sqlite_snapshot_installs_on_postgres_with_the_same_hash_and_a_corrupt_one_is_refused() {
    let (_guard, dir) = common::temp_dir();
    let (_db, mut source) = Storage::open("sqlite://ledger.db", &dir).await.unwrap();
    apply_settings(&mut source.state_machine, 1, 300).await;
    let expected = source.reader.state_hash().await.unwrap();
    let mut builder = source.state_machine.get_snapshot_builder().await;
    let built = builder.build_snapshot().await.unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(300)));

    // Install on a PostgreSQL node if there is a server, else on a second SQLite node.
    let pg = common::fresh_pg().await;
    let (_guard2, dir2) = common::temp_dir();
    let url = pg.as_ref().map(|p| p.url.clone()).unwrap_or_else(|| "sqlite://other.db".into());
    let (_db2, mut target) = Storage::open(&url, &dir2).await.unwrap();
    let copy = dir2.join("incoming.blvs");
    std::fs::copy(&built.snapshot.path, &copy).unwrap();
    let file = snapshot::SnapshotFile { path: copy.clone(), ..built.snapshot.clone() };
    target.state_machine.install_snapshot(&built.meta, file).await.unwrap();
    let installed = target.reader.state_hash().await.unwrap();
    assert_eq!(installed.hash, expected.hash, "same rows, same hash, whatever the backend");
    assert_eq!(installed.applied, Some(log_id(300)));

    // Flip one byte in the middle: the checksum refuses it before anything is replaced.
    let mut bytes = std::fs::read(&built.snapshot.path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let bad = dir2.join("corrupt.blvs");
    std::fs::write(&bad, &bytes).unwrap();
    let file = snapshot::SnapshotFile { path: bad, ..built.snapshot.clone() };
    let err = target.state_machine.install_snapshot(&built.meta, file).await.unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    assert_eq!(target.reader.state_hash().await.unwrap().hash, expected.hash, "state untouched");
}
